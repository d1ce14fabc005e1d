"""ProviderTaskTrigger finishing a segment task itself (the hand-off), against the fake Runway server over real
HTTP and local storage: the segment operator submits and defers as on a worker, the trigger polls, downloads,
stores and ends the task with its XCom, or hands the task back to a worker with its ordinary event."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.execution_time.context import set_current_context
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from video_pipeline.layout import JobLayout
from video_pipeline.models import JobSpec
from video_pipeline.progress import ProgressEvent
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import clear_submission, job_submissions, ledger, stop_run
from video_pipeline_airflow import compat
from video_pipeline_airflow.operators.segment import GenerateImageOperator
from video_pipeline_airflow.triggers import settle
from video_pipeline_airflow.triggers.provider import ProviderTaskTrigger
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_handoff_canary_5c1d"
RUN_ID = "manual__2026-12-01T09:00:00+00:00"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture(autouse=True)
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Events that hand the task back wait for the deferral to settle (3 s); settle.py's own tests cover that."""
    monkeypatch.setattr(settle, "DEFERRAL_SETTLE_S", 0.1)


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalStorage]:
    fake.reset(api_key=KEY, image_latency=0.2)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    with set_current_context({"run_id": RUN_ID}):  # as the Task Runner sets it for execute()
        yield LocalStorage(tmp_path)


def job(job_id: str = "handoff", **overrides: Any) -> JobSpec:
    segments = [{"prompt": "a lantern over dark water"}]
    return JobSpec.model_validate(
        {"job_id": job_id, "title": "t", "provider": "runway", "segments": segments, **overrides}
    )


def operator(spec: JobSpec, index: int = 0) -> GenerateImageOperator:
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segments_for(spec)[index].model_dump(mode="json"),
        total=len(segments_for(spec)),
    )


def deferred(op: GenerateImageOperator) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        op.execute({})
    return caught.value


#: The task instance the triggerer hands the trigger (``trigger.task_instance``).
TI = SimpleNamespace(dag_id="video_generation", task_id="generate_image", run_id=RUN_ID, map_index=0)


class XComStore:
    """Stands in for the XCom backend behind the triggerer's supervisor: keeps what a trigger sets, as JSON."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str, str, int, str], Any] = {}

    async def aset(
        self, key: str, value: Any, *, dag_id: str, task_id: str, run_id: str, map_index: int
    ) -> None:
        self.values[(dag_id, task_id, run_id, map_index, key)] = json.loads(json.dumps(value))


@pytest.fixture
def xcoms(monkeypatch: pytest.MonkeyPatch) -> XComStore:
    store = XComStore()
    monkeypatch.setattr(compat, "xcom_backend", lambda: store)
    return store


def restarted(trigger: ProviderTaskTrigger) -> ProviderTaskTrigger:
    """The trigger as a (re)started triggerer re-creates it: from its serialized kwargs, with its task
    instance."""
    path, kwargs = trigger.serialize()
    assert path == "video_pipeline_airflow.triggers.provider.ProviderTaskTrigger"
    recreated = ProviderTaskTrigger(**json.loads(json.dumps(kwargs)))
    recreated.task_instance = TI  # type: ignore[assignment]
    return recreated


async def first_event(trigger: ProviderTaskTrigger) -> TriggerEvent:
    return await asyncio.wait_for(trigger.run().__anext__(), 30)


def ended_with(event: TriggerEvent, xcoms: XComStore) -> dict[str, Any]:
    """The return value of a task the trigger ended (set through the XCom backend before the event)."""
    assert isinstance(event, TaskSuccessEvent) and not event.xcoms
    value = xcoms.values[(TI.dag_id, TI.task_id, TI.run_id, TI.map_index, "return_value")]
    assert isinstance(value, dict)
    return value


def resume(op: GenerateImageOperator, event: TriggerEvent, defer: TaskDeferred) -> dict[str, Any]:
    """The worker's side: the task resumed with the trigger's event."""
    return op.execute_complete({}, event.payload, **(defer.kwargs or {}))


async def test_the_last_take_is_stored_and_the_task_ended_by_the_trigger(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    defer = deferred(operator(job()))
    trigger = restarted(defer.trigger)
    kwargs = json.dumps(trigger.serialize()[1])
    assert KEY not in kwargs and "sig=" not in kwargs  # no key, no signed URL in what the DB stores
    event = await first_event(trigger)

    result = ended_with(event, xcoms)
    assert result["image_key"] == "jobs/handoff/images/001.png"
    assert result["image_task_id"] == defer.trigger.provider_task_id
    assert result["image_cache_hit"] is False
    assert result["image_started_at"] and result["image_finished_at"]
    assert storage.get_bytes("jobs/handoff/images/001.png").endswith(b"IEND\xaeB`\x82")
    assert job_submissions(storage, "handoff") == []  # the record is gone once the output is safe
    assert [e.event for e in ledger(storage, "handoff")] == ["reserved", "submitted"]
    milestone = JobLayout("handoff").progress_event(RUN_ID, 1, "images", 1)
    assert ProgressEvent.model_validate_json(storage.get_bytes(milestone)).final
    stats = fake.stats()
    assert stats["posts"] == {"/v1/text_to_image": 1} and stats["downloads"] == 1


async def test_a_task_the_trigger_ends_does_not_wait_for_the_deferral_to_settle(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settle wait guards only events that resume a worker (test_provider.py checks that they wait)."""
    monkeypatch.setattr(settle, "DEFERRAL_SETTLE_S", 60.0)
    defer = deferred(operator(job()))
    trigger = restarted(defer.trigger)
    assert trigger.settle_until is not None and trigger.settle_until > time.time() + 50
    started = time.monotonic()
    ended_with(await first_event(trigger), xcoms)
    assert time.monotonic() - started < 20  # the fake answers in 0.2 s; the settle time would be 60 s


