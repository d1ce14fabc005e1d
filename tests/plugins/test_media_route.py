"""The preview route's own rules, through its FastAPI app: who may read (the auth manager's DAG check, asked for
real), which keys are served and how (media types, ``nosniff``, ranges), and that links and fifos in storage are
never served. Only Airflow's authentication (``get_user``) is replaced, by the user a login would produce;
tests/e2e/test_preview_route.py checks the route on a real api-server with real logins.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import pytest
from airflow.api_fastapi import app as airflow_app
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.api_fastapi.core_api.security import get_user
from fastapi.testclient import TestClient
from moto import mock_aws

from video_pipeline.storage import LocalStorage, Storage, open_storage
from video_pipeline_airflow import media_route
from video_pipeline_airflow.preview_links import MEDIA_DAG_ID

pytestmark = pytest.mark.timeout(30)  # a fifo opened for reading would block forever
FILES = "/files/"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MP4 = bytes(range(256)) * 40  # 10 240 bytes
SECRET = b"AWS_SECRET_ACCESS_KEY=outside-the-root"


class ScopedAuthManager(SimpleAuthManager):
    """An auth manager whose users may read only the DAGs listed for them; records every DAG question."""

    def __init__(self, readable: dict[str, set[str]]) -> None:
        super().__init__()
        self.readable = readable
        self.asked: list[tuple[str, str | None]] = []

    def is_authorized_dag(
        self, *, method: Any, user: Any, access_entity: Any = None, details: Any = None
    ) -> bool:
        assert isinstance(details, DagDetails)
        self.asked.append((method, details.id))
        return method == "GET" and details.id in self.readable.get(user.username, set())


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path / "root")
    for key, data in {
        "jobs/demo/images/001.png": PNG,
        "jobs/demo/clips/001.mp4": MP4,
        "jobs/demo/preview/images-r1-contact-sheet.jpg": b"\xff\xd8jpeg",
        "jobs/demo/final.mp4": MP4,
        "jobs/demo/final.srt": b"1\n00:00:00,000 --> 00:00:02,000\nHello\n",
        "jobs/demo/final-poster.jpg": b"\xff\xd8poster",
        "jobs/demo/final-preview.gif": b"GIF89a",
        "jobs/demo/manifest.json": b'{"job_id": "demo"}',
        "jobs/demo/progress.json": b"{}",
        "jobs/demo/images/evil.html": b"<script>alert(1)</script>",
        "jobs/demo/preview/evil.svg": b"<svg onload=alert(1)>",
        "jobs/demo/preview/.hidden.png": PNG,
        "inbox/spec.json": b'{"api_key": "x"}',
        "spend/ledger.json": b"{}",
        "cache/images/ab/abcdef.png": PNG,
    }.items():
        store.put_bytes(key, data)
    return store


def client_for(storage: Storage, user: SimpleAuthManagerUser | None) -> Iterator[TestClient]:
    app = media_route.app
    app.dependency_overrides[media_route.media_storage] = lambda: storage
    if user is not None:  # else Airflow's real get_user answers (no credentials: 401)
        app.dependency_overrides[get_user] = lambda: user
    try:
        yield TestClient(app, raise_server_exceptions=False)
    finally:
        app.dependency_overrides.clear()


@pytest.fixture
def auth_manager(monkeypatch: pytest.MonkeyPatch) -> SimpleAuthManager:
    manager = SimpleAuthManager()
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", manager)
    return manager


@pytest.fixture
def viewer(storage: LocalStorage, auth_manager: SimpleAuthManager) -> Iterator[TestClient]:
    yield from client_for(storage, SimpleAuthManagerUser(username="vera", role="viewer"))


def test_anonymous_requests_get_401_with_nosniff(
    storage: LocalStorage, auth_manager: SimpleAuthManager
) -> None:
    for client in client_for(storage, None):
        response = client.get(FILES + "jobs/demo/images/001.png")
        assert response.status_code == 401
        assert response.headers["x-content-type-options"] == "nosniff"
        assert PNG not in response.content


def test_docs_and_openapi_are_off(storage: LocalStorage, auth_manager: SimpleAuthManager) -> None:
    for client in client_for(storage, None):
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            response = client.get(path)
            assert response.status_code == 404, path
            assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    ("key", "media_type", "data"),
    [
        ("jobs/demo/images/001.png", "image/png", PNG),
        ("jobs/demo/clips/001.mp4", "video/mp4", MP4),
        ("jobs/demo/preview/images-r1-contact-sheet.jpg", "image/jpeg", b"\xff\xd8jpeg"),
        ("jobs/demo/final.mp4", "video/mp4", MP4),
        ("jobs/demo/final.srt", "text/plain; charset=utf-8", b"1\n00:00:00,000 --> 00:00:02,000\nHello\n"),
        ("jobs/demo/final-poster.jpg", "image/jpeg", b"\xff\xd8poster"),
        ("jobs/demo/final-preview.gif", "image/gif", b"GIF89a"),
    ],
)
def test_a_dag_reader_gets_media_with_its_type(
    viewer: TestClient, key: str, media_type: str, data: bytes
) -> None:
    response = viewer.get(FILES + key)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == media_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-length"] == str(len(data))
    assert "private" in response.headers["cache-control"]


def test_a_user_without_dag_read_is_refused(storage: LocalStorage, auth_manager: SimpleAuthManager) -> None:
    for client in client_for(storage, SimpleAuthManagerUser(username="nobody", role=None)):
        response = client.get(FILES + "jobs/demo/images/001.png")
        assert response.status_code == 403
        assert response.headers["x-content-type-options"] == "nosniff"
        assert PNG not in response.content


def test_the_question_is_read_access_to_the_dag_the_media_belong_to(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = ScopedAuthManager({"olga": {"some_other_dag"}, "mira": {MEDIA_DAG_ID}})
    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", manager)
    for client in client_for(storage, SimpleAuthManagerUser(username="olga", role="admin")):
        assert client.get(FILES + "jobs/demo/images/001.png").status_code == 403
    for client in client_for(storage, SimpleAuthManagerUser(username="mira", role="viewer")):
        assert client.get(FILES + "jobs/demo/images/001.png").content == PNG
    assert manager.asked == [("GET", MEDIA_DAG_ID), ("GET", MEDIA_DAG_ID)]


@pytest.mark.parametrize(
    "key",
    [
        "jobs/demo/manifest.json",
        "jobs/demo/progress.json",
        "jobs/demo/images/evil.html",
        "jobs/demo/preview/evil.svg",
        "jobs/demo/preview/.hidden.png",
        "inbox/spec.json",
        "spend/ledger.json",
        "cache/images/ab/abcdef.png",
        "jobs/demo/images/missing.png",
        "jobs/demo/images/sub/001.png",
        "jobs/Demo/images/001.png",
    ],
)
def test_only_media_keys_are_served(viewer: TestClient, key: str) -> None:
    response = viewer.get(FILES + key)
    assert response.status_code == 404
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/json"  # FastAPI's error body, never the object


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/etc/passwd",
        "jobs/demo/%2e%2e/%2e%2e/etc/passwd",
        "jobs//demo/images/001.png",
        "jobs/demo/images/" + "a" * 300 + ".png",
        "jobs/demo/" + "/".join(["abcdefgh"] * 150) + ".png",
    ],
)
def test_bad_and_over_long_keys_get_400(viewer: TestClient, path: str) -> None:
    response = viewer.get(FILES + path)
    assert response.status_code == 400, response.text
    assert "invalid storage key" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_links_and_fifos_in_storage_are_never_served(
    viewer: TestClient, storage: LocalStorage, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    (outside / "images").mkdir(parents=True)
    (outside / "secret.png").write_bytes(SECRET)
    (outside / "images" / "001.png").write_bytes(SECRET)
    os.symlink(outside / "secret.png", storage.root / "jobs/demo/images/002.png")
    os.symlink(outside, storage.root / "jobs/linked")  # a whole job folder that is a link
    os.symlink("001.png", storage.root / "jobs/demo/images/003.png")  # even one that stays inside
    os.mkfifo(storage.root / "jobs/demo/clips/002.mp4")
    for key in (
        "jobs/demo/images/002.png",
        "jobs/linked/images/001.png",
        "jobs/demo/images/003.png",
        "jobs/demo/clips/002.mp4",
    ):
        response = viewer.get(FILES + key)
        assert response.status_code == 404, key
        assert SECRET not in response.content and PNG not in response.content


@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        ("bytes=0-9", 206, "bytes 0-9/10240", MP4[:10]),
        ("bytes=10000-", 206, "bytes 10000-10239/10240", MP4[10000:]),
        ("bytes=-16", 206, "bytes 10224-10239/10240", MP4[-16:]),
        ("bytes=10200-99999", 206, "bytes 10200-10239/10240", MP4[10200:]),
        ("bytes=0-1,5-6", 200, None, MP4),  # several ranges: the whole file (allowed by RFC 9110)
        ("items=0-9", 200, None, MP4),
        ("bytes=10240-", 416, "bytes */10240", None),
        ("bytes=9-3", 416, "bytes */10240", None),
    ],
)
def test_byte_ranges_for_video(
    viewer: TestClient, header: str, status: int, content_range: str | None, body: bytes | None
) -> None:
    response = viewer.get(FILES + "jobs/demo/clips/001.mp4", headers={"Range": header})
    assert response.status_code == status
    assert response.headers.get("content-range") == content_range
    assert response.headers["x-content-type-options"] == "nosniff"
    if body is not None:
        assert response.content == body
        assert response.headers["accept-ranges"] == "bytes"


def test_an_unexpected_failure_is_a_500_with_nosniff(
    storage: LocalStorage, auth_manager: SimpleAuthManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(key: str) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(storage, "open_file", broken)
    for client in client_for(storage, SimpleAuthManagerUser(username="vera", role="viewer")):
        response = client.get(FILES + "jobs/demo/images/001.png")
        assert response.status_code == 500
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "disk on fire" not in response.text


def test_s3_storage_redirects_media_only(auth_manager: SimpleAuthManager, aws_env: None) -> None:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        storage = open_storage("s3://bucket/media", s3_client=client)
        storage.put_bytes("jobs/demo/images/001.png", PNG)
        storage.put_bytes("jobs/demo/manifest.json", b"{}")
        for http in client_for(storage, SimpleAuthManagerUser(username="vera", role="viewer")):
            response = http.get(FILES + "jobs/demo/images/001.png", follow_redirects=False)
            assert response.status_code == 307
            location = urlparse(response.headers["location"])
            assert location.hostname == "bucket.s3.amazonaws.com"
            assert location.path == "/media/jobs/demo/images/001.png" and "Signature=" in location.query
            assert response.headers["x-content-type-options"] == "nosniff"
            assert http.get(FILES + "jobs/demo/manifest.json", follow_redirects=False).status_code == 404
