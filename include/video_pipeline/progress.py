"""Progress milestones: an event at every 5th completed segment of a stage and at its completion, exactly once.

Each finished segment writes a completion marker, counts the markers, and claims every milestone it has
reached with an atomic create (``O_EXCL`` locally, ``If-None-Match: *`` on S3). Only the claimant reports a
milestone, so concurrent tasks and retries never report one twice, and the task that completes the count
always sees it, so none is missed. The event objects are the source of truth; ``progress.json`` is a summary
rebuilt from them (it can lag a moment under concurrency; ``publish`` rebuilds it at the end).
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, Field

from video_pipeline.layout import JobLayout
from video_pipeline.models import utcnow
from video_pipeline.storage import Storage

EVERY = 5


class ProgressEvent(BaseModel):
    job_id: str
    stage: str
    completed: int
    total: int
    final: bool
    at: datetime = Field(default_factory=utcnow)

    @property
    def message(self) -> str:
        suffix = " — stage complete" if self.final else ""
        return f"{self.stage}: {self.completed}/{self.total} segments done{suffix}"


def milestones(count: int, total: int, every: int = EVERY) -> list[int]:
    return [m for m in range(1, min(count, total) + 1) if m % every == 0 or m == total]


def record_completion(
    storage: Storage, job_id: str, stage: str, index: int, total: int, *, every: int = EVERY
) -> list[ProgressEvent]:
    """Mark segment ``index`` done; return the milestone events this call claimed (report each of them)."""
    layout = JobLayout(job_id)
    storage.create_exclusive(layout.progress_marker(stage, index), b"")
    done = len(list(storage.list(f"{layout.root}/progress/{stage}/done/")))
    claimed = []
    for milestone in milestones(done, total, every):
        event = ProgressEvent(
            job_id=job_id, stage=stage, completed=milestone, total=total, final=milestone == total
        )
        if storage.create_exclusive(
            layout.progress_event(stage, milestone), event.model_dump_json().encode()
        ):
            claimed.append(event)
    if claimed:
        rebuild_progress(storage, job_id)
    return claimed


def rebuild_progress(storage: Storage, job_id: str) -> dict[str, object]:
    """Rewrite ``progress.json`` from the event objects: every milestone, and the latest count per stage."""
    layout = JobLayout(job_id)
    events = [
        ProgressEvent.model_validate_json(storage.get_bytes(key))
        for key in storage.list(f"{layout.root}/progress/")
        if "/events/" in key
    ]
    events.sort(key=lambda e: (e.at, e.stage, e.completed))
    stages: dict[str, dict[str, object]] = {}
    for event in events:
        stages[event.stage] = {"completed": event.completed, "total": event.total, "complete": event.final}
    summary: dict[str, object] = {
        "job_id": job_id,
        "stages": stages,
        "events": [{**e.model_dump(mode="json"), "message": e.message} for e in events],
    }
    storage.put_bytes(layout.progress, json.dumps(summary, indent=2).encode(), "application/json")
    return summary
