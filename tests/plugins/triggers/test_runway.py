"""RunwayTaskTrigger against the fake Runway server over real HTTP, credentials from the connection env var."""

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
from video_pipeline_airflow.triggers.runway import RunwayTaskTrigger

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
    assert event["output"] and event["output"][0].startswith(fake.base_url)
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
