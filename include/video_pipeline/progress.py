"""Progress milestones: an event at every 5th completed segment of a stage and at its completion, exactly once
per run (and per round of a redo).

Each finished segment writes a completion marker, counts the markers, and claims every milestone it has
reached with an atomic create (``O_EXCL`` locally, ``If-None-Match: *`` on S3). Only the claimant reports a
milestone, so concurrent tasks and retries never report one twice, and the task that completes the count
always sees it, so none is missed. Markers and events live under the run's scope
(``progress/runs/<run>/r<round>/<stage>/…``): a re-run of a job counts its own segments from zero instead of
seeing the earlier run's markers and reporting "10/10" after five. The event objects are the source of truth;
``progress.json`` is a summary of the current run rebuilt from them (it can lag a moment under concurrency;
``publish`` rebuilds it at the end).
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
    run_id: str | None = None  # None: an event written before milestones were scoped to runs
    round: int = 1  # 1: the stage's own tasks; n > 1: segments regenerated for the gate's round n
    at: datetime = Field(default_factory=utcnow)

    @property
    def message(self) -> str:
        redo = f" (redo for round {self.round})" if self.round > 1 else ""
        suffix = (
            " — stage complete" if self.final and self.round == 1 else " — all redone" if self.final else ""
        )
        return f"{self.stage}{redo}: {self.completed}/{self.total} segments done{suffix}"


def milestones(count: int, total: int, every: int = EVERY) -> list[int]:
    return [m for m in range(1, min(count, total) + 1) if m % every == 0 or m == total]


def record_completion(
    storage: Storage,
    job_id: str,
    stage: str,
    index: int,
    total: int,
    *,
    run_id: str,
    round_: int = 1,
    every: int = EVERY,
) -> list[ProgressEvent]:
    """Mark segment ``index`` done in run ``run_id`` (round ``round_``); return the milestone events this call
    claimed (report each of them)."""
    layout = JobLayout(job_id)
    storage.create_exclusive(layout.progress_marker(run_id, round_, stage, index), b"")
    done = len(list(storage.list(layout.progress_done(run_id, round_, stage) + "/")))
    claimed = []
    for milestone in milestones(done, total, every):
        event = ProgressEvent(
            job_id=job_id,
            stage=stage,
            completed=milestone,
            total=total,
            final=milestone == total,
            run_id=run_id,
            round=round_,
        )
        if storage.create_exclusive(
            layout.progress_event(run_id, round_, stage, milestone), event.model_dump_json().encode()
        ):
            claimed.append(event)
    if claimed:
        rebuild_progress(storage, job_id, run_id)
    return claimed


def rebuild_progress(storage: Storage, job_id: str, run_id: str | None = None) -> dict[str, object]:
    """Rewrite ``progress.json`` from the event objects of one run: every milestone, the latest count per stage
    and, for redo rounds, the latest count per stage and round. Without ``run_id``: the run that reported last.
    """
    layout = JobLayout(job_id)
    folder = layout.progress_run(run_id) if run_id is not None else f"{layout.root}/progress"
    events = [
        ProgressEvent.model_validate_json(storage.get_bytes(key))
        for key in storage.list(folder + "/")
        if "/events/" in key
    ]
    if run_id is None and events:
        run_id = max(events, key=lambda e: e.at).run_id
    events = sorted((e for e in events if e.run_id == run_id), key=lambda e: (e.at, e.stage, e.completed))
    stages: dict[str, dict[str, object]] = {}
    redos: dict[str, dict[str, object]] = {}
    for event in events:
        counts: dict[str, object] = {
            "completed": event.completed,
            "total": event.total,
            "complete": event.final,
        }
        if event.round == 1:
            stages[event.stage] = counts
        else:
            redos[event.stage] = {"round": event.round, **counts}
    summary: dict[str, object] = {
        "job_id": job_id,
        "run_id": run_id,
        "stages": stages,
        "redos": redos,
        "events": [{**e.model_dump(mode="json"), "message": e.message} for e in events],
    }
    storage.put_bytes(layout.progress, json.dumps(summary, indent=2).encode(), "application/json")
    return summary
