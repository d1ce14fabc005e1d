"""The manifest keeps every run's history: runs, decisions and spend are appended, never replaced."""

from __future__ import annotations

from pathlib import Path

from video_pipeline.manifest import begin_run, end_run, load_manifest, save_manifest
from video_pipeline.models import Decision, JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import Submission, record_spend_event, reserve_credits


def spec(prompts: list[str]) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "job", "title": "t", "provider": "runway", "segments": [{"prompt": p} for p in prompts]}
    )


def paid(run_id: str, index: int, credits: float) -> Submission:
    return Submission(
        provider="runway",
        provider_task_id=f"task-{run_id}-{index}",
        job_id="job",
        run_id=run_id,
        index=index,
        seed=1,
        credits=credits,
        digest="d" * 64,
    )


def test_a_second_run_appends_to_the_history(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first = spec(["a fox", "a hen"])
    begin_run(storage, first, "run-1", segments_for(first), 10)
    reserve_credits(storage, "job", None, paid("run-1", 1, 5))
    record_spend_event(storage, paid("run-1", 1, 5), "submitted")
    manifest = load_manifest(storage, "job")
    assert manifest is not None
    manifest.decisions.append(Decision(stage="images", decision="approve", via="variable", run_id="run-1"))
    save_manifest(storage, manifest)
    end_run(storage, "job", "run-1", "rejected", "rejected at the images gate")

    second = spec(["a wolf"])
    begin_run(storage, second, "run-2", segments_for(second), 5)
    reserve_credits(storage, "job", None, paid("run-2", 1, 5))
    manifest = load_manifest(storage, "job")
    assert manifest is not None
    assert [(r.run_id, r.status) for r in manifest.runs] == [("run-1", "rejected"), ("run-2", "running")]
    assert manifest.runs[0].note == "rejected at the images gate" and manifest.runs[0].ended_at
    assert [d.run_id for d in manifest.decisions] == ["run-1"]  # the first run's decisions are kept
    assert [s.prompt for s in manifest.segments] == ["a wolf"]  # the latest run's segments
    assert manifest.run_id == "run-2" and manifest.credits_estimate == 5

    save_manifest(storage, manifest)
    manifest = load_manifest(storage, "job")
    assert manifest is not None
    assert [e.event for e in manifest.spend] == ["reserved", "submitted", "reserved"]
    assert manifest.credits_spent == 10 == sum(e.credits for e in manifest.spend)
    assert [r.credits_spent for r in manifest.runs] == [5, 5]
    assert manifest.segments[0].credits == 5  # this run's spend per segment


def test_a_run_that_ended_silently_is_closed_by_the_next(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec(["a fox"])
    begin_run(storage, job, "run-1", segments_for(job), 5)
    begin_run(storage, job, "run-2", segments_for(job), 5)  # run-1 was marked failed: nothing said so
    begin_run(storage, job, "run-2", segments_for(job), 5)  # a retry of run-2's first task
    manifest = load_manifest(storage, "job")
    assert manifest is not None
    assert [(r.run_id, r.status) for r in manifest.runs] == [("run-1", "stopped"), ("run-2", "running")]


def test_ending_a_run_twice_keeps_the_first_report(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec(["a fox"])
    begin_run(storage, job, "run-1", segments_for(job), 5)
    end_run(storage, "job", "run-1", "failed", "the run failed")
    first = load_manifest(storage, "job")
    end_run(storage, "job", "run-1", "stopped", "late report")
    again = load_manifest(storage, "job")
    assert first is not None and again is not None
    assert again.runs == first.runs and again.runs[0].status == "failed"
    assert again.status == "failed"


def test_lost_spend_is_summed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec(["a fox"])
    begin_run(storage, job, "run-1", segments_for(job), 5)
    reserve_credits(storage, "job", None, paid("run-1", 1, 8))
    record_spend_event(storage, paid("run-1", 1, 8), "lost", note="output URL expired")
    end_run(storage, "job", "run-1", "stopped", "stopped")
    manifest = load_manifest(storage, "job")
    assert manifest is not None and manifest.credits_lost == 8 and manifest.credits_spent == 8
