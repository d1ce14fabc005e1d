"""Paid provider work, remembered in storage so it is never paid for twice and never lost.

**Provider-task records** (``jobs/<job_id>/provider-tasks/<kind>/<digest>.json``, one per output being made)
are scoped to the job and name the run (and task instance) that submitted them. A record is created
*exclusively* before the POST, in state ``submitting``; once the provider answers it becomes ``submitted``
with the provider task id. Two attempts racing on one output therefore make exactly one POST: the loser
resumes the winner's task, or retries later while the winner is still submitting. A ``submitting`` record
nobody is working on any more (its writer crashed mid-POST) is an *ambiguous* submission — the provider may
have billed it — and is never re-posted blindly: it is marked ``ambiguous`` and the segment fails saying so;
the next attempt after that (a person cleared the task, or re-ran the job) replaces it knowingly. A record is
removed once its output is safely in the content-addressed cache, or its provider task ended for good.

**The spend ledger** (``jobs/<job_id>/spend/<seq>.json``) is append-only. Each entry is created exclusively
under the next sequence number and carries the job's running total, so its writer has seen every entry before
it: credits are *reserved* against ``budget_credits`` before a POST (a lost race re-reads and tries the next
number), and spend can never exceed the budget however many tasks submit at once. A POST that provably
created nothing gives its reservation back with a ``released`` entry; cancellations, timeouts, failures,
salvaged and lost outputs are recorded as zero-credit entries (the provider's refund policy for cancelled
tasks is not documented, so their credits stay counted: ``refund: unknown``).

**Stop markers**: ``jobs/<job_id>/STOPPED`` stops every further submission of a job (the account ran out of
credits); ``jobs/<job_id>/runs/<run>/STOPPED`` stops one run's (it was stopped, rejected or failed). Both are
checked before every POST.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from video_pipeline.layout import IN_FLIGHT_PREFIX, CacheKind, JobLayout
from video_pipeline.models import SpendEvent, SpendEventKind, SpendStage, utcnow
from video_pipeline.sequence import last_taken
from video_pipeline.storage import ObjectNotFound, Storage

SubmissionState = Literal["submitting", "submitted", "ambiguous"]
#: Budgets are whole credits; prices are multiples of whole credits per second. This only absorbs float noise.
_EPSILON = 1e-9


class Submission(BaseModel):
    """A provider-task record: what was (or is being) submitted for one output, by whom, and what it costs."""

    record_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    state: SubmissionState = "submitting"
    kind: CacheKind = "images"
    provider: str
    provider_task_id: str | None = None
    job_id: str
    run_id: str | None = None
    dag_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    index: int
    seed: int
    credits: float
    digest: str
    plan: dict[str, Any] = Field(
        default_factory=dict, description="The plan made at submission (generation.Planned.to_dict())."
    )
    segment: dict[str, Any] = Field(default_factory=dict, description="The segment as submitted.")
    reservation_seq: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None

    @property
    def stage(self) -> SpendStage:
        return self.kind

    def same_task_instance(self, run_id: str | None, task_id: str | None, map_index: int | None) -> bool:
        return (self.run_id, self.task_id, self.map_index) == (run_id, task_id, map_index)


@dataclass(frozen=True)
class Attempt:
    """The task instance try that submits (it names the provider-task record); all ``None`` outside Airflow."""

    dag_id: str | None
    run_id: str | None
    task_id: str
    map_index: int | None
    try_number: int | None

    @classmethod
    def of(cls, context: Mapping[str, Any] | None, task_id: str) -> Attempt:
        """From a task's context (its ``ti`` and ``run_id``)."""
        ti = context.get("ti") if context else None
        return cls(
            dag_id=getattr(ti, "dag_id", None),
            run_id=(context.get("run_id") if context else None) or getattr(ti, "run_id", None),
            task_id=task_id,
            map_index=getattr(ti, "map_index", None),
            try_number=getattr(ti, "try_number", None),
        )


class BudgetExceeded(RuntimeError):
    """Submitting would take the job past its ``budget_credits``."""


# ------------------------------------------------------------------------------------- provider-task records


def load_submission(storage: Storage, job_id: str, kind: CacheKind, digest: str) -> Submission | None:
    try:
        data = storage.get_bytes(JobLayout(job_id).provider_task(kind, digest))
    except ObjectNotFound:
        return None
    return Submission.model_validate_json(data)


def _encode(record: Submission) -> bytes:
    return record.model_dump_json().encode()


def create_submission(storage: Storage, record: Submission) -> bool:
    """Claim the output for this attempt: True if the record was created here, False if one exists."""
    layout = JobLayout(record.job_id)
    if not storage.create_exclusive(layout.provider_task(record.kind, record.digest), _encode(record)):
        return False
    mark_in_flight(storage, record.job_id)
    return True


