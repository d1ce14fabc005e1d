"""ApprovalGateTrigger against an in-memory stand-in for Airflow's HITL table and Variables."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.timezone import utcnow

from tests.plugins.conditions import until
from video_pipeline.approval import parse_form_answer
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
