"""The reviewer's experience in a real browser: headless Chromium (Debian's, driven by Playwright) logs in to the
Airflow UI through its login page, opens each gate's Required Action form, sees the preview images load from the
api-server's preview route (authorised by the login cookie), and clicks Approve; the run then finishes and the
manifest records both decisions as made in the UI by the reviewer.

Chromium comes from Debian (``scripts/install-browser.sh``, run by ``make test``); Playwright's own browser
download does not work here. Screenshots go to this test's temporary folder, or to
``$VIDEO_PIPELINE_SCREENSHOT_DIR`` when set (``docs/screenshots/`` holds the committed ones): writing into the
repository on every run would leave the checkout dirty.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.e2e.conftest import DAG_ID, manifest_of, six_segment_job
from video_pipeline.approval import APPROVE
from video_pipeline.contact_sheets import sheet_pages
from video_pipeline.models import Stage
from video_pipeline.storage import Storage
from video_pipeline_dev.browser import CHROMIUM, CHROMIUM_ARGS
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

USER, PASSWORD = "reviewer", "e2e-pass"  # the `airflow` fixture's login
SEGMENTS = 3
MIN_WAIT_BEFORE_ANSWER_S = 3  # an answer within ~1 s of the gate opening hits Airflow bug #71172
UI_TIMEOUT_MS = 30_000  # the UI's first load (a 7 MB bundle, then its API calls) is slow on 2 busy cores
expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: scripts/install-browser.sh installs Debian's chromium (root + apt)"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("VIDEO_PIPELINE_SCREENSHOT_DIR") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, path: Path) -> None:
    """A PNG of the page, reduced to a 256-colour palette so committed screenshots stay small."""
    page.screenshot(path=path)
    with Image.open(path) as image:
        image.convert("RGB").quantize(colors=256).save(path, optimize=True)
    print(f"screenshot: {path}")


def phase(what: str, started: float) -> None:
    print(f"{time.monotonic() - started:6.1f} s  {what}")


def form_url(airflow: LocalAirflow, run_id: str, task_id: str) -> str:
    """The gate's Required Action tab: the link Airflow's HITLOperator.generate_link_to_ui builds."""
    return f"{airflow.base_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{task_id}/required_actions"


def log_in(page: Page, url: str, shot: Path) -> None:
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))  # anonymous: sent to the login page
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    screenshot(page, shot)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/required_actions$"))  # ...and back to the form


def wait_for_gate(airflow: LocalAirflow, run_id: str, task_id: str) -> float:
    airflow.wait_for_task_state(DAG_ID, run_id, task_id, {"deferred"}, timeout=240)
    return time.monotonic()


def loaded_previews(page: Page) -> list[dict[str, Any]]:
    """Every preview <img> of the form once none is still loading: its src, size and the link around it."""
    images = page.locator("img[src*='/video-previews/files/']")
    expect(images.first).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll(\"img[src*='/video-previews/files/']\")].every(i => i.complete)"
    )
    previews: list[dict[str, Any]] = images.evaluate_all(
        """imgs => imgs.map(i => ({
            src: i.src, width: i.naturalWidth, height: i.naturalHeight,
            link: i.closest('a') ? i.closest('a').href : null,
        }))"""
    )
    return previews


def first_sheet(storage: Storage, job_id: str, stage: Stage) -> str:
    """The key of the gate's first contact sheet (named by what it shows), from the job's manifest."""
    manifest = manifest_of(storage, job_id)
    return sheet_pages(manifest.job, stage, manifest.segments)[0].key


def check_previews(context: BrowserContext, previews: list[dict[str, Any]], expected: dict[str, str]) -> None:
    """Each expected image loaded (decoded to a real size) and its link opens the full object for this user."""
    by_path = {httpx.URL(p["src"]).path: p for p in previews}
    for image_path, link_type in expected.items():
        preview = by_path.get(image_path)
        assert preview is not None, f"{image_path} is not on the form; it shows {sorted(by_path)}"
        assert preview["width"] > 0 and preview["height"] > 0, f"{image_path} did not load: {preview}"
        assert preview["link"], f"{image_path} is not a link"
        opened = context.request.get(preview["link"])  # what a click opens, with the reviewer's cookie
        assert opened.status == 200, (preview["link"], opened.status)
        assert opened.headers["content-type"] == link_type, (preview["link"], opened.headers)


def answer(page: Page, option: str, note: str) -> None:
    page.locator("#element_note").fill(note)
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and r.url.endswith("/hitlDetails")
    ) as response:
        page.get_by_test_id(f"hitl-option-{option}").click()
    assert response.value.status == 200, response.value.text()
    expect(page.get_by_text("response successful")).to_be_visible()


def test_reviewer_logs_in_sees_previews_and_approves_both_gates(
    airflow: LocalAirflow, local_storage: Storage, browser: Browser, screenshots: Path
) -> None:
    job_id = "e2e-browser"
    spec = six_segment_job(job_id, seed=23)
    spec["segments"] = spec["segments"][:SEGMENTS]
    run_id = airflow.trigger(DAG_ID, spec)
    files = f"/video-previews/files/jobs/{job_id}"

    started = time.monotonic()
    context = browser.new_context(viewport={"width": 1280, "height": 1900})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    try:
        opened = wait_for_gate(airflow, run_id, "images_gate")
        phase("images gate open", started)
        log_in(page, form_url(airflow, run_id, "images_gate"), screenshots / "login.png")
        approve = page.get_by_test_id(f"hitl-option-{APPROVE}")
        expect(approve).to_be_visible()
        expect(page.get_by_text(f"{SEGMENTS} images ready for review")).to_be_visible()
        # The "segments" field (redo only) starts empty; the run's conf used to fill it with the job's prompts.
        expect(page.locator("#element_segments")).to_have_value("")

        previews = loaded_previews(page)
        expected = {f"{files}/images/{i:03d}.png": "image/png" for i in range(1, SEGMENTS + 1)}
        expected[f"/video-previews/files/{first_sheet(local_storage, job_id, 'images')}"] = "image/jpeg"
        check_previews(context, previews, expected)
        assert len(previews) == len(expected), previews
        # the same URLs refuse a browser that has not logged in: the login cookie is what lets them load
        anonymous = browser.new_context()
        assert anonymous.request.get(previews[0]["src"]).status == 401
        anonymous.close()
        screenshot(page, screenshots / "images-gate-form.png")
        phase("logged in, images form checked", started)

        time.sleep(max(0.0, MIN_WAIT_BEFORE_ANSWER_S - (time.monotonic() - opened)))
        answer(page, APPROVE, "images look right (browser)")
        airflow.wait_for_task_state(DAG_ID, run_id, "images_gate", {"success"}, timeout=60)
        page.reload()
        expect(page.get_by_text("Success").first).to_be_visible()
        screenshot(page, screenshots / "images-gate-approved.png")
        phase("images approved", started)

        # Clips: poster frames that link to the MP4s; the browser is still logged in.
        opened = wait_for_gate(airflow, run_id, "clips_gate")
        phase("clips gate open", started)
        page.goto(form_url(airflow, run_id, "clips_gate"))
        expect(page.get_by_test_id(f"hitl-option-{APPROVE}")).to_be_visible()
        previews = loaded_previews(page)
        expected = {f"{files}/preview/clips-r1-{i:03d}.jpg": "video/mp4" for i in range(1, SEGMENTS + 1)}
        expected[f"/video-previews/files/{first_sheet(local_storage, job_id, 'clips')}"] = "image/jpeg"
        check_previews(context, previews, expected)
        assert len(previews) == len(expected), previews
        screenshot(page, screenshots / "clips-gate-form.png")
        time.sleep(max(0.0, MIN_WAIT_BEFORE_ANSWER_S - (time.monotonic() - opened)))
        answer(page, APPROVE, "clips look right (browser)")
        phase("clips approved", started)
    finally:
        context.close()

    assert airflow.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
    phase("run succeeded", started)
    manifest = manifest_of(local_storage, job_id)
    assert manifest.status == "succeeded"
    assert [(d.stage, d.decision, d.via, d.by, d.note) for d in manifest.decisions] == [
        ("images", "approve", "ui", USER, "images look right (browser)"),
        ("clips", "approve", "ui", USER, "clips look right (browser)"),
    ]