def replace_submission(storage: Storage, old: Submission, new: Submission) -> bool:
    """Replace an ``ambiguous`` record: exactly one attempt wins (an exclusive marker keyed by the old
    record's id), however many found it at once."""
    layout = JobLayout(new.job_id)
    if not storage.create_exclusive(layout.provider_task_takeover(old.record_id), new.record_id.encode()):
        return False
    storage.put_bytes(layout.provider_task(new.kind, new.digest), _encode(new), "application/json")
    mark_in_flight(storage, new.job_id)
    return True


def update_submission(storage: Storage, record: Submission) -> None:
    """Rewrite a record this attempt owns (``submitting`` → ``submitted`` / ``ambiguous``)."""
    storage.put_bytes(
        JobLayout(record.job_id).provider_task(record.kind, record.digest),
        _encode(record),
        "application/json",
    )
    mark_in_flight(storage, record.job_id)


def clear_submission(storage: Storage, record: Submission) -> bool:
    """Remove the record once its outcome is settled — only if it is still this one (a newer attempt's
    record for the same output is left alone). True if it was removed here."""
    current = load_submission(storage, record.job_id, record.kind, record.digest)
    if current is None or current.record_id != record.record_id:
        return False
    storage.delete(JobLayout(record.job_id).provider_task(record.kind, record.digest))
    return True


def report_ambiguous(storage: Storage, record: Submission) -> None:
    """Note that a ``submitting`` record left by a dead attempt was reported (the segment failed saying so).
    A separate marker, not a rewrite of the record: should its writer be alive after all, its own update to
    ``submitted`` must not be overwritten."""
    storage.put_bytes(JobLayout(record.job_id).provider_task_ambiguous(record.record_id), b"", "text/plain")


def replaceable(storage: Storage, record: Submission) -> bool:
    """An ambiguous submission a person has been told about: the next attempt may submit anew."""
    return record.state == "ambiguous" or (
        record.state == "submitting"
        and storage.exists(JobLayout(record.job_id).provider_task_ambiguous(record.record_id))
    )


def job_submissions(storage: Storage, job_id: str) -> list[Submission]:
    """Every provider-task record of a job (outputs being made, or paid for and not stored yet)."""
    records = []
    for key in storage.list(JobLayout(job_id).provider_tasks):
        if not key.endswith(".json"):
            continue
        try:
            records.append(Submission.model_validate_json(storage.get_bytes(key)))
        except ObjectNotFound:  # cleared between the listing and the read
            continue
    return sorted(records, key=lambda r: r.created_at)


def run_submissions(storage: Storage, job_id: str, run_id: str) -> list[Submission]:
    return [r for r in job_submissions(storage, job_id) if r.run_id == run_id]


# -------------------------------------------------------------------------------------- in-flight index


def mark_in_flight(storage: Storage, job_id: str) -> None:
    """Written after every record write, so the sweep that forgets an empty job cannot miss a new record."""
    storage.put_bytes(JobLayout(job_id).in_flight_marker, b"", "text/plain")


def jobs_in_flight(storage: Storage) -> list[str]:
    return [key[len(IN_FLIGHT_PREFIX) :] for key in storage.list(IN_FLIGHT_PREFIX)]


def forget_if_settled(storage: Storage, job_id: str) -> bool:
    """Drop a job from the in-flight index when it has no records left. Lists again after the delete and
    restores the marker if a record appeared meanwhile (records are written before their marker)."""
    if job_submissions(storage, job_id):
        return False
    storage.delete(JobLayout(job_id).in_flight_marker)
    if job_submissions(storage, job_id):
        mark_in_flight(storage, job_id)
        return False
    return True


# ------------------------------------------------------------------------------------------- spend ledger


