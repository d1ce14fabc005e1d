"""Redo at a gate on a paid provider, in-process against the fake Runway server (real HTTP) and real storage:
the listed segments are submitted once each (with the same records and reservations as the mapped tasks), the
gate waits for each provider task (deferred), stores the outputs, and re-opens; the cost is shown before and
checked against the budget."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from tests.plugins.operators.test_gate import GateHarness, spec
from video_pipeline.gate_form import inert
from video_pipeline.providers.runway import RunwayClient, remote_status
from video_pipeline.submissions import credits_spent, job_submissions, ledger
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_gate_redo_canary_41"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def runway(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRunway:
    fake.reset(api_key=KEY, image_latency=0.2)
    point_pipeline_at(fake, KEY, tmp_path / "store", monkeypatch, poll_seconds=0.1)  # the harness's storage
    return fake


def finish(fake: FakeRunway, harness: GateHarness, deferred: TaskDeferred, key: str = KEY) -> Any:
    """What the triggerer does: wait for the provider task to end, then hand its status to the gate."""
    deadline = time.monotonic() + 20
    with RunwayClient(fake.base_url, key) as client:
        while not (status := client.get_task(deferred.trigger.provider_task_id)).terminal:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    event = {"event": "done", **remote_status(status).model_dump(mode="json")}
    return getattr(harness.gate, deferred.method_name)(harness.context, event, **(deferred.kwargs or {}))


def test_a_paid_redo_submits_the_listed_segments_once_and_reopens_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runway: FakeRunway
) -> None:
    harness = GateHarness(
        tmp_path, monkeypatch, "images", spec("paid-redo", provider="runway", budget_credits=100)
    )
    assert "**Redo cost:** ~5 credits per segment" in harness.requests[-1]["body"]
    old = {s.index: s for s in harness.manifest().segments}
    pending = []
    with pytest.raises(TaskDeferred) as caught:
        harness.answer("Redo segments", {"segments": ["2"], "prompts": ["2: a calm sea at noon"]})
    pending.append(caught.value)
    assert runway.stats()["tasks_created"] == {"gen4_image": 1}
    assert [r.index for r in job_submissions(harness.storage, "paid-redo")] == [2]  # recorded before polling
    finish(runway, harness, pending[0])  # stored, and the gate re-opens (no more pending)

    manifest = harness.manifest()
    redone = manifest.segments[1]
    assert redone.prompt == "a calm sea at noon" and redone.image_provider == "runway"
    assert redone.image_key == old[2].image_key and redone.image_task_id
    assert harness.storage.get_bytes(redone.image_key or "") != b""
    assert manifest.segments[0] == old[1]  # untouched
    assert len(harness.requests) == 2 and "#2" in harness.requests[-1]["body"]
    assert credits_spent(harness.storage, "paid-redo") == runway.stats()["credits_spent"] == 5
    assert job_submissions(harness.storage, "paid-redo") == []  # settled
    assert [e.event for e in ledger(harness.storage, "paid-redo")] == ["reserved", "submitted"]
    progress = json.loads(harness.storage.get_bytes("jobs/paid-redo/progress.json"))
    assert progress["redos"] == {"images": {"round": 2, "completed": 1, "total": 1, "complete": True}}


def test_a_redo_over_the_budget_is_refused_before_anything_is_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runway: FakeRunway
) -> None:
    harness = GateHarness(
        tmp_path, monkeypatch, "images", spec("paid-redo-budget", provider="runway", budget_credits=7)
    )
    harness.answer("Redo segments", {"segments": ["1", "2"]})  # 2 × 5 credits > 7
    assert runway.stats()["posts"] == {}
    manifest = harness.manifest()
    assert [d.decision for d in manifest.decisions] == []  # the refused redo is not a decision
    assert len(harness.requests) == 2
    body = harness.requests[-1]["body"]
    assert "**Notice:** Redo refused" in body and inert("costs ~10 credits and the budget has 7 left") in body
