"""Reading and updating ``jobs/<job_id>/manifest.json``.

Only sequential steps write the manifest (validate, the gates, assemble, publish); mapped tasks report
through XCom and the gate or publish step folds their results in, so writes never race.
"""

from __future__ import annotations

from collections.abc import Iterable

from video_pipeline.layout import JobLayout
from video_pipeline.models import Decision, Manifest, Stage, VideoSegment
from video_pipeline.storage import Storage
from video_pipeline.submissions import ledger


def load_manifest(storage: Storage, job_id: str) -> Manifest | None:
    key = JobLayout(job_id).manifest
    if not storage.exists(key):
        return None
    return Manifest.from_json(storage.get_bytes(key))


def save_manifest(storage: Storage, manifest: Manifest) -> None:
    """Write the manifest, with credits and provider task ids from the spend ledger (the record of what was
    paid: a retried task that found its output in the cache reports neither)."""
    manifest.touch()
    by_index = {s.index: s for s in manifest.segments}
    for segment in manifest.segments:
        segment.credits = 0.0
    for entry in ledger(storage, manifest.job.job_id):
        if (paid := by_index.get(entry.index)) is None:
            continue
        paid.credits += entry.credits
        if entry.kind == "images":
            paid.image_task_id = entry.provider_task_id
        else:
            paid.clip_task_id = entry.provider_task_id
    manifest.credits_spent = round(sum(s.credits for s in manifest.segments), 2)
    storage.put_bytes(JobLayout(manifest.job.job_id).manifest, manifest.to_json(), "application/json")


def merge_segments(manifest: Manifest, updates: Iterable[VideoSegment]) -> None:
    """Replace segments by index with newer versions (from mapped tasks or a redo)."""
    by_index = {s.index: s for s in manifest.segments}
    for segment in updates:
        by_index[segment.index] = segment
    manifest.segments = [by_index[i] for i in sorted(by_index)]


def decisions_for(manifest: Manifest, run_id: str | None, stage: Stage) -> list[Decision]:
    return [d for d in manifest.decisions if d.stage == stage and d.run_id == run_id]
