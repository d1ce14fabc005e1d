"""ProviderTaskTrigger (here polling Runway tasks) against the fake Runway server over real HTTP, credentials from the connection env var:
polling, the deadline (cancel + TIMEOUT), and what happens when Airflow cancels the trigger."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from video_pipeline.providers.base import ImageRequest
from video_pipeline.providers.runway import RunwayClient
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import Submission, create_submission, job_submissions, ledger
from video_pipeline_airflow.triggers.provider import STOP_MODULE, ProviderTaskTrigger, cancel_if_stopped
from video_pipeline_dev.fake_runway import FakeRunway

KEY = "rk_trigger_canary_0b9e"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.4) as server:
        yield server


@pytest.fixture(autouse=True)
def runway_connection(fake: FakeRunway, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "http", "host": fake.base_url, "password": KEY}
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))


def submit(fake: FakeRunway, prompt: str) -> str:
    with RunwayClient(fake.base_url, KEY) as client:
        return client.text_to_image(
            ImageRequest(prompt=prompt, seed=1, ratio="1280:720", model="gen4_image", index=1)
        )


def RunwayTaskTrigger(**kwargs: Any) -> ProviderTaskTrigger:
    return ProviderTaskTrigger(provider="runway", **kwargs)


async def first_event(trigger: ProviderTaskTrigger) -> dict[str, Any]:
    event = await asyncio.wait_for(trigger.run().__anext__(), 20)
    return dict(event.payload)


def test_serialize_round_trip_without_the_key() -> None:
    trigger = RunwayTaskTrigger(provider_task_id="abc", poll_interval=0.1)
    path, kwargs = trigger.serialize()
    assert path == "video_pipeline_airflow.triggers.provider.ProviderTaskTrigger"
    assert ProviderTaskTrigger(**kwargs).serialize() == (path, kwargs)
    assert KEY not in repr(kwargs)


async def test_polls_until_succeeded(fake: FakeRunway) -> None:
    task_id = submit(fake, "a lantern")
    event = await first_event(RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1))
    assert event["state"] == "succeeded"
    # No output URL in the event: it is signed, and the triggerer logs every event it fires.
    assert "output" not in event and fake.base_url not in json.dumps(event)
    assert fake.stats()["polls"][task_id] >= 2  # it waited through PENDING/RUNNING


async def test_failure_is_reported_with_its_code(fake: FakeRunway) -> None:
    task_id = submit(fake, "unsafe [fail:SAFETY.INPUT.TEXT]")
    event = await first_event(RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1))
    assert (event["state"], event["code"], event["action"]) == ("failed", "SAFETY.INPUT.TEXT", "fail")


async def test_unknown_task_is_an_error_event(fake: FakeRunway) -> None:
    event = await first_event(
        RunwayTaskTrigger(provider_task_id="00000000-0000-0000-0000-000000000000", poll_interval=0.1)
    )
    assert event["event"] == "error" and event["error_type"] == "RunwayNotFound"
    assert KEY not in json.dumps(event)


async def test_an_event_that_resumes_the_worker_waits_for_the_deferral_to_settle(fake: FakeRunway) -> None:
    task_id = submit(fake, "a quick lantern")
    time.sleep(1.0)  # the provider task is done before the trigger starts
    started = time.monotonic()
    trigger = RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1, settle_until=time.time() + 0.5)
    event = await first_event(trigger)
    assert event["state"] == "succeeded"
    assert time.monotonic() - started >= 0.49
    assert ProviderTaskTrigger(**trigger.serialize()[1]).settle_until == trigger.settle_until


def test_serialize_keeps_the_deadline_and_the_record() -> None:
    trigger = RunwayTaskTrigger(
        provider_task_id="abc",
        deadline=1_900_000_000.5,
        job_id="job",
        run_id="manual__1",
        kind="clips",
        digest="d" * 64,
        record_id="r1",
    )
    path, kwargs = trigger.serialize()
    assert ProviderTaskTrigger(**kwargs).serialize() == (path, kwargs)
    assert kwargs["deadline"] == 1_900_000_000.5 and kwargs["record_id"] == "r1"


async def test_a_task_stuck_in_the_queue_is_cancelled_at_its_deadline(fake: FakeRunway) -> None:
    fake.reset(api_key=KEY, image_latency=30, concurrency=1)
    running = submit(fake, "first in line")
    queued = submit(fake, "stuck behind it")  # THROTTLED behind the account's concurrency limit
    started = time.monotonic()
    event = await first_event(
        RunwayTaskTrigger(provider_task_id=queued, poll_interval=0.1, deadline=time.time() + 0.6)
    )
    waited = time.monotonic() - started
    assert event["event"] == "timeout" and event["last_status"] == "THROTTLED" and event["cancelled"] is True
    assert 0.5 <= waited < 3
    assert fake.stats()["deletes"] == 1
    by_status = fake.tasks_by_status
    assert by_status["DELETED"] == 1 and by_status["THROTTLED"] == 0
    with RunwayClient(fake.base_url, KEY) as client:
        assert client.get_task(running).status in ("PENDING", "RUNNING")  # only the stuck task was cancelled


async def test_a_task_that_finishes_before_its_deadline_is_not_cancelled(fake: FakeRunway) -> None:
    fake.reset(api_key=KEY, image_latency=0.3)
    task_id = submit(fake, "quick")
    event = await first_event(
        RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1, deadline=time.time() + 30)
    )
    assert event["state"] == "succeeded" and fake.stats()["deletes"] == 0


def record_for(storage: LocalStorage, task_id: str) -> Submission:
    record = Submission(
        state="submitted",
        provider="runway",
        provider_task_id=task_id,
        job_id="job",
        run_id="run-1",
        dag_id="video_generation",
        task_id="generate_image",
        map_index=0,
        index=1,
        seed=1,
        credits=5,
        digest="d" * 64,
    )
    assert create_submission(storage, record)
    return record


def trigger_for(record: Submission) -> ProviderTaskTrigger:
    return RunwayTaskTrigger(
        provider_task_id=str(record.provider_task_id),
        poll_interval=0.1,
        job_id=record.job_id,
        run_id=record.run_id,
        kind=record.kind,
        digest=record.digest,
        record_id=record.record_id,
    )


async def test_without_the_stop_module_on_kill_leaves_the_task(
    fake: FakeRunway, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.reset(api_key=KEY, image_latency=30)
    monkeypatch.setitem(sys.modules, STOP_MODULE, None)  # not installed: importing it fails
    task_id = submit(fake, "left running")
    await RunwayTaskTrigger(provider_task_id=task_id).on_kill()
    assert await cancel_if_stopped(RunwayTaskTrigger(provider_task_id=task_id)) is None
    assert fake.stats()["deletes"] == 0  # left for the run's end or the salvage sweep


class StopStandIn(types.ModuleType):
    """Stands in for ``video_pipeline_airflow.stop`` (built and tested separately): its contract as merged —
    ``register_stop_handler(handler)``, and ``report_if_stopped(trigger, details=…)`` which decides what
    happened to the task (here: as told) and, for a stop, calls each handler with a ``Stop`` on a thread."""

    def __init__(self) -> None:
        super().__init__(STOP_MODULE)
        self.reason: str | None = "task_marked_failed"
        self.handlers: list[Any] = []

    def register_stop_handler(self, handler: Any, **_: Any) -> None:
        if handler not in self.handlers:
            self.handlers.append(handler)

    async def report_if_stopped(self, trigger: Any, cancelled: Any = None, *, details: Any = None) -> Any:
        if self.reason is None:
            return None
        stop = SimpleNamespace(
            dag_id="video_generation",
            run_id=details["run_id"],
            reason=SimpleNamespace(value=self.reason),
            conf=None,
            task_id="generate_image",
            map_index=0,
            details=details,
            is_run_stop=False,
            describe=lambda: f"generate_image[0]: {self.reason}",
        )
        for handler in self.handlers:
            await asyncio.to_thread(handler, stop)
        return self.reason


@pytest.fixture
def stop_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StopStandIn:
    module = StopStandIn()
    monkeypatch.setitem(sys.modules, STOP_MODULE, module)
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    return module


@pytest.mark.parametrize("reason", ["task_cleared", "task_stopped_state_unknown", None])
async def test_a_clear_or_a_moved_trigger_leaves_the_provider_task(
    fake: FakeRunway, stop_module: StopStandIn, tmp_path: Path, reason: str | None
) -> None:
    fake.reset(api_key=KEY, image_latency=30)
    stop_module.reason = reason
    storage = LocalStorage(tmp_path)
    record = record_for(storage, submit(fake, "cleared"))
    assert await cancel_if_stopped(trigger_for(record)) == reason
    assert fake.stats()["deletes"] == 0  # a clear's next try resumes this provider task
    assert [r.record_id for r in job_submissions(storage, "job")] == [record.record_id]


async def test_a_persons_stop_cancels_the_provider_task_and_records_it(
    fake: FakeRunway, stop_module: StopStandIn, tmp_path: Path
) -> None:
    fake.reset(api_key=KEY, image_latency=30)
    storage = LocalStorage(tmp_path)
    other = record_for(storage, submit(fake, "another segment")).model_copy()
    task_id = submit(fake, "stopped by a person")
    stopped = Submission.model_validate(
        {**other.model_dump(), "record_id": "r-stopped", "provider_task_id": task_id, "digest": "e" * 64}
    )
    assert create_submission(storage, stopped)

    await trigger_for(stopped).on_kill()  # what the triggerer calls after a person's action
    assert fake.stats()["deletes"] == 1  # only the stopped task's provider task
    with RunwayClient(fake.base_url, KEY) as client:
        assert client.get_task(str(other.provider_task_id)).status in ("PENDING", "RUNNING")
    assert [r.record_id for r in job_submissions(storage, "job")] == [other.record_id]
    assert [(e.event, e.refund, e.provider_task_id) for e in ledger(storage, "job")] == [
        ("cancelled", "unknown", task_id)
    ]
