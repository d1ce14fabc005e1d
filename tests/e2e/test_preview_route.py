"""The preview route on a real api-server with real logins (simple auth manager): anonymous callers get nothing
(not even the app's docs), a logged-in admin gets media with ``nosniff`` (by bearer token and by the UI's
``_token`` cookie, as the browser sends it), and everything that is not media — a manifest, the inbox, an HTML
page, a link out of the root — is refused."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from video_pipeline.storage import LocalStorage, Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
ROUTE = "/video-previews"
CLIP = bytes(range(256)) * 64  # 16 KiB


def test_preview_route_authorizes_and_serves_media_only(
    airflow: LocalAirflow, local_storage: Storage, tmp_path: Path
) -> None:
    assert isinstance(local_storage, LocalStorage)
    job = "jobs/route-check"
    local_storage.put_bytes(f"{job}/images/001.png", b"\x89PNG\r\n\x1a\nimage")
    local_storage.put_bytes(f"{job}/clips/001.mp4", CLIP)
    local_storage.put_bytes(f"{job}/manifest.json", b'{"job_id": "route-check"}')
    local_storage.put_bytes(f"{job}/preview/page.html", b"<script>alert(document.cookie)</script>")
    local_storage.put_bytes("inbox/spec.json", b'{"job_id": "x"}')
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"SECRET outside the root")
    os.symlink(secret, local_storage.root / job / "images" / "002.png")

    anonymous = httpx.Client(base_url=airflow.base_url, timeout=10)
    media = anonymous.get(f"{ROUTE}/files/{job}/images/001.png")
    assert media.status_code == 401 and b"image" not in media.content
    assert media.headers["x-content-type-options"] == "nosniff"
    for path in ("/docs", "/redoc", "/openapi.json"):
        response = anonymous.get(ROUTE + path)
        assert response.status_code in (401, 404), (path, response.status_code)
        assert b"swagger" not in response.content.lower() and b'"openapi"' not in response.content

    admin = airflow.api("GET", f"{ROUTE}/files/{job}/images/001.png")
    assert admin.status_code == 200 and admin.content == b"\x89PNG\r\n\x1a\nimage"
    assert admin.headers["content-type"] == "image/png"
    assert admin.headers["x-content-type-options"] == "nosniff"

    # the browser's way: the UI's JWT in the _token cookie; a byte range, as a video element asks
    browser = httpx.Client(base_url=airflow.base_url, cookies={"_token": airflow.token()}, timeout=10)
    clip = browser.get(f"{ROUTE}/files/{job}/clips/001.mp4", headers={"Range": "bytes=100-199"})
    assert clip.status_code == 206 and clip.content == CLIP[100:200]
    assert clip.headers["content-range"] == f"bytes 100-199/{len(CLIP)}"
    assert clip.headers["content-type"] == "video/mp4" and clip.headers["x-content-type-options"] == "nosniff"

    for key in (
        f"{job}/manifest.json",
        f"{job}/preview/page.html",
        "inbox/spec.json",
        f"{job}/images/002.png",
    ):
        refused = airflow.api("GET", f"{ROUTE}/files/{key}")
        assert refused.status_code == 404, (key, refused.status_code)
        assert refused.headers["x-content-type-options"] == "nosniff"
        assert b"route-check" not in refused.content and b"script" not in refused.content
        assert b"SECRET" not in refused.content
    too_long = airflow.api("GET", f"{ROUTE}/files/{job}/images/{'a' * 300}.png")
    assert too_long.status_code == 400 and "invalid storage key" in too_long.json()["detail"]
