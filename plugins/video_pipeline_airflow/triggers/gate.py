"""Waits for a gate decision from whichever answers first: the HITL form (UI/REST) or the decision Variable.

The form is Airflow's human-in-the-loop request for the gate's task instance. A Variable answer is written
into that request (``update_hitl_detail_response``) so the UI shows the gate as answered, then the Variable is
deleted (consumed). If a form answer lands between our read and our write, the write fails and the next loop
reads the form answer: first answer wins.

While it waits, it also sends the gate's reminders and its escalation (``video_pipeline.reminders``), each
claimed in storage before it is sent, so a triggerer restart (which runs the trigger again from the top) never
sends one twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from airflow.sdk import Variable
from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from video_pipeline.approval import DECISION_TO_OPTION, REJECT, DecisionError, parse_variable_value
from video_pipeline.reminders import MAX_SEND_ATTEMPTS, Reminder, claim, release
from video_pipeline_airflow.compat import get_hitl_detail_content_detail, update_hitl_detail_response
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import NotConfigured, send
from video_pipeline_airflow.settings import NOTIFY_CONN_ID
from video_pipeline_airflow.triggers.settle import wait_until_settled

TIMEOUT_NOTE = "gate timed out"


class ApprovalGateTrigger(BaseTrigger):
    """Fires once with the gate's answer (``chosen_options``, ``params_input``, ``responded_at``,
    ``responded_by_user`` and ``via``: ``ui``, ``variable`` or ``timeout``), from whichever comes first: an
    answer in the review request, the decision Variable, or the timeout.

    :param ti_id: the gate task instance's id: its review request is keyed by it.
    :param variable_key: the decision Variable to read (and delete once its answer is recorded).
    :param timeout_at: when the gate gives up and answers ``timeout_option`` itself; None waits for ever.
    :param timeout_option: the option recorded at the timeout (reject unless the job says approve).
    :param poll_interval: seconds between two looks at the request and the Variable.
    :param settle_until: epoch seconds before which the trigger does not look (see ``settle.py``); None: at once.
    :param reminders: the reminders (and escalation) of this opening, as ``Reminder.to_json`` gives them: each
        is sent once when due, while nobody has answered.
    """

    def __init__(
        self,
        *,
        ti_id: str,
        variable_key: str,
        timeout_at: datetime | None,
        timeout_option: str = REJECT,
        poll_interval: float = 10.0,
        settle_until: float | None = None,
        reminders: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.ti_id = str(ti_id)
        self.variable_key = variable_key
        self.timeout_at = timeout_at
        self.timeout_option = timeout_option
        self.poll_interval = poll_interval
        self.settle_until = settle_until
        self.reminders = list(reminders or [])
        self._pending = [Reminder.from_json(r) for r in self.reminders]
        self._attempts: dict[str, int] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "ti_id": self.ti_id,
                "variable_key": self.variable_key,
                "timeout_at": self.timeout_at,
                "timeout_option": self.timeout_option,
                "poll_interval": self.poll_interval,
                "settle_until": self.settle_until,
                "reminders": self.reminders,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await wait_until_settled(self.settle_until)
        while True:
            event = await self._form_answer() or await self._variable_answer() or await self._timeout()
            if event is not None:
                yield TriggerEvent(event)
                return
            await self._remind()
            await asyncio.sleep(self.poll_interval)

    async def _remind(self) -> None:
        """Send every reminder that is due and not yet sent (by this trigger or an earlier one)."""
        now = datetime.now(UTC)
        for reminder in [r for r in self._pending if r.due(now)]:
            if await sync_to_async(self._send_once)(reminder):
                self._pending.remove(reminder)

    def _send_once(self, reminder: Reminder) -> bool:
        """Claim, send, and give the claim back if the send failed; True when done with this reminder."""
        storage = get_storage()
        if not claim(storage, reminder):
            self.log.info("%s was sent already (claimed in storage)", reminder.name)
            return True
        try:
            send(reminder.title, reminder.body, reminder.conn_id or NOTIFY_CONN_ID)
        except NotConfigured as exc:  # nobody to tell: done (the claim stays), and said in the log
            self.log.warning("%s not sent: %s", reminder.name, exc)
            return True
        except Exception as exc:
            attempts = self._attempts[reminder.name] = self._attempts.get(reminder.name, 0) + 1
            if attempts >= MAX_SEND_ATTEMPTS:
                self.log.error("%s not sent after %d attempts (%s); giving up", reminder.name, attempts, exc)
                return True
            release(storage, reminder)
            self.log.warning("%s not sent (%s); trying again at the next look", reminder.name, exc)
            return False
        self.log.info("Sent %s: %s", reminder.name, reminder.title)
        return True

    async def _form_answer(self) -> dict[str, Any] | None:
        try:
            detail = await sync_to_async(get_hitl_detail_content_detail)(ti_id=UUID(self.ti_id))
        except Exception:  # no request row (a retried gate that died before writing one): Variable only
            return None
        if not (detail.response_received and detail.chosen_options):
            return None
        user = detail.responded_by_user
        params = detail.params_input or {}
        # An answer recorded by this trigger (Variable or timeout) has no user; one from the form/REST has.
        via = "ui" if user else ("timeout" if params.get("note") == TIMEOUT_NOTE else "variable")
        return {
            "chosen_options": list(detail.chosen_options),
            "params_input": params,
            "responded_at": (detail.responded_at or datetime.now(UTC)).isoformat(),
            "responded_by_user": {"id": user.id, "name": user.name} if user else None,
            "via": via,
        }

    async def _variable_answer(self) -> dict[str, Any] | None:
        raw = await sync_to_async(Variable.get)(self.variable_key, default=None)
        if raw is None:
            return None
        try:
            request = parse_variable_value(raw)
        except DecisionError as exc:
            self.log.error("Ignoring Variable %s: %s", self.variable_key, exc)
            await sync_to_async(Variable.delete)(self.variable_key)
            return None
        # The answer as the form would have sent it (prompts as "<n>: <prompt>" lines), so the request row
        # holds all of it: a retried gate that reads the answer back from the row loses nothing.
        params = {
            "segments": request.segments or None,
            "prompts": [f"{index}: {prompt}" for index, prompt in request.prompts.items()] or None,
            "narrations": [f"{index}: {text}" for index, text in request.narrations.items()] or None,
            "picks": {str(index): take for index, take in request.picks.items()} or None,
            "note": request.note,
        }
        try:
            await sync_to_async(update_hitl_detail_response)(
                ti_id=UUID(self.ti_id),
                chosen_options=[DECISION_TO_OPTION[request.decision]],
                params_input=params,
            )
        except Exception:
            self.log.info("The form was answered first; the Variable %s stays unused", self.variable_key)
            return None
        await sync_to_async(Variable.delete)(self.variable_key)
        self.log.info("Decision %r taken from Variable %s", request.decision, self.variable_key)
        return {
            "chosen_options": [DECISION_TO_OPTION[request.decision]],
            "params_input": params,
            "responded_at": datetime.now(UTC).isoformat(),
            "responded_by_user": {"id": "variable", "name": request.by or "variable"},
            "via": "variable",
        }

    async def _timeout(self) -> dict[str, Any] | None:
        if self.timeout_at is None or datetime.now(UTC) < self.timeout_at:
            return None
        await sync_to_async(update_hitl_detail_response)(
            ti_id=UUID(self.ti_id), chosen_options=[self.timeout_option], params_input={"note": TIMEOUT_NOTE}
        )
        return {
            "chosen_options": [self.timeout_option],
            "params_input": {"note": TIMEOUT_NOTE},
            "responded_at": datetime.now(UTC).isoformat(),
            "responded_by_user": None,
            "via": "timeout",
        }
