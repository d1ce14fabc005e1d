"""One active run per job: a run claims ``jobs/<job_id>/claim.json`` exclusively before it does anything.

Runs of one ``job_id`` share its storage (manifest, images, clips, provider-task records, the gates' decision
Variables), so two at once would overwrite each other's decisions and pay twice for the same outputs. The
first task of a run creates the claim (an atomic create: ``O_EXCL`` locally, ``If-None-Match: *`` on S3); a
second run finds it and is refused, with the holder named, before anything is spent. The claim is released
when its run ends (published, rejected, failed, stopped).

A run can end without releasing it (marked failed by a person, a crashed scheduler, a deleted run). Its claim
is then *stale*: the next run asks Airflow whether the holder is still active and, if not, takes the claim
over. Exactly one run can take over from a given holder, however many try at once: the taker first creates a
takeover marker keyed by the stale holder's run id, exclusively.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel, Field

from video_pipeline.layout import JobLayout
from video_pipeline.models import utcnow
from video_pipeline.storage import ObjectNotFound, Storage

#: ``(dag_id, run_id) -> bool``: is that run still queued or running? (Airflow answers; a run that is gone
#: is not active.)
RunIsActive = Callable[[str | None, str], bool]


class Claim(BaseModel):
    run_id: str
    dag_id: str | None = None
    claimed_at: datetime = Field(default_factory=utcnow)
    took_over_from: str | None = None


class JobClaimed(RuntimeError):
    """Another run of the same job is active: this one must not start."""

    def __init__(self, job_id: str, holder: Claim) -> None:
        super().__init__(
            f"job {job_id!r} is already being made by run {holder.run_id!r} (claimed "
            f"{holder.claimed_at:%Y-%m-%d %H:%M:%S} UTC); only one run of a job may be active. Wait for that "
            "run to end, or stop it (mark it failed), then trigger this job again"
        )
        self.job_id = job_id
        self.holder = holder


def _encode(claim: Claim) -> bytes:
    return claim.model_dump_json().encode()


def current_claim(storage: Storage, job_id: str) -> Claim | None:
    try:
        return Claim.model_validate_json(storage.get_bytes(JobLayout(job_id).claim))
    except ObjectNotFound:
        return None


def claim_job(
    storage: Storage, job_id: str, run_id: str, dag_id: str | None, is_active: RunIsActive
) -> Claim:
    """Claim the job for ``run_id`` (idempotent for that run), taking over a stale claim; raises
    :class:`JobClaimed` naming the holder when another run of the job is active."""
    layout = JobLayout(job_id)
    mine = Claim(run_id=run_id, dag_id=dag_id)
    for _ in range(10):  # each turn ends in a decision unless the claim vanished under us (a release)
        if storage.create_exclusive(layout.claim, _encode(mine)):
            return mine
        holder = current_claim(storage, job_id)
        if holder is None:
            continue  # released between our create and our read
        if holder.run_id == run_id:
            return holder  # a retry of this run's first task
        if is_active(holder.dag_id, holder.run_id):
            raise JobClaimed(job_id, holder)
        taker = mine.model_copy(update={"took_over_from": holder.run_id})
        if storage.create_exclusive(layout.claim_takeover(holder.run_id), _encode(taker)):
            storage.put_bytes(layout.claim, _encode(taker), "application/json")
            return taker
        winner = Claim.model_validate_json(storage.get_bytes(layout.claim_takeover(holder.run_id)))
        if winner.run_id == run_id:  # this run took over on an earlier try and died before writing the claim
            storage.put_bytes(layout.claim, _encode(winner), "application/json")
            return winner
        current = current_claim(storage, job_id)  # still the stale holder until the winner writes its claim
        raise JobClaimed(
            job_id, current if current is not None and current.run_id != holder.run_id else winner
        )
    raise RuntimeError(f"job {job_id!r}: could not claim it (its claim kept changing); try again")


def release_claim(storage: Storage, job_id: str, run_id: str) -> bool:
    """Release the job if ``run_id`` holds it (never another run's claim). True if released here.

    Not atomic with the read: a run that took over this run's claim in between would lose it. Only a run
    that already ended can be taken over from, and releasing is the last thing its end does.
    """
    holder = current_claim(storage, job_id)
    if holder is None or holder.run_id != run_id:
        return False
    storage.delete(JobLayout(job_id).claim)
    return True
