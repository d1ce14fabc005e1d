"""RunwayTaskTrigger against the fake Runway server over real HTTP, credentials from the connection env var:
polling, the deadline (cancel + TIMEOUT), and what happens when Airflow cancels the trigger."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.fake_runway import FakeRunway
from video_pipeline.providers.base import ImageRequest
from video_pipeline.providers.runway import RunwayClient
from video_pipeline_airflow.triggers.runway import (
    RunwayTaskTrigger,
)

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


async def first_event(trigger: RunwayTaskTrigger) -> dict[str, Any]:
    event = await asyncio.wait_for(trigger.run().__anext__(), 20)
    return dict(event.payload)


def test_serialize_round_trip_without_the_key() -> None:
    trigger = RunwayTaskTrigger(provider_task_id="abc", poll_interval=0.1)
    path, kwargs = trigger.serialize()
    assert path == "video_pipeline_airflow.triggers.runway.RunwayTaskTrigger"
    assert RunwayTaskTrigger(**kwargs).serialize() == (path, kwargs)
    assert KEY not in repr(kwargs)


async def test_polls_until_succeeded(fake: FakeRunway) -> None:
    task_id = submit(fake, "a lantern")
    event = await first_event(RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1))
    assert event["status"] == "SUCCEEDED"
    # No output URL in the event: it is signed, and the triggerer logs every event it fires.
    assert "output" not in event and fake.base_url not in json.dumps(event)
    assert fake.stats()["polls"][task_id] >= 2  # it waited through PENDING/RUNNING


async def test_failure_is_reported_with_its_code(fake: FakeRunway) -> None:
    task_id = submit(fake, "unsafe [fail:SAFETY.INPUT.TEXT]")
    event = await first_event(RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1))
    assert (event["status"], event["failureCode"]) == ("FAILED", "SAFETY.INPUT.TEXT")


async def test_unknown_task_is_an_error_event(fake: FakeRunway) -> None:
    event = await first_event(
        RunwayTaskTrigger(provider_task_id="00000000-0000-0000-0000-000000000000", poll_interval=0.1)
    )
    assert event["status"] == "ERROR" and event["error_type"] == "RunwayNotFound"
    assert KEY not in json.dumps(event)


async def test_first_poll_waits_for_the_deferral_to_settle(fake: FakeRunway) -> None:
    task_id = submit(fake, "a quick lantern")
    time.sleep(1.0)  # the provider task is done before the trigger starts
    started = time.monotonic()
    trigger = RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1, settle_until=time.time() + 0.5)
    event = await first_event(trigger)
    assert event["status"] == "SUCCEEDED"
    assert time.monotonic() - started >= 0.49
    assert RunwayTaskTrigger(**trigger.serialize()[1]).settle_until == trigger.settle_until


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
    assert RunwayTaskTrigger(**kwargs).serialize() == (path, kwargs)
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
    assert event["status"] == "TIMEOUT" and event["last_status"] == "THROTTLED" and event["cancelled"] is True
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
    assert event["status"] == "SUCCEEDED" and fake.stats()["deletes"] == 0


async def cancel_running_trigger(trigger: RunwayTaskTrigger) -> None:
    """What the triggerer does when the task instance leaves the deferred state: cancel the coroutine."""
    task = asyncio.ensure_future(trigger.run().__anext__())
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_triggerer_shutdown_leaves_the_provider_task_running(fake: FakeRunway) -> None:
    """A shutdown or restart cancels ``run()`` without calling ``on_kill``: the provider task must keep running
    (the next triggerer resumes it), so cancelling the coroutine sends no DELETE."""
    fake.reset(api_key=KEY, image_latency=30)
    task_id = submit(fake, "left running")
    await cancel_running_trigger(RunwayTaskTrigger(provider_task_id=task_id, poll_interval=0.1))
    assert fake.stats()["deletes"] == 0


def test_a_stop_report_carries_what_finds_the_record() -> None:
    trigger = RunwayTaskTrigger(
        provider_task_id="t-1", job_id="fox", run_id="r", kind="clips", digest="d" * 64, record_id="rec"
    )
    assert trigger.stop_details() == {
        "provider_task_id": "t-1",
        "runway_conn_id": "runway_default",
        "job_id": "fox",
        "run_id": "r",
        "kind": "clips",
        "digest": "d" * 64,
        "record_id": "rec",
    }
