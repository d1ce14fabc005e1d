"""The pipeline on real Airflow processes: both gates, rejection, S3 over HTTP, refusal of bad specs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DAG_ID, decide_by_variable, manifest_of, mapped_states, six_segment_job
from video_pipeline.approval import APPROVE
from video_pipeline.media.probe import probe
from video_pipeline.models import SegmentStatus
from video_pipeline.storage import Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def check_final(storage: Storage, job_id: str, tmp_path: Path, seconds: float, size: tuple[int, int]) -> None:
    final = probe(storage.download_to(f"jobs/{job_id}/final.mp4", tmp_path / "final.mp4"))
    assert abs(final.duration_s - seconds) <= 0.1 * seconds / 2
    assert (final.width, final.height) == size
    assert final.codec == "h264"
    assert final.frame_count == int(seconds * 24)


def test_both_gates_approved_by_variable(
    airflow: LocalAirflow, local_storage: Storage, tmp_path: Path
) -> None:
    job_id = "e2e-approved"
    run_id = airflow.trigger(DAG_ID, six_segment_job(job_id))
    decide_by_variable(airflow, run_id, job_id, "images", "approve")
    decide_by_variable(airflow, run_id, job_id, "clips", '{"decision": "approve", "by": "e2e-reviewer"}')
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"

    check_final(local_storage, job_id, tmp_path, 12.0, (1280, 720))
    manifest = manifest_of(local_storage, job_id)
    assert manifest.status == "succeeded"
    assert manifest.final is not None and manifest.final.width == 1280
    assert [s.index for s in manifest.segments] == [1, 2, 3, 4, 5, 6]
    assert all(
        s.status == SegmentStatus.VIDEO_APPROVED and s.image_key and s.clip_key for s in manifest.segments
    )
    assert [(d.stage, d.decision, d.via) for d in manifest.decisions] == [
        ("images", "approve", "variable"),
        ("clips", "approve", "variable"),
    ]
    assert manifest.decisions[1].by == "e2e-reviewer"
    assert {"images", "clips"} <= set(manifest.timings_s)
    progress = local_storage.get_bytes(f"jobs/{job_id}/progress.json").decode()
    assert "images" in progress and "clips" in progress
    # the decision Variable was consumed
    assert airflow.api("GET", f"/api/v2/variables/video_approval__{job_id}__clips").status_code == 404


def test_reject_at_images_gate_skips_everything_downstream(
    airflow: LocalAirflow, local_storage: Storage
) -> None:
    job_id = "e2e-rejected"
    run_id = airflow.trigger(DAG_ID, six_segment_job(job_id, seed=99))
    decide_by_variable(airflow, run_id, job_id, "images", "reject")
    airflow.wait_for_run(DAG_ID, run_id, timeout=300)

    assert airflow.task_state(DAG_ID, run_id, "images_gate") == "success"
    assert mapped_states(airflow, run_id, "animate_segment") in ([], ["skipped"])
    for task_id in ("clips_gate", "assemble", "publish"):
        assert airflow.task_state(DAG_ID, run_id, task_id) == "skipped"
    manifest = manifest_of(local_storage, job_id)
    assert manifest.status == "rejected"
    assert manifest.decisions[-1].decision == "reject"
    assert not list(local_storage.list(f"jobs/{job_id}/clips/"))
    assert not local_storage.exists(f"jobs/{job_id}/final.mp4")


def test_s3_storage_over_http_with_rest_answers(
    airflow: LocalAirflow, s3_storage: Storage, tmp_path: Path
) -> None:
    job_id = "e2e-s3"
    run_id = airflow.trigger(DAG_ID, six_segment_job(job_id, seed=5))
    for stage in ("images", "clips"):
        airflow.wait_for_task_state(DAG_ID, run_id, f"{stage}_gate", {"deferred"}, timeout=300)
        time.sleep(3)  # a reviewer takes a moment; an answer within ~1 s of deferral hits Airflow bug #71172
        response = airflow.answer_gate(
            DAG_ID, run_id, f"{stage}_gate", APPROVE, {"segments": None, "note": "ok"}
        )
        assert response.status_code == 200, response.text
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"

    check_final(s3_storage, job_id, tmp_path, 12.0, (1280, 720))
    assert len(list(s3_storage.list(f"jobs/{job_id}/images/"))) == 6
    manifest = manifest_of(s3_storage, job_id)
    assert [(d.via, d.by) for d in manifest.decisions] == [("ui", "reviewer"), ("ui", "reviewer")]
    assert manifest.decisions[0].note == "ok"


def test_bad_conf_is_refused_before_a_run_exists(airflow: LocalAirflow) -> None:
    bad: dict[str, Any]
    for bad in ({"job_id": "../x"}, {"segments": []}, {"segments": [{"prompt": "x" * 2000}]}):
        conf = {**six_segment_job("e2e-bad"), **bad}
        response = airflow.api(
            "POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        assert response.status_code == 400, response.text
        assert next(iter(bad)) in response.text


def test_spec_failing_validation_runs_no_generation(airflow: LocalAirflow, local_storage: Storage) -> None:
    conf = {**six_segment_job("e2e-invalid"), "script": "Both a script and segments."}
    run_id = airflow.trigger(DAG_ID, conf)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=180) == "failed"
    assert airflow.task_state(DAG_ID, run_id, "validate_job") == "failed"
    assert set(mapped_states(airflow, run_id, "generate_image")) <= {"upstream_failed"}
    assert not list(local_storage.list("jobs/e2e-invalid/images/"))


def test_no_approval_runs_straight_through(
    airflow: LocalAirflow, local_storage: Storage, tmp_path: Path
) -> None:
    job_id = "e2e-no-approval"
    spec = six_segment_job(job_id, approval="none", seed=21)
    spec["segments"] = spec["segments"][:2]
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    check_final(local_storage, job_id, tmp_path, 4.0, (1280, 720))
    assert [d.via for d in manifest_of(local_storage, job_id).decisions] == ["auto", "auto"]


def test_redo_regenerates_exactly_the_listed_segments(airflow: LocalAirflow, local_storage: Storage) -> None:
    job_id = "e2e-redo"
    run_id = airflow.trigger(DAG_ID, six_segment_job(job_id, seed=40, approval="images"))
    decide_by_variable(
        airflow, run_id, job_id, "images", "wait"
    )  # opens the gate; "wait" is refused, gate stays
    before = {i: local_storage.get_bytes(f"jobs/{job_id}/images/{i:03d}.png") for i in range(1, 7)}
    # the form, as the UI sends it: segment 2 with a new seed, segment 5 with a replacement prompt
    answer = {"segments": ["2"], "prompts": ["5: Scene 5: a red fox on the pier"], "note": "fix 2 and 5"}
    assert airflow.answer_gate(DAG_ID, run_id, "images_gate", "Redo segments", answer).is_success

    def round_two_open() -> bool:  # opened again after the redo was recorded (and done)
        manifest = manifest_of(local_storage, job_id)
        redo = [d.at for d in manifest.decisions if d.decision == "redo"]
        return bool(redo) and manifest.gates_opened_at["images"] > redo[0]

    airflow.wait_until(round_two_open, 120, "the gate to re-open after the redo")
    after = {i: local_storage.get_bytes(f"jobs/{job_id}/images/{i:03d}.png") for i in range(1, 7)}
    assert [i for i in range(1, 7) if after[i] != before[i]] == [2, 5]
    time.sleep(3)
    airflow.set_variable(f"video_approval__{job_id}__images", "approve")
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    manifest = manifest_of(local_storage, job_id)
    assert [
        (d.decision, d.segments, d.by, d.via, d.round) for d in manifest.decisions if d.stage == "images"
    ] == [
        ("redo", [2, 5], "reviewer", "ui", 1),
        ("approve", [], "variable", "variable", 2),
    ]
    assert manifest.decisions[0].prompts == {5: "Scene 5: a red fox on the pier"}
    # the clips were made from the regenerated images
    segments = {s.index: s for s in manifest.segments}
    assert segments[2].seed != 40 + 2 and segments[2].prompt == "Scene 2: a lantern over dark water"
    assert segments[5].prompt == "Scene 5: a red fox on the pier"


def test_preview_route_serves_logged_in_users_only(airflow: LocalAirflow, local_storage: Storage) -> None:
    local_storage.put_bytes("jobs/preview-check/preview/x.jpg", b"\xff\xd8jpeg")
    url = f"{airflow.base_url}/video-previews/files/jobs/preview-check/preview/x.jpg"
    assert httpx.get(url, timeout=10).status_code == 401
    ok = airflow.api("GET", "/video-previews/files/jobs/preview-check/preview/x.jpg")
    assert ok.status_code == 200 and ok.content == b"\xff\xd8jpeg"
    for bad in ("../etc/passwd", "jobs/../../etc/passwd", "%2e%2e/etc/passwd"):
        response = airflow.api("GET", f"/video-previews/files/{bad}")
        assert response.status_code in (400, 404), (bad, response.status_code)
        assert b"root:" not in response.content
    assert airflow.api("GET", "/video-previews/files/jobs/preview-check/missing.jpg").status_code == 404


def test_progress_milestones_exactly_once_with_parallel_tasks(
    airflow: LocalAirflow, local_storage: Storage
) -> None:
    """20 segments through pools of 4 parallel tasks: events at 5, 10, 15 and 20 per stage, each once."""
    job_id = "e2e-progress"
    spec = six_segment_job(job_id, approval="none", seed=60)
    spec["segments"] = [{"prompt": f"Frame {i} of the storm", "duration_s": 2} for i in range(1, 21)]
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=500) == "success"
    events = json.loads(local_storage.get_bytes(f"jobs/{job_id}/progress.json"))["events"]
    for stage in ("images", "clips"):
        assert [(e["completed"], e["final"]) for e in events if e["stage"] == stage] == [
            (5, False),
            (10, False),
            (15, False),
            (20, True),
        ]
    logs = [
        p.read_text()
        for p in airflow.home.joinpath("logs", "dag_id=video_generation", f"run_id={run_id}").rglob(
            "attempt=*.log"
        )
    ]
    reported = [line for text in logs for line in text.splitlines() if "Progress: images:" in line]
    assert len(reported) == 4  # each milestone reported by exactly one task


def test_gate_timeout_rejects(airflow: LocalAirflow, local_storage: Storage) -> None:
    job_id = "e2e-timeout"
    spec = six_segment_job(job_id, seed=80, gate_timeout=8)
    spec["segments"] = spec["segments"][:2]
    run_id = airflow.trigger(DAG_ID, spec)
    airflow.wait_for_run(DAG_ID, run_id, timeout=180)
    assert airflow.task_state(DAG_ID, run_id, "assemble") == "skipped"
    manifest = manifest_of(local_storage, job_id)
    assert manifest.status == "rejected"
    assert [(d.decision, d.via) for d in manifest.decisions] == [("reject", "timeout")]
