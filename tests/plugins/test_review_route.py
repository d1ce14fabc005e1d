"""The review page's route through its FastAPI app: who may see it (the auth manager's DAG check, asked for
real, for the DAG in the path), its script and style sheet, the links it builds, and its headers. Only
Airflow's authentication (``get_user``) and the metadata lookup of the task instance (``find_gate``, which
tests/e2e/test_review_page.py runs against a real api-server) are replaced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.api_fastapi import app as airflow_app
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient

from video_pipeline.manifest import save_manifest
from video_pipeline.models import JobSpec, Manifest, VideoSegment
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow import media_route, review_route
from video_pipeline_airflow.review_route import Gate, map_index_of, page_assets

if not any(getattr(r, "path", "") == "/static/{name}" for r in media_route.app.routes):
    media_route.app.include_router(review_route.router)  # as plugins/video_pipeline_plugin.py does
PAGE = "/review/video_generation/manual__2026-11-30T10:00:00+00:00/clips_gate/-1"


class ScopedAuthManager(SimpleAuthManager):
    """Users may read only the DAGs listed for them."""

    def __init__(self, readable: dict[str, set[str]]) -> None:
        super().__init__()
        self.readable = readable

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        assert isinstance(details, DagDetails)
        return method == "GET" and details.id in self.readable.get(user.username, set())


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path)
    job = JobSpec.model_validate({"job_id": "fox", "title": "<i>Fox</i>", "segments": [{"prompt": "a fox"}]})
    segment = VideoSegment(
        index=1,
        prompt="a fox",
        duration_s=5,
        seed=1,
        image_key="jobs/fox/images/001.png",
        clip_key="jobs/fox/clips/001.mp4",
    )
    save_manifest(store, Manifest(job=job, run_id="manual__2026-11-30T10:00:00+00:00", segments=[segment]))
    return store


@pytest.fixture
def client(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(
        airflow_app._AuthManagerState, "instance", ScopedAuthManager({"ana": {"video_generation"}})
    )
    monkeypatch.setattr(review_route, "find_gate", lambda *args: Gate("clips", "fox", True, None))
    app = media_route.app
    app.dependency_overrides[media_route.media_storage] = lambda: storage
    try:
        yield TestClient(app, raise_server_exceptions=False)
    finally:
        app.dependency_overrides.clear()


def as_user(name: str | None) -> None:
    if name is None:
        media_route.app.dependency_overrides.pop(get_user, None)
    else:
        media_route.app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(
            username=name, role="viewer"
        )


def test_anonymous_401_and_no_dag_permission_403(client: TestClient) -> None:
    as_user(None)
    assert client.get(PAGE).status_code == 401
    as_user("ben")  # may read no DAG
    refused = client.get(PAGE)
    assert refused.status_code == 403 and "<main" not in refused.text
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_a_dag_reader_gets_the_page_with_a_strict_policy(client: TestClient) -> None:
    as_user("ana")
    page = client.get(PAGE)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert page.headers["cache-control"] == "no-store" and page.headers["x-content-type-options"] == "nosniff"
    assert "&lt;i&gt;Fox&lt;/i&gt;" in page.text
    assert 'src="/files/jobs/fox/clips/001.mp4"' in page.text  # the preview route, on the page's origin
    assert (
        'data-hitl="/api/v2/dags/video_generation/dagRuns/manual__2026-11-30T10%3A00%3A00%2B00%3A00/'
        'taskInstances/clips_gate/-1/hitlDetails"'
    ) in page.text


def test_a_task_instance_that_is_not_a_gate(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    as_user("ana")
    monkeypatch.setattr(
        review_route, "find_gate", lambda *args: "validate_job is a PythonOperator, not a gate."
    )
    page = client.get("/review/video_generation/r1/validate_job/{MAP_INDEX}")
    assert page.status_code == 200 and "Not a review gate" in page.text and "<button" not in page.text


def test_script_and_style_sheet_only(client: TestClient) -> None:
    script = client.get("/static/review.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "hitlDetails" not in script.text and "fetch(hitlUrl" in script.text
    assert client.get("/static/review.css").headers["content-type"].startswith("text/css")
    for name in ("../review_route.py", "review.py", "%2e%2e%2fcompat.py"):
        assert client.get(f"/static/{name}").status_code == 404, name


def test_map_index_and_links() -> None:
    assert [map_index_of(v) for v in ("{MAP_INDEX}", "-1", "3", "", "1e9")] == [-1, -1, 3, -1, -1]
    assets = page_assets("/base/video-previews", "d", "a/b c", "t", 2)
    assert assets.hitl_url == "/base/api/v2/dags/d/dagRuns/a%2Fb%20c/taskInstances/t/2/hitlDetails"
    assert assets.script_url == "/base/video-previews/static/review.js"


def test_more_segments_come_from_the_page_route_with_the_same_checks(
    client: TestClient, storage: LocalStorage
) -> None:
    job = JobSpec.model_validate({"job_id": "fox", "title": "Fox", "segments": [{"prompt": "a fox"}]})
    segments = [
        VideoSegment(index=i, prompt=f"fox {i}", duration_s=5, seed=i, clip_key=f"jobs/fox/clips/{i:03d}.mp4")
        for i in range(1, 131)
    ]
    save_manifest(storage, Manifest(job=job, run_id="manual__2026-11-30T10:00:00+00:00", segments=segments))
    more = f"{PAGE}/segments?start=50"
    as_user(None)
    assert client.get(more).status_code == 401
    as_user("ben")
    assert client.get(more).status_code == 403
    as_user("ana")
    page = client.get(PAGE)
    assert page.text.count('<article class="segment"') == 50
    assert f'data-url="{PAGE}/segments" data-next="50"'.replace("+", "%2B").replace(":", "%3A") in page.text
    assert page.text.count("/clips-sheet-00") == 2  # two contact sheets linked
    fetched = client.get(more)
    assert fetched.status_code == 200 and fetched.headers["cache-control"] == "no-store"
    assert fetched.text.count('<article class="segment"') == 50 and 'id="segment-51"' in fetched.text
    assert 'data-next="100"' in fetched.text
    tail = client.get(f"{PAGE}/segments?start=100").text
    assert tail.count('<article class="segment"') == 30 and 'data-next=""' in tail
    assert client.get(f"{PAGE}/segments?start=-1").status_code == 422
