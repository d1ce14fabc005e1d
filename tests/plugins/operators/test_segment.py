"""The Runway path of the segment operators, in-process against the fake Runway server and real storage.

A "crash after submit" is the operator deferring (the provider task id is already persisted) and a new
operator instance — the retry — running ``execute`` again.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from tests.support.fake_runway import FakeRunway
from tests.support.moto_s3 import MotoS3
from video_pipeline.models import JobSpec
from video_pipeline.providers.runway import RunwayClient
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage, Storage, open_storage
from video_pipeline.submissions import Submission, load_submission
from video_pipeline_airflow.operators import segment as segment_module
from video_pipeline_airflow.operators.segment import (
    AnimateSegmentOperator,
    GenerateImageOperator,
    record_paid_submission,
)
from video_pipeline_airflow.stages import cancel_in_flight

KEY = "rk_operator_canary_77aa"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT",
        json.dumps({"conn_type": "http", "host": fake.base_url, "password": KEY}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_RUNWAY_POLL_SECONDS", "0.1")
    return LocalStorage(tmp_path)


def job(prompt: str = "a lantern over dark water", **overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "op", "title": "t", "provider": "runway", "segments": [{"prompt": prompt}], **overrides}
    )


def operator(spec: JobSpec) -> GenerateImageOperator:
    segment = segments_for(spec)[0]
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )


def deferred_task_id(op: GenerateImageOperator) -> str:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    return str(deferred.value.trigger.provider_task_id)


def complete(op: GenerateImageOperator, fake: FakeRunway, task_id: str) -> dict[str, Any]:
    """What the trigger hands back: the task's terminal status."""
    deadline = time.monotonic() + 10
    with RunwayClient(fake.base_url, KEY) as client:
        while not (status := client.get_task(task_id)).terminal and time.monotonic() < deadline:
            time.sleep(0.1)
    event = status.model_dump(mode="json", by_alias=True)
    return op.execute_complete({}, event, started="2026-01-01T00:00:00+00:00")


def test_a_retry_after_submit_resumes_instead_of_paying_again(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job()
    first = deferred_task_id(operator(spec))
    second = deferred_task_id(operator(spec))  # the retry of a worker that died while waiting
    assert second == first
    assert fake.stats()["posts"] == {"/v1/text_to_image": 1}

    result = complete(operator(spec), fake, first)
    assert result["image_key"] == "jobs/op/images/001.png" and result["image_task_id"] == first
    assert storage.exists("jobs/op/images/001.png")
    assert not list(storage.list("provider-tasks/"))  # the record is gone once the output is safe

    # A third run of the same inputs is a cache hit: no request at all.
    fake.reset_counters()
    assert operator(spec).execute({})["image_cache_hit"] is True
    assert fake.stats()["posts"] == {}


def test_safety_failure_fails_without_retry(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job("forbidden [fail:SAFETY.INPUT.TEXT]")
    task_id = deferred_task_id(operator(spec))
    with pytest.raises(AirflowFailException, match=r"SAFETY\.INPUT\.TEXT"):
        complete(operator(spec), fake, task_id)
    assert not list(storage.list("provider-tasks/"))


def test_bad_output_retries_with_a_new_seed(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job("flaky [fail-once:INTERNAL.BAD_OUTPUT.CODE01]")
    task_id = deferred_task_id(operator(spec))
    with pytest.raises(RuntimeError, match="new seed"):
        complete(operator(spec), fake, task_id)
    retry_id = deferred_task_id(operator(spec))
    assert retry_id != task_id
    assert complete(operator(spec), fake, retry_id)["image_task_id"] == retry_id
    assert fake.stats()["posts"] == {"/v1/text_to_image": 2}
    assert fake.stats()["duplicate_submissions"] == 0  # same prompt, so the seed changed


def test_budget_is_checked_before_submitting(storage: LocalStorage, fake: FakeRunway) -> None:
    with pytest.raises(AirflowFailException, match="budget_credits 3 would be exceeded"):
        operator(job(budget_credits=3)).execute({})
    assert fake.stats()["posts"] == {}


def test_credits_exhausted_stops_the_whole_job(storage: LocalStorage, fake: FakeRunway) -> None:
    fake.reset(api_key=KEY, credits=1)
    with pytest.raises(AirflowFailException, match="whole job stops"):
        operator(job()).execute({})
    fake.reset(api_key=KEY)  # credits are back, but the job stays stopped until a person looks
    with pytest.raises(AirflowFailException, match="the job was stopped"):
        operator(job("another segment")).execute({})
    assert fake.stats()["posts"] == {}


def test_cancel_in_flight_deletes_the_provider_task(storage: LocalStorage, fake: FakeRunway) -> None:
    deferred_task_id(operator(job()))  # submitted, waiting
    assert cancel_in_flight("op") == 1
    assert fake.stats()["deletes"] == 1
    assert not list(storage.list("provider-tasks/"))
    assert cancel_in_flight("op") == 0  # nothing left in flight


def test_presigned_image_source_sends_an_https_link(
    fake: FakeRunway, monkeypatch: pytest.MonkeyPatch, aws_env: None
) -> None:
    fake.reset(api_key=KEY, video_latency=0.2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT",
        json.dumps({"conn_type": "http", "host": fake.base_url, "password": KEY}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", "s3://media/p")
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_RUNWAY_IMAGE_SOURCE", "presigned")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="media")
        storage = open_storage("s3://media/p", s3_client=boto3.client("s3"))
        spec = job()
        segment = segments_for(spec)[0].model_copy(update={"image_key": "jobs/op/images/001.png"})
        storage.put_bytes("jobs/op/images/001.png", b"\x89PNG fake image")
        op = AnimateSegmentOperator(
            task_id="animate_segment",
            job=spec.model_dump(mode="json"),
            segment=segment.model_dump(mode="json"),
            total=1,
        )
        with pytest.raises(TaskDeferred):
            op.execute({})
    assert fake.stats()["posts"] == {"/v1/image_to_video": 1}
    assert fake.stats()["uploads_completed"] == 0  # no upload: Runway fetches the presigned https link
    (task,) = fake._state.tasks.values()
    assert task.body["promptImage"].startswith("https://") and "Signature" in task.body["promptImage"]


@pytest.fixture
def flaky_s3(aws_env: None) -> Iterator[tuple[MotoS3, Storage]]:
    server = MotoS3()
    server.start()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="records")
    yield server, open_storage("s3://records/p", s3_client=client)
    server.stop()


def paid(task_id: str) -> Submission:
    return Submission(
        provider="runway", provider_task_id=task_id, job_id="op", index=1, seed=1, credits=5, digest="d" * 64
    )


def test_a_paid_submission_is_recorded_through_a_storage_outage(flaky_s3: tuple[MotoS3, Storage]) -> None:
    server, s3 = flaky_s3
    server.stop()
    threading.Timer(2.0, server.start).start()
    record_paid_submission(s3, "images", paid("task-during-outage"))
    recorded = load_submission(s3, "images", "d" * 64)
    assert recorded is not None and recorded.provider_task_id == "task-during-outage"
    assert s3.exists("jobs/op/spend/task-during-outage.json")


def test_recording_gives_up_after_its_patience(
    flaky_s3: tuple[MotoS3, Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, s3 = flaky_s3
    monkeypatch.setattr(segment_module, "RECORD_PATIENCE_S", 1.0)
    server.stop()
    with pytest.raises(EndpointConnectionError):
        record_paid_submission(s3, "images", paid("task-lost"))
