"""Reminders while a gate waits: when each one is due, what it says, and the claim that sends it once.

A gate that nobody answers rejects at ``gate_timeout`` (or approves, if the job says so). Before that, the
job's ``reminders`` (fractions of ``gate_timeout``, default 50 % and 90 %) each remind the reviewers once, and
at the last one the ``escalate_to`` connection, when the job names one, is told that the gate is about to time
out. The gate's trigger sends them (it is the one thing that waits with the gate); a triggerer restart starts
the trigger again from the top, so each reminder is claimed in storage first (an exclusive create, the same
atomic create as the progress milestones): whoever creates the claim sends it, and a send that fails gives
the claim back so the next look tries again. A triggerer that dies between its claim and its send loses that
reminder (at most once, never twice).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from video_pipeline.layout import JobLayout
from video_pipeline.models import JobSettings, Stage, utcnow
from video_pipeline.storage import Storage

ReminderKind = Literal["reminder", "escalation"]
#: What to do with a due reminder whose send failed: retried at the next look, at most this many times.
MAX_SEND_ATTEMPTS = 5


def opening_stamp(opened_at: datetime) -> str:
    """One opening of a gate as a storage key part (its time to the microsecond, UTC)."""
    return opened_at.strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class Reminder:
    """One notification a waiting gate sends: when, to which connection (None: the notify connection), what.

    Kept as plain JSON types: it travels in the trigger's arguments."""

    kind: ReminderKind
    name: str  # "reminder-1", "reminder-2", "escalation"
    due_at: str  # ISO 8601, UTC
    claim_key: str
    conn_id: str | None
    title: str
    body: str

    def due(self, now: datetime) -> bool:
        return now >= datetime.fromisoformat(self.due_at)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reminder:
        return cls(**data)


def _left(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 2:
        return f"{max(1, round(seconds))} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes / 60:.1f} h"


def schedule(
    job: JobSettings, stage: Stage, run_id: str, opened_at: datetime, review_link: str
) -> list[Reminder]:
    """The reminders (and the escalation) of one opening of a gate, in the order they are due."""
    timeout_at = opened_at + timedelta(seconds=job.gate_timeout)
    outcome = "approves" if job.on_gate_timeout == "approve" else "rejects"
    layout = JobLayout(job.job_id)
    stamp = opening_stamp(opened_at)
    reminders: list[Reminder] = []
    for number, fraction in enumerate(job.reminders, start=1):
        due = opened_at + timedelta(seconds=job.gate_timeout * fraction)
        left = _left((timeout_at - due).total_seconds())
        name = f"reminder-{number}"
        reminders.append(
            Reminder(
                kind="reminder",
                name=name,
                due_at=due.isoformat(),
                claim_key=layout.gate_reminder(run_id, stage, stamp, name),
                conn_id=None,
                title=f"Reminder: {job.job_id} waits for a review of its {stage}",
                body=(
                    f"The {stage} gate of {job.job_id} has waited {round(fraction * 100)} % of its time; it "
                    f"{outcome} in {left} (at {timeout_at:%Y-%m-%d %H:%M} UTC) unless answered. Review: "
                    f"{review_link}"
                ),
            )
        )
    if job.escalate_to and reminders:
        last = reminders[-1]
        left = _left((timeout_at - datetime.fromisoformat(last.due_at)).total_seconds())
        reminders.append(
            Reminder(
                kind="escalation",
                name="escalation",
                due_at=last.due_at,
                claim_key=layout.gate_reminder(run_id, stage, stamp, "escalation"),
                conn_id=job.escalate_to,
                title=f"Escalation: {job.job_id} {stage} gate {outcome} in {left} without a review",
                body=(
                    f"Nobody has answered the {stage} gate of {job.job_id} (run {run_id}); it {outcome} at "
                    f"{timeout_at:%Y-%m-%d %H:%M} UTC. Review: {review_link}"
                ),
            )
        )
    return reminders


def claim(storage: Storage, reminder: Reminder) -> bool:
    """Take the one right to send ``reminder``; False when someone (an earlier trigger) already has."""
    record = {"name": reminder.name, "claimed_at": utcnow().isoformat(), "due_at": reminder.due_at}
    return storage.create_exclusive(reminder.claim_key, json.dumps(record).encode())


def release(storage: Storage, reminder: Reminder) -> None:
    """Give a claim back after a failed send, so the next look sends it again."""
    storage.delete(reminder.claim_key)
