"""Reading and updating ``jobs/<job_id>/manifest.json``.

Only sequential steps write the manifest (validate, the gates, assemble, publish, a run's end); mapped tasks
report through XCom and the gate or publish step folds their results in. One active run per job
(:mod:`video_pipeline.claims`) keeps runs from writing it at once.

The manifest keeps every run's history: a new run appends its :class:`RunRecord` and keeps earlier runs,
decisions and spend; only the fields that describe the latest run (spec, segments, status, gates, final) are
replaced. Spend is never written by hand: each save copies the spend ledger in.
"""

from __future__ import annotations

from collections.abc import Iterable

from video_pipeline.layout import JobLayout
from video_pipeline.models import (
    Decision,
    JobSpec,
    Manifest,
    RunRecord,
    RunStatus,
    Stage,
    VideoSegment,
    utcnow,
)
from video_pipeline.storage import ObjectNotFound, Storage
from video_pipeline.submissions import ledger


def load_manifest(storage: Storage, job_id: str) -> Manifest | None:
    try:
        return Manifest.from_json(storage.get_bytes(JobLayout(job_id).manifest))
    except ObjectNotFound:
        return None


def save_manifest(storage: Storage, manifest: Manifest) -> None:
    """Write the manifest with the spend ledger copied in: the job's total, credits lost, each run's spend,
    and this run's credits and provider task ids per segment (a retried task that found its output in the
    cache reports neither; the ledger is the record of what was paid)."""
    manifest.touch()
    entries = ledger(storage, manifest.job.job_id)
    manifest.spend = entries
    manifest.credits_spent = round(entries[-1].total, 2) if entries else 0.0
    manifest.credits_lost = round(sum(e.paid or 0.0 for e in entries if e.event == "lost"), 2)
    for run in manifest.runs:
        run.credits_spent = round(sum(e.credits for e in entries if e.run_id == run.run_id), 2)
    by_index = {s.index: s for s in manifest.segments}
    for segment in manifest.segments:
        segment.credits = 0.0
    for entry in entries:
        if (
            entry.run_id != manifest.run_id
            or entry.index is None
            or (paid := by_index.get(entry.index)) is None
        ):
            continue
        paid.credits = round(paid.credits + entry.credits, 6)
        if entry.event == "submitted" and entry.provider_task_id:
            if entry.stage == "images":
                paid.image_task_id = entry.provider_task_id
            elif entry.stage == "clips":
                paid.clip_task_id = entry.provider_task_id
    storage.put_bytes(JobLayout(manifest.job.job_id).manifest, manifest.to_json(), "application/json")


def begin_run(
    storage: Storage, job: JobSpec, run_id: str, segments: list[VideoSegment], credits_estimate: float
) -> Manifest:
    """Start (or, for a retried first task, restart) ``run_id``'s part of the manifest, keeping every earlier
    run's record, decisions and spend. Call it holding the job's claim: any other run still shown as running
    has ended without saying so and is closed as ``stopped``."""
    manifest = load_manifest(storage, job.job_id)
    if manifest is None:
        manifest = Manifest(job=job)
    for run in manifest.runs:
        if run.run_id != run_id and run.status == "running":
            mark_run_ended(manifest, run.run_id, "stopped", f"ended without a result (seen by run {run_id})")
    manifest.job = job
    manifest.run_id = run_id
    manifest.status = "running"
    manifest.segments = segments
    manifest.gates_opened_at = {}
    manifest.timings_s = {}
    manifest.final = None
    manifest.credits_estimate = credits_estimate
    if manifest.run_record(run_id) is None:
        manifest.runs.append(RunRecord(run_id=run_id))
    save_manifest(storage, manifest)
    return manifest


def mark_run_ended(manifest: Manifest, run_id: str, status: RunStatus, note: str | None = None) -> RunRecord:
    """Close ``run_id``'s record (once: a later, second report of the same end changes nothing)."""
    record = manifest.run_record(run_id)
    if record is None:
        record = RunRecord(run_id=run_id)
        manifest.runs.append(record)
    if record.ended_at is not None:
        return record
    record.status = status
    record.ended_at = utcnow()
    record.note = note
    if status == "succeeded" and manifest.final is not None and manifest.run_id == run_id:
        record.final_key = manifest.final.key
    if manifest.run_id == run_id and status in ("failed", "stopped", "rejected"):
        manifest.status = status
    return record


def end_run(
    storage: Storage, job_id: str, run_id: str, status: RunStatus, note: str | None = None
) -> Manifest | None:
    """Record the end of a run in the job's manifest (and refresh its spend from the ledger)."""
    manifest = load_manifest(storage, job_id)
    if manifest is None:
        return None
    mark_run_ended(manifest, run_id, status, note)
    save_manifest(storage, manifest)
    return manifest


def refresh_spend(storage: Storage, job_id: str) -> Manifest | None:
    """Re-copy the ledger into the manifest (after a salvage or cancellation outside any run's steps)."""
    manifest = load_manifest(storage, job_id)
    if manifest is not None:
        save_manifest(storage, manifest)
    return manifest


def merge_segments(manifest: Manifest, updates: Iterable[VideoSegment]) -> None:
    """Replace segments by index with newer versions (from mapped tasks or a redo)."""
    by_index = {s.index: s for s in manifest.segments}
    for segment in updates:
        by_index[segment.index] = segment
    manifest.segments = [by_index[i] for i in sorted(by_index)]


def decisions_for(manifest: Manifest, run_id: str | None, stage: Stage) -> list[Decision]:
    return [d for d in manifest.decisions if d.stage == stage and d.run_id == run_id]