async def test_a_trigger_recreated_after_it_finished_ends_the_task_again_without_a_download(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    # A triggerer killed after the output was stored but before its event was saved runs the trigger again.
    defer = deferred(operator(job()))
    first = ended_with(await first_event(restarted(defer.trigger)), xcoms)
    again = ended_with(await first_event(restarted(defer.trigger)), xcoms)
    assert again["image_key"] == first["image_key"] == "jobs/handoff/images/001.png"
    stats = fake.stats()
    assert stats["posts"] == {"/v1/text_to_image": 1} and stats["downloads"] == 1
    events = list(storage.list(JobLayout("handoff").progress_run(RUN_ID) + "/r1/images/events/"))
    assert len(events) == 1  # the milestone claimed once


async def test_a_download_runs_off_the_event_loop(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    fake.configure(output_delay=1.5)  # a slow CDN
    trigger = restarted(deferred(operator(job())).trigger)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    try:
        event = await first_event(trigger)
    finally:
        ticking.cancel()
    ended_with(event, xcoms)
    assert time.monotonic() - started >= 1.5  # the download did take its time…
    assert max(gaps) < 0.5  # …and the loop kept running other coroutines meanwhile


@pytest.mark.parametrize(
    "config", [{"output_body": "html"}, {"output_ttl": 0.0}], ids=["refused output", "expired URL"]
)
async def test_a_failed_download_hands_the_task_back_to_the_worker_rules(
    storage: LocalStorage, fake: FakeRunway, config: dict[str, Any]
) -> None:
    op = operator(job())
    defer = deferred(op)
    fake.configure(**config)
    event = await first_event(defer.trigger)
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["event"] == "done" and event.payload["state"] == "succeeded"
    assert "stored" not in event.payload
    assert [r.record_id for r in job_submissions(storage, "handoff")] == [defer.trigger.record_id]
    assert [e.event for e in ledger(storage, "handoff")] == ["reserved", "submitted"]  # nothing settled here

    with pytest.raises(RuntimeError, match=r"refused|expired"):  # the worker applies today's rule
        resume(op, event, defer)
    assert [e.event for e in ledger(storage, "handoff")][-1] == "lost"
    assert job_submissions(storage, "handoff") == []


async def test_a_stopped_run_is_not_finished_by_the_trigger(storage: LocalStorage, fake: FakeRunway) -> None:
    defer = deferred(operator(job()))
    stop_run(storage, "handoff", RUN_ID, "stopped by a person")
    event = await first_event(defer.trigger)
    assert not isinstance(event, TaskSuccessEvent) and event.payload["event"] == "done"
    assert fake.stats()["downloads"] == 0  # left for the stop handler and the salvage sweep
    assert len(job_submissions(storage, "handoff")) == 1


async def test_a_take_stored_but_not_finished_is_finished_by_the_worker_from_the_stored_take(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    op = operator(job())
    defer = deferred(op)
    blocker = storage.root / JobLayout("handoff").progress_run(RUN_ID)
    blocker.parent.mkdir(parents=True)
    blocker.write_bytes(b"")  # a file where the run's progress folder goes: counting the segment fails
    event = await first_event(defer.trigger)
    assert not isinstance(event, TaskSuccessEvent)
    stored = event.payload["stored"]
    assert stored["image_task_id"] == defer.trigger.provider_task_id and stored["image_cache_hit"] is False
    assert job_submissions(storage, "handoff") == []

    blocker.unlink()
    result = resume(op, event, defer)
    assert result["image_task_id"] == defer.trigger.provider_task_id and result["image_cache_hit"] is False
    assert fake.stats()["downloads"] == 1  # the worker downloaded nothing


async def test_a_task_whose_return_value_cannot_be_set_is_finished_by_the_worker(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    op = operator(job())
    defer = deferred(op)
    trigger = restarted(defer.trigger)
    trigger.task_instance = None  # nothing to set the XCom for: the task must not end without it
    event = await first_event(trigger)
    assert not isinstance(event, TaskSuccessEvent) and xcoms.values == {}
    assert event.payload["stored"]["image_task_id"] == defer.trigger.provider_task_id
    result = resume(op, event, defer)
    assert result["image_key"] == "jobs/handoff/images/001.png" and result["image_cache_hit"] is False
    assert fake.stats()["downloads"] == 1
    events = list(storage.list(JobLayout("handoff").progress_run(RUN_ID) + "/r1/images/events/"))
    assert len(events) == 1  # counted by the trigger, not again by the worker


async def test_a_record_settled_during_the_download_is_not_finished_by_the_trigger(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    # A person's stop settles the record (here: clears it, as a salvage does) while the trigger downloads.
    fake.configure(output_delay=1.0)
    defer = deferred(operator(job()))
    running = asyncio.create_task(first_event(restarted(defer.trigger)))
    deadline = time.monotonic() + 20
    while fake.stats()["downloads"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    (record,) = job_submissions(storage, "handoff")
    assert clear_submission(storage, record)
    event = await running
    assert not isinstance(event, TaskSuccessEvent) and xcoms.values == {}
    assert event.payload["stored"]["image_key"] == "jobs/handoff/images/001.png"
    assert list(storage.list(JobLayout("handoff").progress_run(RUN_ID) + "/")) == []  # not counted


def test_only_the_last_take_of_a_segment_task_is_handed_off(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job(takes=2)
    first = deferred(operator(spec))
    assert first.trigger.handoff is None  # take 1 of 2: the worker stores it and submits take 2
    assert (first.kwargs or {})["take"] == 1

    redo = operator(job(job_id="handoff-redo"))
    redo.finish_in_trigger = False  # as the gate runs it for a redo: the gate must get the event back
    assert deferred(redo).trigger.handoff is None


async def test_a_segment_with_two_takes_ends_in_the_trigger_after_the_second(
    storage: LocalStorage, fake: FakeRunway, xcoms: XComStore
) -> None:
    op = operator(job(takes=2))
    first = deferred(op)
    event = await first_event(first.trigger)
    with pytest.raises(TaskDeferred) as caught:  # the worker stores take 1 and submits take 2
        resume(op, event, first)
    second = caught.value
    assert second.trigger.handoff is not None and len(second.trigger.handoff["made"]) == 1
    result = ended_with(await first_event(restarted(second.trigger)), xcoms)
    assert len(result["image_takes"]) == 2
    assert fake.stats()["posts"] == {"/v1/text_to_image": 2}
