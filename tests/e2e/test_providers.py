"""Providers on real Airflow processes against their fake servers (real HTTP): a Runway job, a fal job and a
mixed job (fal images animated by Runway) each pass both gates with a redo of two segments at each, under
injected faults; and a stage whose provider is unavailable completes on its fallback."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.conftest import (
    DAG_ID,
    FAL_CANARY_KEY,
    RUNWAY_CANARY_KEY,
    decide_by_variable,
    manifest_of,
    six_segment_job,
)
from tests.support.fake_fal import FakeFal
from tests.support.fake_runway import FakeRunway
from video_pipeline.approval import variable_key
from video_pipeline.models import Stage
from video_pipeline.storage import Storage
from video_pipeline_airflow.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

FLUX = "fal-ai/flux/dev"
KLING = "fal-ai/kling-video/v2.1/standard/image-to-video"
REDONE = [2, 5]

STAGES: dict[str, dict[str, Any]] = {
    "runway": {"provider": "runway"},
    "fal": {"images": {"provider": "fal", "model": FLUX}, "clips": {"provider": "fal", "model": KLING}},
    "mixed": {
        "images": {"provider": "fal", "model": FLUX},
        "clips": {"provider": "runway", "model": "gen4_turbo"},
    },
}


def with_faults(fake_runway: FakeRunway, fake_fal: FakeFal, seed: int) -> None:
    """About 10 % of calls fail on both fakes: 429 and 503 (with Retry-After) on submissions — the answers that
    prove nothing was created — and those plus dropped connections on status polls."""
    fake_runway.reset(
        api_key=RUNWAY_CANARY_KEY,
        image_latency=1.0,
        video_latency=2.0,
        concurrency=2,
        rate_429=0.05,
        rate_5xx=0.05,
        create_5xx_statuses=(503,),
        retry_after_on_503=True,
        rate_reset=0.1,
        reset_paths=("/v1/tasks",),
        seed=seed,
    )
    fake_fal.reset(
        api_key=FAL_CANARY_KEY,
        image_latency=1.0,
        video_latency=2.0,
        concurrency=4,
        rate_429=0.05,
        rate_5xx=0.05,
        create_5xx_statuses=(503,),
        retry_after_on_503=True,
        retry_after=0.2,
        rate_reset=0.1,
        reset_paths=("/fal-ai/flux/requests", "/fal-ai/kling-video/requests"),
        seed=seed,
    )


#: The images are redone with new seeds; the clips with new motion prompts: the clip models here take no seed,
#: so a seed-only redo would send the very request of the first round again (a new random take, but a body a
#: provider cannot tell from a blind retry's).
REDO_ANSWERS: dict[Stage, dict[str, Any]] = {
    "images": {"decision": "redo", "segments": REDONE},
    "clips": {
        "decision": "redo",
        "segments": REDONE,
        "prompts": {str(i): f"the camera drifts left over scene {i}" for i in REDONE},
    },
}


def redo_then_approve(
    airflow: LocalAirflow, storage: Storage, run_id: str, job_id: str, stage: Stage
) -> None:
    """Ask for a redo of two segments by Variable, wait for the gate to re-open with them, then approve."""
    decide_by_variable(airflow, run_id, job_id, stage, json.dumps(REDO_ANSWERS[stage]))
    wait_reopened(storage, job_id, stage)
    airflow.set_variable(variable_key(job_id, stage), "approve")


def wait_reopened(storage: Storage, job_id: str, stage: Stage, timeout: float = 400) -> datetime:
    """The gate's next opening after the redo decision (the redone segments are in the manifest by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        manifest = manifest_of(storage, job_id)
        redos = [d for d in manifest.decisions if d.stage == stage and d.decision == "redo"]
        opened = manifest.gates_opened_at.get(stage)
        if redos and opened is not None and opened > redos[-1].at:
            return opened
        time.sleep(1)
    raise AssertionError(f"the {stage} gate of {job_id} did not re-open after the redo")


@pytest.mark.parametrize("name", list(STAGES))
def test_each_provider_family_through_both_gates_with_redos_pays_once_per_round(
    airflow: LocalAirflow,
    local_storage: Storage,
    fake_runway: FakeRunway,
    fake_fal: FakeFal,
    name: str,
) -> None:
    with_faults(fake_runway, fake_fal, seed=len(name))
    job_id = f"e2e-providers-{name}"
    spec = six_segment_job(job_id, seed=53, budget_credits=5000, **STAGES[name])
    run_id = airflow.trigger(DAG_ID, spec)
    redo_then_approve(airflow, local_storage, run_id, job_id, "images")
    redo_then_approve(airflow, local_storage, run_id, job_id, "clips")
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=600) == "success"

    runway, fal = fake_runway.stats(), fake_fal.stats()
    faults = sum(runway["faults"].values()) + sum(fal["faults"].values())
    assert faults > 0, "no faults were injected; the test proves nothing"
    # One submission per segment per round: 6 in the first round, 2 in the redo round, at each stage.
    made = Counter(runway["tasks_created"]) + Counter(fal["tasks_created"])
    manifest = manifest_of(local_storage, job_id)
    ledger = [(e.seq, e.event, e.stage, e.index, e.note) for e in manifest.spend]
    assert sum(made.values()) == 2 * (6 + len(REDONE)), (made, ledger, runway["faults"], fal["faults"])
    assert runway["duplicate_submissions"] == fal["duplicate_submissions"] == 0

    by_stage = {
        "images": {s.image_provider for s in manifest.segments},
        "clips": {s.clip_provider for s in manifest.segments},
    }
    expected = {
        stage: {STAGES[name].get(stage, STAGES[name]).get("provider")} for stage in ("images", "clips")
    }
    assert by_stage == expected
    # What the pipeline estimated (the first round for all six segments, then each redo round's two, at the
    # same price: every segment has the same length and ratio), what its ledger says and what the fakes billed.
    billed = runway["credits_spent"] + fal["credits_spent"]
    assert manifest.credits_estimate is not None
    estimated = manifest.credits_estimate * (6 + len(REDONE)) / 6
    assert manifest.credits_spent == pytest.approx(billed) == pytest.approx(estimated)
    for key in (RUNWAY_CANARY_KEY, FAL_CANARY_KEY):
        assert key not in manifest.to_json().decode()


def test_an_unavailable_provider_falls_back(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway, fake_fal: FakeFal
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=1.0, video_latency=2.0, concurrency=2)
    fake_fal.reset(api_key=FAL_CANARY_KEY, image_latency=1.0, video_latency=2.0, refuse_creates=429)
    job_id = "e2e-providers-fallback"
    spec = six_segment_job(
        job_id,
        seed=61,
        budget_credits=5000,
        approval="none",
        images={"provider": "fal", "model": FLUX, "fallback": {"provider": "runway"}},
        clips={"provider": "runway"},
    )
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"
    manifest = manifest_of(local_storage, job_id)
    assert {(s.image_provider, s.image_model) for s in manifest.segments} == {("runway", "gen4_image")}
    assert fake_fal.stats()["tasks_created"] == {}
    assert fake_runway.stats()["tasks_created"] == {"gen4_image": 6, "gen4_turbo": 6}
    assert manifest.credits_spent == pytest.approx(fake_runway.stats()["credits_spent"])
