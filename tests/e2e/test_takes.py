"""Takes on real Airflow processes: a job with two takes at each stage (images by the fake Runway server, every
take one POST; clips by the offline storyboard provider), answered through the REST API the Required Action
form uses, with picks at both gates. The manifest shows the picks and every take's key, the clips were made
from the picked images, and the final video is built from the picked clips."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import av
import pytest

from tests.e2e.conftest import DAG_ID, RUNWAY_CANARY_KEY, manifest_of
from video_pipeline.generation import plan_clip
from video_pipeline.models import JobSpec, Stage
from video_pipeline.storage import Storage
from video_pipeline_dev.fake_runway import FakeRunway
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

JOB_ID = "e2e-takes"


def spec() -> dict[str, object]:
    return {
        "job_id": JOB_ID,
        "title": "E2E takes",
        "segments": [{"prompt": f"Scene {i}: a lantern over dark water", "duration_s": 2} for i in (1, 2, 3)],
        "seed": 23,
        "images": {"provider": "runway", "takes": 2},
        "clips": {"provider": "storyboard", "takes": 2},
        "budget_credits": 30,  # 3 segments × 2 takes × 5 credits
        "gate_timeout": 600,
    }


def answer(airflow: LocalAirflow, run_id: str, stage: Stage, picks: dict[str, int]) -> None:
    """Approve with picks, as the form (or the review page) sends it: a PATCH of the gate's hitlDetails."""
    airflow.wait_for_task_state(DAG_ID, run_id, f"{stage}_gate", {"deferred"}, timeout=300)
    time.sleep(3)
    params = {
        "segments": None,
        "prompts": None,
        "narrations": None,
        "picks": picks,
        "note": f"{stage} picked",
    }
    response = airflow.answer_gate(DAG_ID, run_id, f"{stage}_gate", "Approve", params)
    assert response.is_success, response.text


def packets(path: Path) -> list[bytes]:
    """Digests of a video's compressed frames, in order (a stream copy keeps them byte for byte)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [hashlib.sha256(bytes(p)).digest() for p in container.demux(stream) if p.size]


def test_two_takes_at_each_stage_picked_through_rest_reach_the_final_video(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway, tmp_path: Path
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=0.5, video_latency=1.0, concurrency=4)
    run_id = airflow.trigger(DAG_ID, spec())
    answer(airflow, run_id, "images", {"2": 2})
    answer(airflow, run_id, "clips", {"3": 2, "1": 1})
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"

    # Every image take was one paid submission, none twice; the ledger, the estimate and the bill agree.
    stats = fake_runway.stats()
    assert stats["tasks_created"] == {"gen4_image": 6} and stats["duplicate_submissions"] == 0
    manifest = manifest_of(local_storage, JOB_ID)
    assert manifest.credits_estimate == manifest.credits_spent == stats["credits_spent"] == 30

    # The picks, in the decisions and on the segments; every take's key kept, each a stored object.
    picks = [(d.stage, d.decision, d.via, d.by, d.picks) for d in manifest.decisions]
    assert picks == [
        ("images", "approve", "ui", "reviewer", {2: 2}),
        ("clips", "approve", "ui", "reviewer", {3: 2, 1: 1}),
    ]
    root = f"jobs/{JOB_ID}"
    for segment in manifest.segments:
        n = f"{segment.index:03d}"
        assert segment.image_takes == [f"{root}/images/{n}.png", f"{root}/images/{n}.t2.png"]
        assert segment.clip_takes == [f"{root}/clips/{n}.mp4", f"{root}/clips/{n}.t2.mp4"]
        assert all(local_storage.exists(k) for k in [*segment.image_takes, *segment.clip_takes])
    assert [s.image_pick for s in manifest.segments] == [1, 2, 1]
    assert [s.clip_pick for s in manifest.segments] == [1, 1, 2]
    assert [s.image_key for s in manifest.segments] == [
        f"{root}/images/001.png",
        f"{root}/images/002.t2.png",
        f"{root}/images/003.png",
    ]
    assert [s.clip_key for s in manifest.segments] == [
        f"{root}/clips/001.mp4",
        f"{root}/clips/002.mp4",
        f"{root}/clips/003.t2.mp4",
    ]

    # Segment 2's clips were made from its picked image (take 2): each clip take is the output planned from it.
    job = JobSpec.model_validate(manifest.job.model_dump(mode="json"))
    second = manifest.segments[1]
    for take, key in enumerate(second.clip_takes, start=1):
        planned = plan_clip(local_storage, job, second, take=take)
        assert local_storage.get_bytes(planned.cache_key) == local_storage.get_bytes(key)

    # The final video is the picked clips, stream-copied: take 2's frames of segment 3 are in it, take 1's not.
    assert manifest.final is not None and manifest.final.reencoded == {}
    assert manifest.final.duration_s == pytest.approx(6.0, abs=0.1)
    final = packets(local_storage.download_to(manifest.final.key, tmp_path / "final.mp4"))
    clips = {
        key: packets(local_storage.download_to(key, tmp_path / Path(key).name))
        for s in manifest.segments
        for key in s.clip_takes
    }
    picked = [clip for s in manifest.segments for clip in clips[s.clip_key or ""]]
    assert final == picked
    for segment in manifest.segments:
        for key in segment.clip_takes:
            if key != segment.clip_key:
                assert not set(clips[key]) & set(final), key
