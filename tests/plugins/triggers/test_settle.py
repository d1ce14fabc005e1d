"""The settle wait that keeps a trigger from firing while the scheduler still takes in the deferral."""

from __future__ import annotations

import time

import pytest

from video_pipeline_airflow.triggers import settle
from video_pipeline_airflow.triggers.settle import settle_deadline, wait_until_settled


def test_deadline_is_the_settle_time_from_now() -> None:
    before = time.time()
    deadline = settle_deadline()
    assert before + settle.DEFERRAL_SETTLE_S <= deadline <= time.time() + settle.DEFERRAL_SETTLE_S


async def test_waits_until_the_deadline() -> None:
    started = time.monotonic()
    await wait_until_settled(time.time() + 0.4)
    assert time.monotonic() - started >= 0.39


@pytest.mark.parametrize("deadline", [None, 0.0, -30.0], ids=["none", "now", "passed"])
async def test_no_wait_without_a_future_deadline(deadline: float | None) -> None:
    started = time.monotonic()
    await wait_until_settled(None if deadline is None else time.time() + deadline)
    assert time.monotonic() - started < 0.1


async def test_a_skewed_clock_waits_no_longer_than_the_settle_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settle, "DEFERRAL_SETTLE_S", 0.2)
    started = time.monotonic()
    await wait_until_settled(time.time() + 3600)  # the worker's clock an hour ahead
    assert 0.19 <= time.monotonic() - started < 1.0
