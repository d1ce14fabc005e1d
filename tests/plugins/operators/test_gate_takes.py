"""Picking takes at a gate (the offline provider, real storage, the gate harness of ``test_gate.py``): a pick on
Approve puts the picked take forward and is recorded; a pick on Redo applies to the segments not redone; a pick
the job cannot have is refused like any unusable answer (the gate re-opens, nothing is lost); a paid redo makes
every take of the redone segments, one after another."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from tests.plugins.operators.test_gate import RUN_ID, GateHarness, spec
from tests.plugins.operators.test_gate_paid_redo import finish
from video_pipeline.submissions import credits_spent, job_submissions
from video_pipeline_airflow.operators import gate as gate_module
from video_pipeline_airflow.operators.segment import AnimateSegmentOperator
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_gate_takes_canary_93"


def takes_spec(job_id: str, **overrides: Any) -> dict[str, Any]:
    return spec(job_id, takes=2, **overrides)


def test_a_pick_on_approve_sends_the_picked_take_on_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("gate-pick"))
    body = harness.requests[-1]["body"]
    assert "**2 takes per segment**" in body and "| takes |" in body
    notes: list[str] = []
    monkeypatch.setattr(gate_module, "notify", lambda subject, text: notes.append(text))
    harness.answer("Approve", {"picks": {"2": 3}})  # refused: the gate re-opens, and notifies again
    assert len(notes) == 1 and "2 takes per segment" in notes[0] and '"picks": {"3": 2}' in notes[0]
    before = harness.manifest().segments
    assert [len(s.image_takes) for s in before] == [2, 2]

    approved = harness.answer("Approve", {"picks": {"2": 2}, "segments": None, "note": "the second sea"})
    assert [s["image_key"] for s in approved] == [
        "jobs/gate-pick/images/001.png",
        "jobs/gate-pick/images/002.t2.png",
    ]
    assert [s["image_pick"] for s in approved] == [1, 2]
    manifest = harness.manifest()
    assert manifest.decisions[-1].picks == {2: 2} and manifest.decisions[-1].by == "ana"
    assert [s.image_takes for s in manifest.segments] == [s.image_takes for s in before]  # every key kept
    assert manifest.segments[1].image_key == "jobs/gate-pick/images/002.t2.png"

    # a retry of the gate replays the recorded decision: the same picks, never asked again
    replayed = harness.gate.execute(harness.context)
    assert replayed == approved and len(harness.requests) == 2


@pytest.mark.parametrize(
    "picks",
    [{"1": 3}, {"9": 1}, {"1": "2"}, {"1": True}, {"1": 2.5}, {"1": 0}, ["1", 2], "1: 2"],
    ids=[
        "take-3-of-2",
        "unknown-segment",
        "string-take",
        "bool-take",
        "float-take",
        "take-0",
        "list",
        "text",
    ],
)
def test_a_pick_the_job_cannot_have_reopens_the_gate_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, picks: Any
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("gate-bad-pick"))
    before = harness.manifest()
    assert (
        harness.answer("Approve", {"picks": picks}) is None
    )  # no exception: the task neither fails nor replays
    assert len(harness.requests) == 2 and harness.deferrals == 2
    after = harness.manifest()
    assert after.decisions == [] and after.segments == before.segments and after.status == "awaiting_images"
    approved = harness.answer("Approve", {"picks": {"1": 2}})
    assert [s["image_pick"] for s in approved] == [2, 1]


def test_picks_on_a_redo_apply_to_the_segments_it_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("gate-redo-pick"))
    storage = harness.storage
    old = {s.index: s for s in harness.manifest().segments}
    old_bytes = {key: storage.get_bytes(key) for s in old.values() for key in s.image_takes}

    harness.answer("Redo segments", {"segments": ["2"], "picks": {"1": 2, "2": 2}})
    manifest = harness.manifest()
    kept, redone = manifest.segments
    assert (kept.image_key, kept.image_pick) == ("jobs/gate-redo-pick/images/001.t2.png", 2)
    assert all(storage.get_bytes(k) == old_bytes[k] for k in kept.image_takes)
    # the redone segment has two new takes (a new seed each) and starts again from take 1
    assert (redone.image_key, redone.image_pick) == ("jobs/gate-redo-pick/images/002.png", 1)
    assert redone.image_takes == old[2].image_takes
    assert all(storage.get_bytes(k) != old_bytes[k] for k in redone.image_takes)
    assert manifest.decisions[-1].picks == {1: 2, 2: 2}
    assert len(harness.requests) == 2  # re-opened with them
    # the picks stay: an approve without picks keeps take 2 of segment 1
    approved = harness.answer("Approve", {})
    assert approved[0]["image_key"] == "jobs/gate-redo-pick/images/001.t2.png"


def test_a_gate_that_hands_off_returns_numbers_and_each_clip_task_reads_the_redone_or_picked_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The images gate before the mapped clips: what each clip task reads is what the gate approved."""
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("gate-hand-off"))
    harness.gate.hands_off = True
    harness.answer("Redo segments", {"segments": ["2"], "picks": {"1": 2}})
    redone = harness.manifest().segments[1]
    assert harness.answer("Approve", {}) == [1, 2]
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", harness.storage.url)
    read = [
        AnimateSegmentOperator(
            task_id="animate_segment",
            job={"job_id": "gate-hand-off"},
            segment=n,
            total=2,
            segment_from="images_gate",
        ).read_segment(RUN_ID)
        for n in (1, 2)
    ]
    assert (read[0].image_key, read[0].image_pick) == ("jobs/gate-hand-off/images/001.t2.png", 2)
    assert (
        read[1] == redone.model_copy(update={"status": read[1].status}) and read[1].status == "image_approved"
    )


