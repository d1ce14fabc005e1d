"""The pipeline's stop handler against the fake Runway server over HTTP: what each kind of stop cancels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_runway import FakeRunway
from video_pipeline.providers.base import ImageRequest
from video_pipeline.providers.runway import RunwayClient
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import Submission, create_submission, job_submissions, ledger
from video_pipeline_airflow import stop
from video_pipeline_airflow.stop import Stop, StopReason
from video_pipeline_airflow.stop_handlers import cancel_stopped_work

KEY = "rk_stop_handler_canary_51c2"
DAG = "video_generation"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=60) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=60)
    conn = {"conn_type": "http", "host": fake.base_url, "password": KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    return LocalStorage(tmp_path)


def running_task(fake: FakeRunway, storage: LocalStorage, run_id: str, map_index: int) -> Submission:
    """A provider task in flight at the fake, recorded as segment ``map_index + 1`` of ``run_id`` submitted it."""
    with RunwayClient(fake.base_url, KEY) as client:
        task_id = client.text_to_image(
            ImageRequest(prompt=f"seg {map_index}", seed=1, ratio="1280:720", model="gen4_image", index=1)
        )
    record = Submission(
        state="submitted",
        provider="runway",
        provider_task_id=task_id,
        job_id="fox",
        run_id=run_id,
        dag_id=DAG,
        task_id="generate_image",
        map_index=map_index,
        index=map_index + 1,
        seed=1,
        credits=5,
        digest=f"{map_index:064d}",
    )
    assert create_submission(storage, record)
    return record


def in_flight(storage: LocalStorage) -> set[str | None]:
    return {r.provider_task_id for r in job_submissions(storage, "fox")}


def test_a_task_stopped_in_the_triggerer_cancels_only_its_provider_task(
    fake: FakeRunway, storage: LocalStorage
) -> None:
    stopped = running_task(fake, storage, "run-1", 0)
    other = running_task(fake, storage, "run-1", 1)
    # What the trigger's on_kill reports: no conf, the record's coordinates in the details.
    cancel_stopped_work(
        Stop(
            DAG,
            "run-1",
            StopReason.TASK_MARKED_FAILED,
            task_id="generate_image",
            map_index=0,
            details={"job_id": "fox", "provider_task_id": stopped.provider_task_id},
        )
    )
    assert fake.stats()["deletes"] == 1
    assert in_flight(storage) == {other.provider_task_id}
    assert [(e.event, e.provider_task_id) for e in ledger(storage, "fox") if e.event == "cancelled"] == [
        ("cancelled", stopped.provider_task_id)
    ]


def test_a_cleared_task_keeps_its_provider_task_for_its_next_try(
    fake: FakeRunway, storage: LocalStorage
) -> None:
    record = running_task(fake, storage, "run-1", 0)
    cancel_stopped_work(
        Stop(
            DAG,
            "run-1",
            StopReason.TASK_CLEARED,
            task_id="generate_image",
            map_index=0,
            conf={"job_id": "fox"},
        )
    )
    assert fake.stats()["deletes"] == 0
    assert in_flight(storage) == {record.provider_task_id}


def test_a_stopped_run_cancels_its_own_provider_tasks_and_no_other_runs(
    fake: FakeRunway, storage: LocalStorage
) -> None:
    mine = [running_task(fake, storage, "run-1", i) for i in range(2)]
    other_run = running_task(fake, storage, "run-2", 5)
    for _ in range(2):  # reported twice (api-server and scheduler): the second finds nothing left to do
        cancel_stopped_work(Stop(DAG, "run-1", StopReason.RUN_MARKED_FAILED, conf={"job_id": "fox"}))
    assert fake.stats()["deletes"] == len(mine)
    assert in_flight(storage) == {other_run.provider_task_id}


def test_the_pipeline_handler_is_registered_for_every_process() -> None:
    """stop.py imports the handler module by default, so the api-server, scheduler and triggerer all have it."""
    assert "video_pipeline_airflow.stop_handlers" in stop.DEFAULT_HANDLER_MODULES
    assert stop.watches(DAG, "generate_image") and stop.watches(DAG, "animate_segment")
