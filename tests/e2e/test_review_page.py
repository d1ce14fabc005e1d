"""The review page on a real Airflow, in real Chromium: a reviewer logs in, opens the clips gate's Review tab of a
12-segment job, plays the first clip to its end, picks take 2 of one segment, redoes another with an edited
motion prompt, and approves; the manifest records the picks, the redo and ``via: review-page`` with the user.
A second tab that answers late is told who answered first. Screenshots at desktop (1280 px, the tab inside the
Airflow UI) and phone (390 px, the page itself, checked for no horizontal scroll) widths.

Also: anonymous callers get 401 and a user who may not read the DAG 403, for the page and for its media.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, FrameLocator, Page, expect

from tests.e2e.conftest import DAG_ID, OUTSIDER, VIEWER, manifest_of, six_segment_job
from tests.e2e.test_review_browser import (  # the browser, its login and screenshots, shared
    PASSWORD,
    UI_TIMEOUT_MS,
    USER,
    browser,  # noqa: F401  (fixture)
    screenshot,
    screenshots,  # noqa: F401  (fixture)
)
from video_pipeline.storage import Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(1500)]
SEGMENTS = 12
PICKED, PICK = 5, 2  # segment 5: take 2
REDONE = 7
NEW_MOTION = "slow push-in on the lantern, <b>fog</b> & ripples"  # markup stays text
PAGE_FILES = "/video-previews/files/"


def page_url(airflow: LocalAirflow, run_id: str, task_id: str, map_index: str = "-1") -> str:
    return f"{airflow.base_url}/video-previews/review/{DAG_ID}/{quote(run_id, safe='')}/{task_id}/{map_index}"


def tab_url(airflow: LocalAirflow, run_id: str, task_id: str) -> str:
    """The Review tab of the task instance in the Airflow UI (what notifications and the form link to)."""
    return (
        f"{airflow.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{task_id}/plugin/video-review"
    )


def twelve_segment_job(job_id: str) -> dict[str, object]:
    spec = six_segment_job(job_id, seed=31, approval="clips", clips={"provider": "storyboard", "takes": 2})
    spec["segments"] = [
        {"prompt": f"Scene {i}: a lantern over dark water", "duration_s": 2} for i in range(1, SEGMENTS + 1)
    ]
    return spec


def log_in(page: Page, url: str) -> None:
    page.goto(url)
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/plugin/video-review$"))


def review_frame(page: Page) -> FrameLocator:
    frame = page.frame_locator("iframe[src*='video-previews/review/']")
    expect(frame.locator("#review")).to_be_visible()
    return frame


def play_to_end(frame: FrameLocator) -> dict[str, float]:
    video = frame.locator("#segment-1 video").first
    played: dict[str, float] = video.evaluate(
        """v => new Promise((resolve, reject) => {
            v.addEventListener('ended', () => resolve({time: v.currentTime, duration: v.duration}), {once: true});
            v.addEventListener('error', () => reject(new Error('media error ' + (v.error && v.error.code))));
            v.play().catch(reject);
        })"""
    )
    return played


def wait_reopened(airflow: LocalAirflow, storage: Storage, job_id: str, run_id: str) -> None:
    """The gate took the redo, regenerated the segment and waits again with a fresh request."""

    def reopened() -> bool:
        redone = any(d.decision == "redo" for d in manifest_of(storage, job_id).decisions)
        detail = airflow.api(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/clips_gate/-1/hitlDetails"
        ).json()
        state = airflow.task_state(DAG_ID, run_id, "clips_gate")
        return redone and state == "deferred" and not detail.get("response_received")

    airflow.wait_until(reopened, 180, "the clips gate to re-open after the redo", interval=2)


def send(page: Page, frame: FrameLocator, button: str) -> int:
    with page.expect_response(
        lambda r: r.request.method == "PATCH" and r.url.endswith("/hitlDetails")
    ) as sent:
        frame.locator(f"#{button}").click()
    return sent.value.status


def test_reviewer_plays_picks_redoes_and_approves_on_the_review_page(
    airflow: LocalAirflow,
    local_storage: Storage,
    browser: Browser,  # noqa: F811
    screenshots: Path,  # noqa: F811
) -> None:
    job_id = "e2e-review-page"
    run_id = airflow.trigger(DAG_ID, twelve_segment_job(job_id))
    airflow.wait_for_task_state(DAG_ID, run_id, "clips_gate", {"deferred"}, timeout=900)
    time.sleep(3)  # an answer within ~1 s of the gate opening hits Airflow bug #71172

    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    late = None
    try:
        log_in(page, tab_url(airflow, run_id, "clips_gate"))
        frame = review_frame(page)
        expect(frame.locator("article.segment")).to_have_count(SEGMENTS)
        expect(frame.locator("section.first article.segment")).to_have_count(3)
        assert frame.locator("video[preload='none']").count() == 2 * SEGMENTS  # two takes each, lazy

        played = play_to_end(frame)
        assert played["duration"] > 1.5 and abs(played["time"] - played["duration"]) < 0.1, played

        frame.locator(f"input[name='pick-{PICKED}'][value='{PICK}']").check()
        frame.locator(f"#prompt-{REDONE}").fill(NEW_MOTION)  # editing ticks the segment's Redo box
        expect(frame.locator(f"#redo-{REDONE}")).to_be_checked()
        assert send(page, frame, "redo") == 200
        expect(frame.locator("#status")).to_contain_text("Redo segments sent")
        wait_reopened(airflow, local_storage, job_id, run_id)

        page.reload()
        frame = review_frame(page)
        expect(frame.locator(f"#segment-{REDONE} details.history")).to_contain_text(NEW_MOTION)
        expect(frame.locator(f"#segment-{REDONE} dd").nth(1)).to_have_text(NEW_MOTION)
        frame.locator(f"input[name='pick-{PICKED}'][value='{PICK}']").check()
        screenshot(page, screenshots / "review-page-desktop.png")

        # The same page on a phone, while the gate still waits (so its buttons show)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, is_mobile=True, storage_state=context.storage_state()
        )
        mobile = phone.new_page()
        mobile.goto(page_url(airflow, run_id, "clips_gate"))
        expect(mobile.locator("#review")).to_be_visible()
        widths = mobile.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] == 390, widths  # no horizontal scroll
        screenshot(mobile, screenshots / "review-page-phone.png")
        phone.close()
        late = context.new_page()  # a second tab, open before the answer, that answers after it
        late.goto(page_url(airflow, run_id, "clips_gate"))
        expect(late.locator("#approve")).to_be_enabled()

        assert send(page, frame, "approve") == 200
        with late.expect_response(lambda r: r.request.method == "PATCH") as refused:
            late.locator("#reject").click()
        assert refused.value.status == 409
        expect(late.locator("#status")).to_contain_text(f"already answered by {USER}")

    finally:
        context.close()

    assert airflow.wait_for_run(DAG_ID, run_id, timeout=240) == "success"
    manifest = manifest_of(local_storage, job_id)
    clips = [d for d in manifest.decisions if d.stage == "clips"]
    assert [(d.decision, d.via, d.by) for d in clips] == [
        ("redo", "review-page", USER),
        ("approve", "review-page", USER),
    ]
    assert clips[0].segments == [REDONE] and clips[0].prompts == {REDONE: NEW_MOTION.strip()}
    assert clips[1].picks.get(PICKED) == PICK
    segment = next(s for s in manifest.segments if s.index == PICKED)
    assert segment.clip_pick == PICK and len(segment.clip_takes) == 2
    redone = next(s for s in manifest.segments if s.index == REDONE)
    assert redone.motion_prompt == NEW_MOTION


def test_the_page_and_its_media_need_a_login_that_may_read_the_dag(
    airflow: LocalAirflow, local_storage: Storage
) -> None:
    key = "jobs/e2e-review-auth/clips/001.mp4"
    local_storage.put_bytes(key, b"\x00\x00\x00\x18ftypmp42")
    page = f"/video-previews/review/{DAG_ID}/no-such-run/clips_gate/-1"
    media = f"{PAGE_FILES}{key}"

    anonymous = httpx.Client(base_url=airflow.base_url, timeout=30)
    for path in (page, media):
        assert anonymous.get(path).status_code == 401, path

    outsider = httpx.Client(
        base_url=airflow.base_url,
        cookies={"_token": airflow.token_for(OUTSIDER[0], OUTSIDER[1])},  # the browser's way
        timeout=30,
    )
    for path in (page, media):
        refused = outsider.get(path)
        assert refused.status_code == 403, (path, refused.status_code)
        assert b"ftyp" not in refused.content and b"<main" not in refused.content

    viewer = httpx.Client(
        base_url=airflow.base_url,
        headers={"Authorization": f"Bearer {airflow.token_for(VIEWER[0], VIEWER[1])}"},
        timeout=30,
    )
    shown = viewer.get(page)
    assert shown.status_code == 200 and "Not a review gate" in shown.text
    assert "script-src 'self'" in shown.headers["content-security-policy"]
    assert viewer.get(media).status_code == 200
