"""When a gate's reminders and escalation are due, what they say, and the claim that sends each once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from video_pipeline.models import JobSettings
from video_pipeline.reminders import Reminder, claim, opening_stamp, release, schedule
from video_pipeline.storage import LocalStorage

OPENED = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
LINK = "http://airflow/dags/video_generation/runs/r1/tasks/clips_gate/plugin/video-review"


def job(**fields: object) -> JobSettings:
    return JobSettings.model_validate({"job_id": "fox", "title": "Fox", "gate_timeout": 3600, **fields})


def test_default_reminders_at_half_and_ninety_percent_of_the_timeout() -> None:
    reminders = schedule(job(), "clips", "r1", OPENED, LINK)
    assert [(r.kind, r.name, r.conn_id) for r in reminders] == [
        ("reminder", "reminder-1", None),
        ("reminder", "reminder-2", None),
    ]
    assert [datetime.fromisoformat(r.due_at) - OPENED for r in reminders] == [
        timedelta(minutes=30),
        timedelta(minutes=54),
    ]
    assert "rejects in 30 min (at 2026-11-30 11:00 UTC) unless answered" in reminders[0].body
    assert LINK in reminders[0].body and "fox" in reminders[0].title


def test_the_escalation_goes_to_its_connection_at_the_last_reminder() -> None:
    reminders = schedule(
        job(reminders=[0.75, 0.25], escalate_to="oncall", on_gate_timeout="approve"),
        "images",
        "r1",
        OPENED,
        LINK,
    )
    assert [r.name for r in reminders] == ["reminder-1", "reminder-2", "escalation"]
    escalation = reminders[-1]
    assert (escalation.conn_id, escalation.due_at) == ("oncall", reminders[1].due_at)
    assert escalation.title == "Escalation: fox images gate approves in 15 min without a review"
    assert not schedule(job(reminders=[], escalate_to="oncall"), "images", "r1", OPENED, LINK)


def test_each_opening_of_a_gate_has_its_own_claims() -> None:
    first = schedule(job(), "clips", "r1", OPENED, LINK)[0]
    reopened = schedule(job(), "clips", "r1", OPENED + timedelta(minutes=5), LINK)[0]
    assert first.claim_key != reopened.claim_key
    assert opening_stamp(OPENED) in first.claim_key and first.claim_key.startswith("jobs/fox/gate-reminders/")


def test_a_reminder_is_claimed_once_and_a_released_claim_can_be_taken_again(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    reminder = schedule(job(), "clips", "r1", OPENED, LINK)[0]
    assert claim(storage, reminder) is True
    assert claim(storage, reminder) is False  # a restarted trigger finds it taken
    release(storage, reminder)  # the send failed
    assert claim(storage, reminder) is True


def test_due_and_json_round_trip() -> None:
    reminder = schedule(job(), "clips", "r1", OPENED, LINK)[0]
    assert not reminder.due(OPENED + timedelta(minutes=29))
    assert reminder.due(OPENED + timedelta(minutes=30))
    assert Reminder.from_json(reminder.to_json()) == reminder
