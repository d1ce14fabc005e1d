"""Progress milestones: an event at every 5th completed segment of a stage and at its completion, exactly once
per run (and per round of a redo).

A finished segment takes the stage's next completion number (a ticket: 1, 2, 3, … each created exclusively,
``O_EXCL`` locally, ``If-None-Match: *`` on S3), and the taker of number k reports milestone k when k is a
multiple of 5 or the stage's total. Every number has one taker, so each milestone is reported once and none is
missed; finding the next number costs O(log n) ``exists()`` calls (:mod:`video_pipeline.sequence`), never a
listing of what is done. A segment is counted once however often its task runs: it first marks itself counted
(exclusively), then takes a number, then records the number in its mark. A retry finds the number there (and
reports its milestone if the attempt that took it died before reporting); if an attempt died between the mark
and the record, its retry looks for its ticket among the numbers taken since (a crash-only path).

Marks, tickets and events live under the run's scope (``progress/runs/<run>/r<round>/<stage>/…``): a re-run of
a job counts its own segments from zero instead of seeing the earlier run's and reporting "10/10" after five.
The event objects are the source of truth; ``progress.json`` is a summary of the current run that each
milestone's reporter updates with its own event (two reporting at once may leave one out until the next
milestone; ``publish`` rebuilds it from the events at the end).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from video_pipeline.layout import JobLayout
from video_pipeline.models import utcnow
from video_pipeline.sequence import last_taken
from video_pipeline.storage import ObjectNotFound, Storage

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
    """Count segment ``index`` done in run ``run_id`` (round ``round_``); return the milestone event this call
    claimed, if any (report it)."""
    counter = _Counter(storage, JobLayout(job_id), run_id, round_, stage)
    count = counter.count(index, guess=min(index, total))
    if count > total or not (count % every == 0 or count == total):
        return []
    event = ProgressEvent(
        job_id=job_id,
        stage=stage,
        completed=count,
        total=total,
        final=count == total,
        run_id=run_id,
        round=round_,
    )
    if not storage.create_exclusive(
        JobLayout(job_id).progress_event(run_id, round_, stage, count), event.model_dump_json().encode()
    ):
        return []  # reported already (a retry of the segment that took this number)
    add_to_progress(storage, event)
    return [event]


class _Counter:
    """One stage's completion numbers in one run and round."""

    def __init__(self, storage: Storage, layout: JobLayout, run_id: str, round_: int, stage: str) -> None:
        self.storage = storage
        self.layout = layout
        self.scope = (run_id, round_, stage)

    def ticket(self, count: int) -> str:
        return self.layout.progress_ticket(*self.scope, count)

    def mark(self, index: int) -> str:
        return self.layout.progress_counted(*self.scope, index)

    def read_mark(self, index: int) -> dict[str, int] | None:
        try:
            return dict(json.loads(self.storage.get_bytes(self.mark(index))))
        except ObjectNotFound:
            return None

    def count(self, index: int, guess: int) -> int:
        """Segment ``index``'s completion number: the one it took before, or the next free one."""
        mark = self.read_mark(index)
        if mark is None:
            first_free = last_taken(self.storage, self.ticket, guess) + 1
            if self.storage.create_exclusive(self.mark(index), json.dumps({"from": first_free}).encode()):
                return self.take(index, first_free)
            mark = self.read_mark(index) or {}  # another attempt of the same segment marked it just now
        if "count" in mark:
            return mark["count"]
        # An attempt marked the segment and died before recording its number: it may have taken one since
        # the number it started from. Look there, in order, up to the first free number.
        number = mark.get("from", 1)
        while self.storage.exists(self.ticket(number)):
            if self.storage.get_bytes(self.ticket(number)) == str(index).encode():
                self.record(index, number)
                return number
            number += 1
        return self.take(index, number)

    def take(self, index: int, number: int) -> int:
        """Take the first free number from ``number`` on (every number below it is taken), and record it."""
        while not self.storage.create_exclusive(self.ticket(number), str(index).encode()):
            number += 1
        self.record(index, number)
        return number

    def record(self, index: int, number: int) -> None:
        self.storage.put_bytes(self.mark(index), json.dumps({"count": number}).encode(), "application/json")


def _event_row(event: ProgressEvent) -> dict[str, Any]:
    return {**event.model_dump(mode="json"), "message": event.message}


def _sort_key(row: dict[str, Any]) -> tuple[datetime, str, int]:
    return (datetime.fromisoformat(row["at"]), row["stage"], row["completed"])


def add_to_progress(storage: Storage, event: ProgressEvent) -> dict[str, Any]:
    """Add one milestone to ``progress.json`` (started afresh if it summarises another run), without reading
    the run's other events: the summary may miss a milestone reported at the same moment until the next one
    (``rebuild_progress`` at the end is exact)."""
    layout = JobLayout(event.job_id)
    try:
        summary: dict[str, Any] = json.loads(storage.get_bytes(layout.progress))
    except (ObjectNotFound, ValueError):
        summary = {}
    if summary.get("run_id") != event.run_id or not isinstance(summary.get("events"), list):
        summary = {"job_id": event.job_id, "run_id": event.run_id, "stages": {}, "redos": {}, "events": []}
    summary["events"] = sorted([*summary["events"], _event_row(event)], key=_sort_key)
    latest = [
        e for e in summary["events"] if e["stage"] == event.stage and (e["round"] == 1) == (event.round == 1)
    ]
    newest = ProgressEvent.model_validate(latest[-1])
    counts = {"completed": newest.completed, "total": newest.total, "complete": newest.final}
    if newest.round == 1:
        summary["stages"][newest.stage] = counts
    else:
        summary["redos"][newest.stage] = {"round": newest.round, **counts}
    storage.put_bytes(layout.progress, json.dumps(summary, indent=2).encode(), "application/json")
    return summary


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
        "events": [_event_row(e) for e in events],
    }
    storage.put_bytes(layout.progress, json.dumps(summary, indent=2).encode(), "application/json")
    return summary