def _entry_seq(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name.removesuffix(".json")
    return int(stem) if name.endswith(".json") and stem.isdigit() else None


def _read_entry(storage: Storage, job_id: str, seq: int) -> SpendEvent:
    return SpendEvent.model_validate_json(storage.get_bytes(JobLayout(job_id).spend_entry(seq)))


def _latest(storage: Storage, job_id: str) -> SpendEvent | None:
    """The newest entry, found in O(log n) HEADs: entries are numbered 1…n without gaps (``append_spend``)."""
    seq = last_taken(storage, JobLayout(job_id).spend_entry)
    return _read_entry(storage, job_id, seq) if seq else None


def append_spend(
    storage: Storage,
    job_id: str,
    event: SpendEventKind,
    credits: float = 0.0,
    *,
    budget: float | None = None,
    **fields: Any,
) -> SpendEvent:
    """Append one ledger entry; with ``budget``, refuse (``BudgetExceeded``) an entry that would take the
    total past it. Entry ``n`` is created exclusively by a writer that read entry ``n - 1``'s total; a writer
    that loses ``n`` reads the winner's entry and tries ``n + 1``."""
    layout = JobLayout(job_id)
    last = _latest(storage, job_id)
    while True:
        before = last.total if last is not None else 0.0
        if budget is not None and credits > 0 and before + credits > budget + _EPSILON:
            raise BudgetExceeded(
                f"budget_credits {budget:g} would be exceeded: {before:g} spent or reserved, "
                f"this submission costs {credits:g}"
            )
        seq = last.seq + 1 if last is not None else 1
        entry = SpendEvent(seq=seq, event=event, credits=credits, total=round(before + credits, 6), **fields)
        if storage.create_exclusive(layout.spend_entry(seq), entry.model_dump_json().encode()):
            return entry
        last = _read_entry(storage, job_id, seq)


def reserve_credits(storage: Storage, job_id: str, budget: float | None, record: Submission) -> SpendEvent:
    """Reserve a submission's credits before its POST (raises ``BudgetExceeded``, reserving nothing)."""
    return append_spend(
        storage,
        job_id,
        "reserved",
        record.credits,
        budget=budget,
        **_about(record),
    )


def release_credits(storage: Storage, record: Submission, note: str) -> SpendEvent:
    """Give back a reservation whose POST provably created nothing."""
    return append_spend(storage, record.job_id, "released", -record.credits, note=note, **_about(record))


def record_spend_event(
    storage: Storage,
    record: Submission,
    event: SpendEventKind,
    *,
    note: str | None = None,
    refund: Literal["unknown", "refunded", "none"] | None = None,
) -> SpendEvent:
    """A zero-credit entry saying what became of a paid provider task."""
    return append_spend(
        storage, record.job_id, event, 0.0, note=note, refund=refund, paid=record.credits, **_about(record)
    )


def _about(record: Submission) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "stage": record.kind,
        "index": record.index,
        "provider_task_id": record.provider_task_id,
        "record_id": record.record_id,
    }


def ledger(storage: Storage, job_id: str) -> list[SpendEvent]:
    """Every entry of a job's ledger, in order."""
    entries = []
    for key in storage.list(JobLayout(job_id).spend):
        if (seq := _entry_seq(key)) is not None:
            entries.append(_read_entry(storage, job_id, seq))
    return sorted(entries, key=lambda e: e.seq)


def iter_paid(entries: list[SpendEvent]) -> Iterator[SpendEvent]:
    """The entries that moved the total (reservations and their releases)."""
    return (e for e in entries if e.credits)


def spend_by_segment(storage: Storage, job_id: str) -> dict[int, float]:
    """Credits per segment number: the ledger, not task results, so retries cannot lose or double them."""
    spent: dict[int, float] = {}
    for entry in iter_paid(ledger(storage, job_id)):
        if entry.index is not None:
            spent[entry.index] = round(spent.get(entry.index, 0.0) + entry.credits, 6)
    return spent


def credits_spent(storage: Storage, job_id: str) -> float:
    """The job's total: its latest ledger entry's running total."""
    last = _latest(storage, job_id)
    return last.total if last is not None else 0.0


# ------------------------------------------------------------------------------------------ stop markers


def stop_job(storage: Storage, job_id: str, reason: str) -> None:
    """Stop every further submission of a job (e.g. the account ran out of credits)."""
    storage.put_bytes(JobLayout(job_id).stopped, reason.encode(), "text/plain")


def stop_reason(storage: Storage, job_id: str) -> str | None:
    try:
        return storage.get_bytes(JobLayout(job_id).stopped).decode()
    except ObjectNotFound:
        return None


def stop_run(storage: Storage, job_id: str, run_id: str, reason: str) -> None:
    """Stop every further submission of one run (checked before every POST)."""
    storage.put_bytes(JobLayout(job_id).run_stopped(run_id), reason.encode(), "text/plain")


def run_stop_reason(storage: Storage, job_id: str, run_id: str | None) -> str | None:
    """Why the job, or this run of it, submits nothing more (``None``: go ahead)."""
    if (reason := stop_reason(storage, job_id)) is not None:
        return reason
    if run_id is None:
        return None
    try:
        return storage.get_bytes(JobLayout(job_id).run_stopped(run_id)).decode()
    except ObjectNotFound:
        return None


# ----------------------------------------------------------------------------------------------- reseed


def reseed(storage: Storage, job_id: str, kind: CacheKind, digest: str, *, bump: bool = False) -> int | None:
    """The seed to use instead of the requested one after ``INTERNAL.BAD_OUTPUT`` (``bump`` records a new one)."""
    key = JobLayout(job_id).reseed(kind, digest)
    try:
        current: int | None = int(storage.get_bytes(key))
    except ObjectNotFound:
        current = None
    if bump:
        current = (current or 0) + 1_000_003
        storage.put_bytes(key, str(current).encode())
    return current
