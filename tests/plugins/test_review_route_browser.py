"""The review page of a 130-segment gate in real Chromium, served by its route (uvicorn, in this process): the
page holds 50 segments, scrolling fetches the other 80 from the route, and what the reviewer does on a fetched
segment (an edited prompt ticks its Redo box, a redo with a new prompt) goes into the answer the page sends.

As in tests/plugins/test_review_route.py, only Airflow's authentication and the metadata lookup of the task
instance are replaced; Airflow's HITL endpoint is not part of this app, so the browser's PATCH is caught
(``page.route``) and answered 200. tests/e2e/test_review_page.py runs the page against a real api-server.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi import FastAPI
from PIL import Image

from tests.plugins.test_review_route import PAGE
from video_pipeline.manifest import save_manifest
from video_pipeline.models import JobSpec, Manifest, VideoSegment
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow import media_route, review_route
from video_pipeline_airflow.review_route import Gate
from video_pipeline_dev.browser import CHROMIUM, CHROMIUM_ARGS
from video_pipeline_dev.local import free_port

pytestmark = pytest.mark.slow  # starts Chromium
N = 130
EDITED = 120  # a segment the page fetched


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    storage = LocalStorage(tmp_path)
    job = JobSpec.model_validate({"job_id": "fox", "title": "Fox", "segments": [{"prompt": "a fox"}]})
    Image.new("RGB", (64, 36), (200, 90, 20)).save(tmp_path / "still.png")
    segments = []
    for i in range(1, N + 1):
        key = f"jobs/fox/images/{i:03d}.png"
        storage.put_file(key, tmp_path / "still.png", "image/png")
        segments.append(VideoSegment(index=i, prompt=f"fox {i}", duration_s=5, seed=i, image_key=key))
    save_manifest(storage, Manifest(job=job, run_id="manual__2026-11-30T10:00:00+00:00", segments=segments))
    monkeypatch.setattr(review_route, "find_gate", lambda *args: Gate("images", "fox", True, None))
    app = FastAPI()
    app.mount("/video-previews", media_route.app)
    if not any(getattr(r, "path", "") == "/static/{name}" for r in media_route.app.routes):
        media_route.app.include_router(review_route.router)
    overrides = media_route.app.dependency_overrides
    overrides[media_route.media_storage] = lambda: storage
    overrides[get_user] = lambda: SimpleAuthManagerUser(username="ana", role="admin")
    monkeypatch.setattr(media_route, "check_dag_reader", lambda dag_id, user: user)
    monkeypatch.setattr(review_route, "check_dag_reader", lambda dag_id, user: user)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/video-previews{PAGE}"
    finally:
        server.should_exit = True
        thread.join(10)
        overrides.clear()


def test_scrolling_fetches_the_other_segments_and_a_fetched_one_can_be_redone(served: str) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/install-browser.sh installs Debian's chromium")
    from playwright.sync_api import Route, expect, sync_playwright

    sent: list[dict[str, Any]] = []

    def hitl(route: Route) -> None:
        sent.append(json.loads(route.request.post_data or "{}"))
        route.fulfill(status=200, content_type="application/json", body="{}")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/hitlDetails", hitl)
            fetched: list[str] = []
            page.on("request", lambda r: fetched.append(r.url) if "/segments?" in r.url else None)
            page.goto(served)
            cards = page.locator("article.segment")
            expect(cards).to_have_count(50)
            assert page.locator("nav.sheets a").all_text_contents() == ["#1–#100", "#101–#130"]
            while cards.count() < N:  # the reviewer scrolls down
                page.mouse.wheel(0, 20_000)
                page.wait_for_timeout(100)
            expect(page.locator("#more")).to_have_count(0)
            assert [u.rsplit("start=", 1)[1] for u in fetched] == ["50", "100"]
            assert page.evaluate(
                "() => [...document.querySelectorAll('article.segment')].map(a => +a.dataset.index)"
            ) == list(range(1, N + 1))

            page.locator(f"#prompt-{EDITED}").fill("a fox <b>at dusk</b>")  # editing ticks its Redo box
            expect(page.locator(f"#redo-{EDITED}")).to_be_checked()
            page.locator("#redo-3").check()
            page.locator("#redo").click()
            expect(page.locator("#status")).to_contain_text("Redo segments sent")
        finally:
            browser.close()
    assert len(sent) == 1
    assert sent[0]["chosen_options"] == ["Redo segments"]
    assert sent[0]["params_input"]["segments"] == [3, EDITED]
    assert sent[0]["params_input"]["prompts"] == [f"{EDITED}: a fox <b>at dusk</b>"]
