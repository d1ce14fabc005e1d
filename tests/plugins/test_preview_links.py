"""Preview links a reviewer's browser can open, and which keys the preview route may serve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from moto import mock_aws

from video_pipeline.layout import JobLayout
from video_pipeline.storage import LocalStorage, Storage, open_storage
from video_pipeline_airflow.preview_links import MEDIA_TYPES, PRESIGNED_TTL_S, media_type_for, preview_url


def test_media_type_allow_list() -> None:
    assert media_type_for("jobs/a-1/narration/001.mp3") == "audio/mpeg"
    assert media_type_for("jobs/a-1/clips/001.webm") == "video/webm"
    for key in (
        "jobs/a/images/x.html",
        "jobs/a/images/x.svg",
        "jobs/a/images/x.PNG",
        "jobs/a/manifest.json",
        "jobs/a/final.json",
        "jobs/a/images/x.png/y.png",
        "jobs/a/images/.x.png",
        "jobs/-a/images/x.png",
        "xjobs/a/images/x.png",
        "jobs/a/images/x.png\n",
    ):
        assert media_type_for(key) is None, key


def test_every_media_object_a_job_stores_can_be_served() -> None:
    layout = JobLayout("fox-at-dawn")
    media = {
        layout.image(1): "image/png",
        layout.clip(500): "video/mp4",
        layout.take_key("images", 7, 2): "image/png",
        layout.take_key("clips", 500, 4): "video/mp4",
        layout.preview("clips-r2-007.jpg"): "image/jpeg",
        layout.preview("images-r1-contact-sheet.jpg"): "image/jpeg",
        layout.final: "video/mp4",
        layout.final_poster: "image/jpeg",
        layout.final_preview("gif"): "image/gif",
        layout.final_preview("webp"): "image/webp",
        layout.final_subtitles: "text/plain; charset=utf-8",
    }
    assert {key: media_type_for(key) for key in media} == media
    assert media_type_for(layout.manifest) is None and media_type_for(layout.progress) is None


def test_nothing_served_runs_script_in_a_browser() -> None:
    assert not {
        t for t in MEDIA_TYPES.values() if "html" in t or "xml" in t or "javascript" in t or "json" in t
    }


def test_local_objects_link_to_the_api_servers_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    key = JobLayout("demo").image(3)
    assert (
        preview_url(storage, key)
        == "https://airflow.example.com/video-previews/files/jobs/demo/images/003.png"
    )


@pytest.fixture
def s3(aws_env: None) -> Iterator[Storage]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        yield open_storage("s3://bucket/pipeline", s3_client=client)


def test_s3_objects_get_week_long_presigned_links(s3: Storage) -> None:
    key = JobLayout("demo").clip(1)
    before = time.time()
    url = urlparse(preview_url(s3, key))
    assert url.path.endswith("/pipeline/jobs/demo/clips/001.mp4")
    query = parse_qs(url.query)
    assert "Signature" in query
    assert int(before) + PRESIGNED_TTL_S <= int(query["Expires"][0]) <= time.time() + PRESIGNED_TTL_S + 1
