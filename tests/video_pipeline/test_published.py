"""What a finished job publishes: storage URIs (never presigned links), this run's credits, the keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from video_pipeline.models import FinalVideo, JobSpec, Manifest, RunRecord
from video_pipeline.published import PublishedVideo, object_uri
from video_pipeline.storage import LocalStorage, S3Storage

JOB = JobSpec.model_validate({"job_id": "fox", "title": "Fox", "segments": [{"prompt": "A fox"}]})
FINAL = FinalVideo(
    key="jobs/fox/final.mp4", duration_s=5.0416, width=1280, height=720, codec="h264", size_bytes=9
)


def manifest(run_id: str = "run-2") -> Manifest:
    return Manifest(
        job=JOB,
        run_id=run_id,
        final=FINAL,
        credits_spent=130.0,
        runs=[RunRecord(run_id="run-1", credits_spent=80.0), RunRecord(run_id=run_id, credits_spent=50.0)],
    )


def test_object_uri_is_the_storage_root_and_the_key(tmp_path: Path) -> None:
    assert object_uri(LocalStorage(tmp_path), "jobs/a/final.mp4") == f"{tmp_path.as_uri()}/jobs/a/final.mp4"
    s3 = S3Storage("bucket", "pipeline", client=None)
    assert object_uri(s3, "jobs/a/final.mp4") == "s3://bucket/pipeline/jobs/a/final.mp4"
    assert object_uri(S3Storage("bucket", "", client=None), "jobs/a/m.json") == "s3://bucket/jobs/a/m.json"


def test_a_published_video_names_the_run_its_credits_and_where_everything_is() -> None:
    published = PublishedVideo.of(S3Storage("bucket", "pipeline", client=None), manifest(), "run-2")
    assert published.model_dump(mode="json") == {
        "job_id": "fox",
        "run_id": "run-2",
        "title": "Fox",
        "duration_s": 5.042,
        "width": 1280,
        "height": 720,
        "credits_spent": 50.0,
        "credits_spent_job": 130.0,
        "final_key": "jobs/fox/final.mp4",
        "final_uri": "s3://bucket/pipeline/jobs/fox/final.mp4",
        "manifest_key": "jobs/fox/manifest.json",
        "manifest_uri": "s3://bucket/pipeline/jobs/fox/manifest.json",
        "storage_url": "s3://bucket/pipeline",
    }


def test_a_run_without_a_record_spent_nothing(tmp_path: Path) -> None:
    assert PublishedVideo.of(LocalStorage(tmp_path), manifest(), "run-3").credits_spent == 0.0


def test_nothing_to_publish_without_a_final_video(tmp_path: Path) -> None:
    unfinished = manifest().model_copy(update={"final": None})
    with pytest.raises(ValueError, match="no final video"):
        PublishedVideo.of(LocalStorage(tmp_path), unfinished, "run-2")
