"""Paid provider work, remembered in storage so it is never paid for twice.

A submission record is written the moment a provider accepts a request (before the first poll) under a key
derived from everything that determines the output. A retried, cleared or restarted task — or another run of
the same job — finds the record and resumes the same provider task instead of submitting again. The record is
removed once the output is safely in the content-addressed cache (or the provider task failed for good).

The spend ledger (``jobs/<job_id>/spend/``) holds one object per paid submission, so ``budget_credits`` can be
enforced before each submission and the manifest can say what a job cost.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from video_pipeline.layout import CacheKind
from video_pipeline.models import utcnow
from video_pipeline.storage import Storage


class Submission(BaseModel):
    kind: CacheKind = "images"
    provider: str
    provider_task_id: str
    job_id: str
    index: int
    seed: int
    credits: float
    digest: str
    submitted_at: datetime = Field(default_factory=utcnow)


class BudgetExceeded(RuntimeError):
    """Submitting would take the job past its ``budget_credits``."""


def submission_key(kind: CacheKind, digest: str) -> str:
    return f"provider-tasks/{kind}/{digest}.json"


def load_submission(storage: Storage, kind: CacheKind, digest: str) -> Submission | None:
    key = submission_key(kind, digest)
    if not storage.exists(key):
        return None
    return Submission.model_validate_json(storage.get_bytes(key))


def save_submission(storage: Storage, kind: CacheKind, digest: str, submission: Submission) -> None:
    storage.put_bytes(submission_key(kind, digest), submission.model_dump_json().encode(), "application/json")
    submission.kind = kind
    entry = f"jobs/{submission.job_id}/spend/{submission.provider_task_id}.json"
    storage.put_bytes(entry, submission.model_dump_json().encode(), "application/json")


def clear_submission(storage: Storage, kind: CacheKind, digest: str) -> None:
    storage.delete(submission_key(kind, digest))


def pending_submissions(storage: Storage, job_id: str) -> list[tuple[CacheKind, Submission]]:
    """Paid submissions of a job whose output has not been stored yet (in flight, or abandoned)."""
    pending: list[tuple[CacheKind, Submission]] = []
    for entry in ledger(storage, job_id):
        current = load_submission(storage, entry.kind, entry.digest)
        if current is not None and current.provider_task_id == entry.provider_task_id:
            pending.append((entry.kind, current))
    return pending


def reseed(storage: Storage, kind: CacheKind, digest: str, *, bump: bool = False) -> int | None:
    """The seed to use instead of the requested one after ``INTERNAL.BAD_OUTPUT`` (``bump`` records a new one)."""
    key = f"provider-tasks/{kind}/{digest}.reseed"
    current = int(storage.get_bytes(key)) if storage.exists(key) else None
    if bump:
        current = (current or 0) + 1_000_003
        storage.put_bytes(key, str(current).encode())
    return current


def stop_job(storage: Storage, job_id: str, reason: str) -> None:
    """Stop every further submission of a job (e.g. the account ran out of credits)."""
    storage.put_bytes(f"jobs/{job_id}/STOPPED", reason.encode(), "text/plain")


def stop_reason(storage: Storage, job_id: str) -> str | None:
    key = f"jobs/{job_id}/STOPPED"
    return storage.get_bytes(key).decode() if storage.exists(key) else None


def ledger(storage: Storage, job_id: str) -> list[Submission]:
    """Every paid submission of a job, oldest first."""
    entries = [
        Submission.model_validate_json(storage.get_bytes(k)) for k in storage.list(f"jobs/{job_id}/spend/")
    ]
    return sorted(entries, key=lambda e: e.submitted_at)


def spend_by_segment(storage: Storage, job_id: str) -> dict[int, float]:
    """Credits paid per segment number: the ledger, not task results, so retries cannot lose or double it."""
    spent: dict[int, float] = {}
    for entry in ledger(storage, job_id):
        spent[entry.index] = spent.get(entry.index, 0.0) + entry.credits
    return spent


def credits_spent(storage: Storage, job_id: str) -> float:
    return sum(spend_by_segment(storage, job_id).values())


def check_budget(storage: Storage, job_id: str, budget: int | None, cost: float) -> None:
    if budget is None:
        return
    spent = credits_spent(storage, job_id)
    if spent + cost > budget:
        raise BudgetExceeded(
            f"budget_credits {budget} would be exceeded: {spent:g} spent, this submission costs {cost:g}"
        )