def test_a_pick_at_the_clips_gate_picks_the_clip_and_keeps_the_picked_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = [{"prompt": "A lighthouse in fog", "duration_s": 2}]
    harness = GateHarness(tmp_path, monkeypatch, "clips", takes_spec("gate-clip-pick", segments=one))
    (approved,) = harness.answer("Approve", {"picks": {"1": 2}})
    assert (approved["clip_key"], approved["clip_pick"]) == ("jobs/gate-clip-pick/clips/001.t2.mp4", 2)
    assert approved["clip_takes"] == [
        "jobs/gate-clip-pick/clips/001.mp4",
        "jobs/gate-clip-pick/clips/001.t2.mp4",
    ]
    assert approved["image_key"] == "jobs/gate-clip-pick/images/001.png"
    assert harness.manifest().decisions[-1].picks == {1: 2}


# -- a paid redo with takes ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def runway(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeRunway:
    fake.reset(api_key=KEY, image_latency=0.2)
    point_pipeline_at(fake, KEY, tmp_path / "store", monkeypatch, poll_seconds=0.1)  # the harness's storage
    return fake


def test_a_paid_redo_makes_every_take_once_one_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runway: FakeRunway
) -> None:
    overrides = {"provider": "runway", "budget_credits": 100}
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("paid-takes", **overrides))
    assert "**Redo cost:** ~10 (2 takes) credits per segment" in harness.requests[-1]["body"]
    with pytest.raises(TaskDeferred) as first:
        harness.answer("Redo segments", {"segments": ["2"], "picks": {"1": 2}})
    assert runway.stats()["tasks_created"] == {"gen4_image": 1}
    with pytest.raises(TaskDeferred) as second:
        finish(runway, harness, first.value, key=KEY)  # take 1 stored; take 2 submitted, the gate waits on it
    assert second.value.method_name == "execute_redo_complete"
    assert runway.stats()["tasks_created"] == {"gen4_image": 2}
    finish(runway, harness, second.value, key=KEY)  # take 2 stored: the gate re-opens

    manifest = harness.manifest()
    kept, redone = manifest.segments
    assert kept.image_pick == 2 and redone.image_pick == 1
    assert redone.image_takes == ["jobs/paid-takes/images/002.png", "jobs/paid-takes/images/002.t2.png"]
    assert redone.image_provider == "runway"
    assert len(harness.requests) == 2
    assert credits_spent(harness.storage, "paid-takes") == runway.stats()["credits_spent"] == 10
    assert job_submissions(harness.storage, "paid-takes") == [] and runway.duplicate_submissions == 0


def test_a_redo_whose_takes_the_budget_cannot_pay_for_is_refused_before_anything_is_paid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runway: FakeRunway
) -> None:
    overrides = {"provider": "runway", "budget_credits": 7}  # one take of a segment (5) fits, two (10) do not
    harness = GateHarness(tmp_path, monkeypatch, "images", takes_spec("paid-takes-budget", **overrides))
    harness.answer("Redo segments", {"segments": ["1"], "picks": {"2": 2}})
    assert runway.stats()["posts"] == {}
    manifest = harness.manifest()
    assert manifest.decisions == [] and [s.image_pick for s in manifest.segments] == [1, 1]  # nor picked
    assert "costs ~10 credits" in harness.requests[-1]["body"].replace("\\", "")
