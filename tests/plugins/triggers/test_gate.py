"""ApprovalGateTrigger against an in-memory stand-in for Airflow's HITL table and Variables."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.timezone import utcnow

from tests.plugins.conditions import until
from video_pipeline.approval import parse_form_answer
from video_pipeline.models import JobSettings
from video_pipeline.reminders import schedule
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.triggers import gate as gate_module
from video_pipeline_airflow.triggers.gate import ApprovalGateTrigger

TI_ID = str(uuid.uuid4())
KEY = "video_approval__fox__images"


class FakeAirflow:
    """The HITL detail row of one task instance and the Variable store, as the trigger sees them."""

    def __init__(self) -> None:
        self.variables: dict[str, str] = {}
        self.answer: dict[str, Any] | None = None
        self.refuse_update = False
        self.refused = 0
        self.deleted: list[str] = []
        self.first_look: float | None = None  # when the trigger first read the request (epoch seconds)

    def get_detail(self, ti_id: uuid.UUID) -> SimpleNamespace:
        assert str(ti_id) == TI_ID
        self.first_look = self.first_look or time.time()
        if self.answer is None:
            return SimpleNamespace(response_received=False, chosen_options=None)
        user = self.answer.get("user")
        return SimpleNamespace(
            response_received=True,
            chosen_options=self.answer["options"],
            params_input=self.answer.get("params", {}),
            responded_at=utcnow(),
            responded_by_user=SimpleNamespace(id=user, name=user) if user else None,
        )

    def update(self, ti_id: uuid.UUID, chosen_options: list[str], params_input: dict[str, Any]) -> None:
        if self.refuse_update or self.answer is not None:
            self.refused += 1
            raise RuntimeError("409: already answered")
        self.answer = {"options": chosen_options, "params": params_input}

    def variable_get(self, key: str, default: Any = None) -> Any:
        return self.variables.get(key, default)

    def variable_delete(self, key: str) -> None:
        self.deleted.append(key)
        self.variables.pop(key, None)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeAirflow:
    fake = FakeAirflow()
    monkeypatch.setattr(gate_module, "get_hitl_detail_content_detail", fake.get_detail)
    monkeypatch.setattr(gate_module, "update_hitl_detail_response", fake.update)
    monkeypatch.setattr(
        gate_module, "Variable", SimpleNamespace(get=fake.variable_get, delete=fake.variable_delete)
    )
    return fake


def trigger(**overrides: Any) -> ApprovalGateTrigger:
    args: dict[str, Any] = {
        "ti_id": TI_ID,
        "variable_key": KEY,
        "timeout_at": utcnow() + timedelta(hours=1),
        "poll_interval": 0.01,
    }
    args.update(overrides)
    return ApprovalGateTrigger(**args)


async def first_event(t: ApprovalGateTrigger, timeout: float = 2.0) -> dict[str, Any]:
    event = await asyncio.wait_for(t.run().__anext__(), timeout)
    return dict(event.payload)


def test_serialize_round_trip() -> None:
    original = trigger()
    path, kwargs = original.serialize()
    assert path == "video_pipeline_airflow.triggers.gate.ApprovalGateTrigger"
    clone = ApprovalGateTrigger(**kwargs)
    assert clone.serialize() == original.serialize()


async def test_an_early_answer_waits_for_the_deferral_to_settle(fake: FakeAirflow) -> None:
    fake.variables[KEY] = "approve"  # answered before the gate's deferral has settled
    settled = time.time() + 0.5
    assert (await first_event(trigger(settle_until=settled)))["chosen_options"] == ["Approve"]
    assert fake.first_look is not None and fake.first_look >= settled - 0.01  # nothing was read before
    assert KEY not in fake.variables


async def test_form_answer(fake: FakeAirflow) -> None:
    fake.answer = {"options": ["Approve"], "params": {"note": "fine"}, "user": "ana"}
    event = await first_event(trigger())
    assert event["chosen_options"] == ["Approve"]
    assert event["via"] == "ui"
    assert event["responded_by_user"] == {"id": "ana", "name": "ana"}


async def test_variable_answer_is_recorded_and_consumed(fake: FakeAirflow) -> None:
    fake.variables[KEY] = '{"decision": "redo", "segments": [2, 4], "by": "ben"}'
    event = await first_event(trigger())
    assert event["chosen_options"] == ["Redo segments"]
    assert event["params_input"]["segments"] == [2, 4]
    assert event["via"] == "variable"
    assert event["responded_by_user"]["name"] == "ben"
    assert fake.answer == {
        "options": ["Redo segments"],
        "params": {"segments": [2, 4], "prompts": None, "narrations": None, "picks": None, "note": None},
    }
    assert KEY not in fake.variables


async def test_variable_picks_are_recorded_as_the_form_would_send_them(fake: FakeAirflow) -> None:
    fake.variables[KEY] = '{"decision": "approve", "picks": {"3": 2, "1": 1}}'
    event = await first_event(trigger())
    assert event["chosen_options"] == ["Approve"]
    assert event["params_input"]["picks"] == {"3": 2, "1": 1}
    assert fake.answer is not None and fake.answer["params"] == event["params_input"]
    request = parse_form_answer(event["chosen_options"], event["params_input"])
    assert (request.decision, request.picks) == ("approve", {3: 2, 1: 1})


async def test_variable_prompts_are_recorded_as_the_form_would_send_them(fake: FakeAirflow) -> None:
    """All of the answer is in the request row: a retried gate that reads it back from there loses nothing."""
    fake.variables[KEY] = '{"decision": "redo", "segments": [2], "prompts": {"4": "a red fox: at dawn"}}'
    event = await first_event(trigger())
    assert event["params_input"] == {
        "segments": [2, 4],
        "prompts": ["4: a red fox: at dawn"],
        "narrations": None,
        "picks": None,
        "note": None,
    }
    assert fake.answer is not None and fake.answer["params"] == event["params_input"]
    request = parse_form_answer(event["chosen_options"], event["params_input"])
    assert (request.segments, request.prompts) == ([2, 4], {4: "a red fox: at dawn"})


async def test_invalid_variable_is_dropped_and_the_gate_keeps_waiting(fake: FakeAirflow) -> None:
    fake.variables[KEY] = "maybe"
    run = asyncio.ensure_future(first_event(trigger()))
    await until(lambda: fake.deleted == [KEY], what="dropping the Variable")
    assert not run.done()
    fake.variables[KEY] = "approve"
    assert (await run)["chosen_options"] == ["Approve"]


HOSTILE_VARIABLES = {
    "nested-100000": "[" * 100_000 + "]" * 100_000,
    "nested-object": '{"decision": "redo", "segments": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "5000-digits": '{"decision": "redo", "segments": [' + "7" * 5000 + "]}",
    "superscript-two": '{"decision": "redo", "segments": ["²"]}',
    "circled-one": '{"decision": "redo", "prompts": {"①": "a fox"}}',
    "long-note": '{"decision": "approve", "note": "' + "n" * 2001 + '"}',
    "note-not-text": '{"decision": "approve", "note": {"a": 1}}',
    "too-large": '{"decision": "approve", "by": "' + "b" * 300_000 + '"}',
    "bool-segment": '{"decision": "redo", "segments": [true]}',
    "nan": "NaN",
}


@pytest.mark.parametrize("value", list(HOSTILE_VARIABLES.values()), ids=list(HOSTILE_VARIABLES))
async def test_hostile_variable_values_are_dropped_and_the_gate_keeps_waiting(
    fake: FakeAirflow, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.variables[KEY] = value
    run = asyncio.ensure_future(first_event(trigger()))
    await until(lambda: fake.deleted == [KEY], what="dropping the Variable")
    assert not run.done()  # the trigger did not raise: it is still waiting
    assert fake.answer is None  # dropped, nothing recorded
    logged = [line for line in capsys.readouterr().out.splitlines() if "Ignoring Variable" in line]
    assert len(logged) == 1 and len(logged[0]) < 2000  # the reason, without echoing the value
    fake.variables[KEY] = "approve"
    assert (await run)["chosen_options"] == ["Approve"]


async def test_form_wins_a_race_with_the_variable(fake: FakeAirflow) -> None:
    fake.variables[KEY] = "reject"
    fake.refuse_update = True  # the form answered between our read and our write
    run = asyncio.ensure_future(first_event(trigger()))
    await until(lambda: fake.refused > 0, what="the refused write")
    fake.refuse_update = False
    fake.answer = {"options": ["Approve"], "user": "ana"}
    event = await run
    assert (event["chosen_options"], event["via"]) == (["Approve"], "ui")


@pytest.mark.parametrize("option", ["Reject", "Approve"])
async def test_timeout_takes_the_configured_option(fake: FakeAirflow, option: str) -> None:
    event = await first_event(trigger(timeout_at=utcnow() - timedelta(seconds=1), timeout_option=option))
    assert (event["chosen_options"], event["via"]) == ([option], "timeout")
    assert fake.answer is not None and fake.answer["options"] == [option]


# -- reminders: sent through a real Apprise connection (json://) to a local receiver, claimed in storage ----------


@pytest.fixture
def reminder_setup(
    fake: FakeAirflow, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[LocalStorage, list[dict[str, Any]], int]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(
                {**json.loads(self.rfile.read(int(self.headers["Content-Length"]))), "path": self.path}
            )
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    for conn_id, path in (("VIDEO_PIPELINE_NOTIFY", "notify"), ("ONCALL", "oncall")):
        conn = {"conn_type": "apprise", "extra": {"config": {"path": f"json://127.0.0.1:{port}/{path}"}}}
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}", json.dumps(conn))
    storage = LocalStorage(tmp_path / "store")
    monkeypatch.setattr(gate_module, "get_storage", lambda: storage)
    yield storage, received, port
    server.shutdown()


def due_reminders(escalate_to: str | None = "oncall", past: bool = True) -> list[dict[str, Any]]:
    job = JobSettings.model_validate(
        {"job_id": "fox", "title": "Fox", "gate_timeout": 100, "reminders": [0.5], "escalate_to": escalate_to}
    )
    opened = utcnow() - timedelta(seconds=60 if past else 0)
    return [r.to_json() for r in schedule(job, "images", "r1", opened, "http://ui/review")]


async def wait_a_little(t: ApprovalGateTrigger) -> None:
    with pytest.raises(TimeoutError):  # nobody answers: the trigger keeps waiting
        await asyncio.wait_for(t.run().__anext__(), 3)


async def test_due_reminders_are_sent_once_even_by_a_restarted_trigger(
    reminder_setup: tuple[LocalStorage, list[dict[str, Any]], int],
) -> None:
    storage, received, _ = reminder_setup
    reminders = due_reminders()
    await wait_a_little(trigger(reminders=reminders))
    await wait_a_little(trigger(reminders=reminders))  # the triggerer restarted: run() from the top
    assert [(r["path"], r["title"].split(":")[0]) for r in received] == [
        ("/notify", "Reminder"),
        ("/oncall", "Escalation"),
    ]
    assert "http://ui/review" in received[0]["message"]
    assert all(storage.exists(r["claim_key"]) for r in reminders)


async def test_a_reminder_not_yet_due_is_not_sent(
    reminder_setup: tuple[LocalStorage, list[dict[str, Any]], int],
) -> None:
    _, received, _ = reminder_setup
    await wait_a_little(trigger(reminders=due_reminders(past=False)))
    assert received == []


async def test_a_failed_send_gives_its_claim_back(
    reminder_setup: tuple[LocalStorage, list[dict[str, Any]], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, received, _ = reminder_setup
    conn = {"conn_type": "apprise", "extra": {"config": {"path": "json://127.0.0.1:9/down"}}}
    monkeypatch.setenv("AIRFLOW_CONN_VIDEO_PIPELINE_NOTIFY", json.dumps(conn))  # nothing listens on port 9
    reminders = due_reminders(escalate_to=None)
    t = trigger(reminders=reminders, poll_interval=5)  # one look within the wait
    await wait_a_little(t)
    assert received == [] and not storage.exists(reminders[0]["claim_key"])  # free for the next look


async def test_an_answer_ends_the_wait_with_no_reminder_sent(
    fake: FakeAirflow, reminder_setup: tuple[LocalStorage, list[dict[str, Any]], int]
) -> None:
    _, received, _ = reminder_setup
    fake.answer = {"options": ["Approve"], "params": {}, "user": "ana"}
    assert (await first_event(trigger(reminders=due_reminders())))["via"] == "ui"
    assert received == []
