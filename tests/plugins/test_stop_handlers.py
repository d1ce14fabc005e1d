"""The paid-work stop handler: a person's stop of a run or a segment task, against the fake Runway server.

``Stop`` objects are built here as the stop module hands them over (``dag_id``, ``run_id``, ``reason``,
``conf``, ``task_id``, ``map_index``, ``details``); that module and its listeners are tested separately.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from video_pipeline.claims import claim_job, current_claim
from video_pipeline.manifest import begin_run, load_manifest
from video_pipeline.models import JobSpec
from video_pipeline.providers.runway import RunwayClient
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import job_submissions, ledger
from video_pipeline_airflow import stop_handlers
from video_pipeline_airflow.operators.segment import GenerateImageOperator
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_stop_handlers_canary_5d1"
DAG = "video_generation"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=30) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=30)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch)
    return LocalStorage(tmp_path)


SPEC = JobSpec.model_validate(
    {
        "job_id": "stopme",
        "title": "t",
        "provider": "runway",
        "segments": [{"prompt": "a lantern"}, {"prompt": "a ferry"}],
    }
)


def submit(index: int, run_id: str = "run-1") -> str:
    """Segment ``index`` (0-based) submitted by its image task in ``run_id``; returns the provider task id."""
    segment = segments_for(SPEC)[index]
    op = GenerateImageOperator(
        task_id="generate_image",
        job=SPEC.settings().model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=2,
    )
    ti = SimpleNamespace(dag_id=DAG, run_id=run_id, map_index=index, try_number=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"run_id": run_id, "ti": ti})  # type: ignore[typeddict-item]
    return str(deferred.value.trigger.provider_task_id)


def stop(reason: str, *, task: int | None = None, conf: bool = True, details: Any = None) -> SimpleNamespace:
    return SimpleNamespace(
        dag_id=DAG,
        run_id="run-1",
        reason=SimpleNamespace(value=reason),
        conf={"job_id": "stopme", **SPEC.model_dump(mode="json")} if conf else None,
        task_id=None if task is None else "generate_image",
        map_index=task,
        details=details,
        is_run_stop=task is None,
        describe=lambda: reason,
    )


def status(fake: FakeRunway, task_id: str) -> str:
    with RunwayClient(fake.base_url, KEY, max_retries=0) as client:
        return client.get_task(task_id).status


def test_a_run_marked_failed_stops_its_spending_and_releases_the_job(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    claim_job(storage, "stopme", "run-1", DAG, lambda d, r: True)
    begin_run(storage, SPEC, "run-1", segments_for(SPEC), 10)
    submit(0)
    submit(1)

    stop_handlers.handle_stop(stop("run_marked_failed"))
    assert fake.stats()["deletes"] == 2 and fake.tasks_by_status["DELETED"] == 2
    assert job_submissions(storage, "stopme") == []
    assert [e.event for e in ledger(storage, "stopme")][-2:] == ["cancelled", "cancelled"]
    assert current_claim(storage, "stopme") is None
    manifest = load_manifest(storage, "stopme")
    assert manifest is not None and [(r.run_id, r.status) for r in manifest.runs] == [("run-1", "stopped")]
    # Nothing more is submitted for that run (a task still about to POST finds the run's STOPPED marker).
    fake.reset_counters()
    with pytest.raises(AirflowFailException, match="the job was stopped: stopped: run_marked_failed"):
        submit(0)
    assert fake.stats()["posts"] == {}
    # Reported again (by another process): nothing changes.
    stop_handlers.handle_stop(stop("run_marked_failed"))
    assert fake.stats()["deletes"] == 0


def test_a_run_the_scheduler_failed_is_recorded_as_failed(storage: LocalStorage, fake: FakeRunway) -> None:
    claim_job(storage, "stopme", "run-1", DAG, lambda d, r: True)
    begin_run(storage, SPEC, "run-1", segments_for(SPEC), 10)
    stop_handlers.handle_stop(stop("run_timed_out"))
    manifest = load_manifest(storage, "stopme")
    assert manifest is not None and manifest.runs[0].status == "failed"


def test_a_task_marked_failed_cancels_only_its_own_provider_task(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    first, second = submit(0), submit(1)
    stop_handlers.handle_stop(stop("task_marked_failed", task=1))  # the api-server's report: conf, no details
    assert status(fake, first) in ("PENDING", "RUNNING")
    assert fake.stats()["deletes"] == 1 and fake.tasks_by_status["DELETED"] == 1
    assert [r.provider_task_id for r in job_submissions(storage, "stopme")] == [first]
    assert [(e.event, e.provider_task_id) for e in ledger(storage, "stopme")][-1] == ("cancelled", second)


@pytest.mark.parametrize("reason", ["task_cleared", "task_stopped_state_unknown"])
def test_a_cleared_task_keeps_its_provider_task(storage: LocalStorage, fake: FakeRunway, reason: str) -> None:
    submit(0)
    stop_handlers.handle_stop(stop(reason, task=0))
    assert fake.stats()["deletes"] == 0 and len(job_submissions(storage, "stopme")) == 1


def test_a_stop_without_a_job_changes_nothing(storage: LocalStorage, fake: FakeRunway) -> None:
    submit(0)
    stop_handlers.handle_stop(stop("run_marked_failed", conf=False))
    assert fake.stats()["deletes"] == 0


def test_registered_once_with_the_stop_module(monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[Any] = []
    module = types.ModuleType(stop_handlers.STOP_MODULE)
    module.register_stop_handler = lambda handler: registered.append(handler)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, stop_handlers.STOP_MODULE, module)
    assert stop_handlers.register() is True
    assert registered == [stop_handlers.handle_stop]
    monkeypatch.setitem(sys.modules, stop_handlers.STOP_MODULE, None)
    assert stop_handlers.register() is False
