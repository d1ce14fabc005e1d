"""Settling paid provider tasks whose run stopped: cancel what still runs, keep what was already made.

When a run ends without its results (stopped by a person, rejected at a gate, failed), some of its provider
tasks may still be recorded (``jobs/<job_id>/provider-tasks/…``). Each is settled by asking the provider:

* still queued or running → cancelled (``DELETE``): nobody will use it, so it should stop costing;
* succeeded → its output is downloaded, checked and stored in the content-addressed cache (and the job's
  layout), so a later run with the same inputs pays nothing — *never lose paid work*; when the output URL has
  expired (providers keep them hours to days) the spend is recorded as *lost*, never silently paid again;
* failed or cancelled (e.g. from the provider's dashboard) → nothing to keep;
* unknown to the provider → lost.

Every outcome goes into the spend ledger (and from there the manifest); the record is then removed. Records
still ``submitting`` (a POST may be under way) or ``ambiguous`` (a person must look) are left alone.

:func:`cancel_in_flight` does this for one run as it stops (and writes the run's STOPPED marker first, so
nothing more is submitted); :func:`salvage_job` for every record of a job whose run is no longer active (at
the start of the job's next run), and :func:`salvage_all` for every job with records (the scheduled sweep).
The sweep also fetches the output of an *active* run's task that succeeded long ago and was never collected
(its triggerer was lost for longer than it should be): the task later finds it in the cache.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from video_pipeline.claims import RunIsActive, current_claim
from video_pipeline.generation import Planned, fetch_and_store
from video_pipeline.manifest import load_manifest, mark_run_ended, save_manifest
from video_pipeline.models import SpendEventKind, VideoSegment, utcnow
from video_pipeline.outputs import OutputRejected
from video_pipeline.providers.port import Action, ProviderError, RemoteClient, TaskState
from video_pipeline.storage import Storage
from video_pipeline.submissions import (
    Submission,
    clear_submission,
    forget_if_settled,
    job_submissions,
    jobs_in_flight,
    load_submission,
    record_spend_event,
    run_submissions,
    stop_run,
)

log = logging.getLogger(__name__)

Outcome = Literal["salvaged", "cancelled", "cleared", "lost", "left"]
ACTIVE_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING})
#: A record of an active run submitted longer ago than this whose task succeeded is overdue: its run should
#: have fetched the output within minutes; the sweep fetches it before the URL (24–48 h) expires.
OVERDUE_AFTER_S = 30 * 60.0


#: Opens a client of the named remote provider (a context manager), e.g. the Airflow hook's
#: ``lambda name: ProviderHook(name).get_client()``.
ClientFactory = Callable[[str], AbstractContextManager[RemoteClient]]


@dataclass(frozen=True)
class Settled:
    record: Submission
    outcome: Outcome
    detail: str = ""

    def describe(self) -> str:
        return (
            f"{self.record.kind} seg {self.record.index:03d} (task {self.record.provider_task_id}, run "
            f"{self.record.run_id}): {self.outcome}{f' ({self.detail})' if self.detail else ''}"
        )


#: One settler per record at a time within a process. A person's stop reaches the stopped task's handler and
#: its run's at once (two threads of the api-server): without this, one cancelled the task while the other,
#: holding the record it had read before, asked the provider about the deleted task, heard "unknown" and
#: recorded the paid task as lost. Striped, so the locks stay few however many records a process settles.
_SETTLE_LOCKS = tuple(threading.Lock() for _ in range(64))


def settle(
    storage: Storage,
    record: Submission,
    client: RemoteClient,
    *,
    fetch: bool = True,
    finished_only: bool = False,
) -> Settled:
    """Settle one recorded provider task (see the module docstring). ``fetch=False`` leaves a succeeded
    task's output for a later salvage (for callers that must stay quick); ``finished_only`` only fetches a
    succeeded task's output and leaves anything else alone (a record of a run that is still active).

    The record is read again under a per-record lock: one another settler finished meanwhile is left as
    it ended."""
    with _SETTLE_LOCKS[hash(record.record_id) % len(_SETTLE_LOCKS)]:
        current = load_submission(storage, record.job_id, record.kind, record.digest)
        if current is None or current.record_id != record.record_id:
            return Settled(record, "left", "settled meanwhile")
        return _settle(storage, current, client, fetch=fetch, finished_only=finished_only)


def _settle(
    storage: Storage, record: Submission, client: RemoteClient, *, fetch: bool, finished_only: bool
) -> Settled:
    task_id = record.provider_task_id
    if record.state != "submitted" or not task_id:
        return Settled(record, "left", f"record is {record.state}")
    try:
        status = client.status(task_id)
    except ProviderError as exc:
        if not exc.unknown_task:
            raise
        if finished_only:
            return Settled(record, "left", "unknown to the provider; its run handles that")
        return _finish(storage, record, "lost", "lost", "the provider no longer knows the task")
    if finished_only and status.state != TaskState.SUCCEEDED:
        return Settled(record, "left", f"{status.detail or status.state}; its run is active")
    if status.state in ACTIVE_STATES:
        client.cancel(task_id)
        return _finish(
            storage,
            record,
            "cancelled",
            "cancelled",
            f"was {status.detail or status.state}; refund unknown",
            refund="unknown",
        )
    if status.state == TaskState.FAILED:
        return _finish(storage, record, "cleared", "failed", status.code or "failed", refund="unknown")
    if status.state == TaskState.CANCELLED:
        return _finish(storage, record, "cleared", "cancelled", "cancelled at the provider", refund="unknown")
    if not fetch:
        return Settled(record, "left", "succeeded; its output waits for the salvage sweep")
    try:
        outputs = client.outputs(task_id)
        if not outputs:
            return _finish(storage, record, "lost", "lost", "succeeded without an output URL")
        _store_output(storage, record, client, outputs[0])
    except ProviderError as exc:
        if exc.action != Action.RESUBMIT:
            raise
        return _finish(storage, record, "lost", "lost", "the output URL expired before it was fetched")
    except OutputRejected as exc:  # not an image or clip (or out of bounds): never cached, never retried
        return _finish(storage, record, "lost", "lost", f"the output was refused: {exc}")
    return _finish(storage, record, "salvaged", "salvaged", "output stored in the cache")


def _store_output(storage: Storage, record: Submission, client: RemoteClient, url: str) -> None:
    planned = Planned.from_dict(record.plan)
    segment = VideoSegment.model_validate(record.segment)
    fetch_and_store(storage, planned, segment, client, url, task_id=record.provider_task_id)


def _finish(
    storage: Storage,
    record: Submission,
    outcome: Outcome,
    event: SpendEventKind,
    detail: str,
    *,
    refund: Literal["unknown"] | None = None,
) -> Settled:
    record_spend_event(storage, record, event, note=detail, refund=refund)
    clear_submission(storage, record)
    settled = Settled(record, outcome, detail)
    log.warning("Settled %s", settled.describe())
    return settled


def _settle_all(
    storage: Storage,
    records: list[Submission],
    client_factory: ClientFactory,
    *,
    fetch: bool,
    finished_only: bool = False,
) -> list[Settled]:
    results = [Settled(r, "left", f"record is {r.state}") for r in records if r.state != "submitted"]
    submitted = [r for r in records if r.state == "submitted"]
    for provider in sorted({r.provider for r in submitted}):
        with client_factory(provider) as client:
            results += [
                settle(storage, r, client, fetch=fetch, finished_only=finished_only)
                for r in submitted
                if r.provider == provider
            ]
    return results


def cancel_in_flight(
    storage: Storage,
    job_id: str,
    run_id: str,
    client_factory: ClientFactory,
    reason: str = "the run was stopped",
    *,
    fetch: bool = False,
) -> list[Settled]:
    """Stop a run's spending: no further submission (its STOPPED marker, checked before every POST), its
    running provider tasks cancelled, each recorded in the ledger. Succeeded ones are stored with ``fetch``,
    else left to the salvage sweep (a run-failure callback must stay quick)."""
    stop_run(storage, job_id, run_id, reason)
    results = _settle_all(storage, run_submissions(storage, job_id, run_id), client_factory, fetch=fetch)
    forget_if_settled(storage, job_id)
    return results


def salvage_job(
    storage: Storage,
    job_id: str,
    is_active: RunIsActive,
    client_factory: ClientFactory,
    *,
    overdue_after_s: float | None = None,
) -> list[Settled]:
    """Settle every record of a job whose run is no longer active. Records of active runs are theirs, except
    that with ``overdue_after_s`` one submitted longer ago than that whose task *succeeded* has its output
    fetched into the cache (its run should have done so long since: e.g. the triggerer is down, and the
    output URL would expire before it is back); its task then finds the output in the cache."""
    records = job_submissions(storage, job_id)
    active = {r.record_id: not r.run_id or is_active(r.dag_id, r.run_id) for r in records}
    stale = [r for r in records if not active[r.record_id]]
    results = _settle_all(storage, stale, client_factory, fetch=True)
    if overdue_after_s is not None:
        cutoff = utcnow() - timedelta(seconds=overdue_after_s)
        overdue = [r for r in records if active[r.record_id] and (r.submitted_at or r.created_at) < cutoff]
        results += _settle_all(storage, overdue, client_factory, fetch=True, finished_only=True)
    forget_if_settled(storage, job_id)
    return results


def salvage_all(
    storage: Storage,
    is_active: RunIsActive,
    client_factory: ClientFactory,
    *,
    overdue_after_s: float | None = OVERDUE_AFTER_S,
) -> dict[str, list[Settled]]:
    """The sweep: salvage every job with recorded provider tasks. A job's failure is logged and the sweep
    goes on (the next sweep tries it again). The manifest of a job with no active run is brought up to date
    (spend, and its stopped runs closed); an active run's own steps refresh its manifest."""
    report: dict[str, list[Settled]] = {}
    for job_id in jobs_in_flight(storage):
        try:
            results = salvage_job(storage, job_id, is_active, client_factory, overdue_after_s=overdue_after_s)
        except Exception:
            log.exception("Salvage of job %s failed; the next sweep tries again", job_id)
            continue
        report[job_id] = results
        if any(r.outcome != "left" for r in results):
            _record_in_manifest(storage, job_id, results, is_active)
    return report


def _record_in_manifest(
    storage: Storage, job_id: str, results: list[Settled], is_active: RunIsActive
) -> None:
    holder = current_claim(storage, job_id)
    if holder is not None and is_active(holder.dag_id, holder.run_id):
        return  # the active run writes the manifest; its next save copies these ledger entries in
    manifest = load_manifest(storage, job_id)
    if manifest is None:
        return
    for run_id in {r.record.run_id for r in results if r.record.run_id}:
        record = manifest.run_record(run_id)
        if (
            record is not None
            and record.status == "running"
            and not is_active(_record_dag(results, run_id), run_id)
        ):
            mark_run_ended(manifest, run_id, "stopped", "ended without a result; the sweep settled its tasks")
    save_manifest(storage, manifest)


def _record_dag(results: list[Settled], run_id: str) -> str | None:
    return next((r.record.dag_id for r in results if r.record.run_id == run_id), None)
