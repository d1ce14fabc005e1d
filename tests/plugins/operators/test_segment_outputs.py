"""A bad Runway output fails its segment clearly, stays out of the cache, and the retry submits anew.

In-process against the fake Runway server (real HTTP) and real local storage, like test_segment.py: the operator
defers (submission recorded), the trigger's event is the task's terminal status, ``execute_complete`` downloads.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from airflow.sdk.exceptions import TaskDeferred

from video_pipeline.models import JobSpec
from video_pipeline.providers.runway import RunwayClient, remote_status
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.operators.segment import GenerateImageOperator
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_outputs_canary_31bc"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.1) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.1)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    return LocalStorage(tmp_path)


def operator() -> GenerateImageOperator:
    spec = JobSpec.model_validate(
        {"job_id": "out", "title": "t", "provider": "runway", "segments": [{"prompt": "a heron in reeds"}]}
    )
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segments_for(spec)[0].model_dump(mode="json"),
        total=1,
    )


def submit() -> str:
    with pytest.raises(TaskDeferred) as deferred:
        operator().execute({})
    return str(deferred.value.trigger.provider_task_id)


def complete(fake: FakeRunway, task_id: str) -> tuple[dict[str, Any], str]:
    """The trigger's event (the terminal status) handed to a fresh operator; also the output URL."""
    with RunwayClient(fake.base_url, KEY) as client:
        deadline = time.monotonic() + 10
        while not (status := client.get_task(task_id)).terminal and time.monotonic() < deadline:
            time.sleep(0.05)
    event = {"event": "done", **remote_status(status).model_dump(mode="json")}
    return operator().execute_complete({}, event, started="2026-01-01T00:00:00+00:00"), status.output[0]


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"output_body": "html"}, "it is an HTML page"),
        ({"output_body": "truncated"}, "corrupt or truncated PNG"),
        ({"output_redirect": "http://169.254.169.254/latest/meta-data/iam/"}, "internal address"),
    ],
)
def test_a_bad_output_fails_the_segment_and_the_retry_resubmits(
    storage: LocalStorage,
    fake: FakeRunway,
    caplog: pytest.LogCaptureFixture,
    settings: dict[str, Any],
    reason: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = submit()
    fake.configure(**settings)
    with pytest.raises(
        RuntimeError, match=f"refused and not cached .*{reason}.*the retry submits again"
    ) as info:
        complete(fake, first)
    assert not [k for k in storage.list("") if k.startswith(("cache/", "jobs/out/images/"))]
    assert not list(storage.list("provider-tasks/"))  # the record is cleared: the retry does not resume it

    fake.configure(output_body="ok", output_redirect=None)
    retry = submit()
    assert retry != first
    assert fake.stats()["posts"] == {"/v1/text_to_image": 2}  # resubmitted (and paid) once more, knowingly
    result, url = complete(fake, retry)
    assert result["image_key"] == "jobs/out/images/001.png" and result["image_task_id"] == retry
    assert [k for k in storage.list("cache/")]
    signature = httpx.URL(url).params["sig"]
    for text in (caplog.text, str(info.value)):
        assert signature not in text and KEY not in text
