"""The probe's operators and trigger. Importable by every Airflow process of the probe (the repository root is
on their ``PYTHONPATH``): the dag-processor and workers import the operators, the triggerer the trigger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import BaseOperator, Context, Variable
from airflow.triggers.base import BaseTrigger, TriggerEvent

from tests.e2e.stop_probe.record import record
from video_pipeline_airflow.stop import is_user_action, report_if_stopped


def _where(ti: Any) -> dict[str, Any]:
    return {"dag_id": ti.dag_id, "run_id": ti.run_id, "task_id": ti.task_id, "map_index": ti.map_index}


class ProbeWaitTrigger(BaseTrigger):
    """Waits ``seconds`` (None: forever), recording how it ends. Reports a person's stop the recommended way:
    ``on_kill`` calls :func:`report_if_stopped`.

    Like the Runway trigger (which fetches its connection first), it asks the triggerer's supervisor for
    something before waiting: the supervisor's first such request in a process builds its API client.
    """

    def __init__(self, seconds: float | None = None) -> None:
        super().__init__()
        self.seconds = seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {"seconds": self.seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        assert ti is not None  # set by the triggerer
        record("trigger_run", **_where(ti), try_number=ti.try_number)
        started = time.monotonic()
        try:
            await asyncio.to_thread(Variable.get, "stop_probe_warm_up", None)
            while self.seconds is None or time.monotonic() - started < self.seconds:
                await asyncio.sleep(1)
        except asyncio.CancelledError as exc:
            record("trigger_cancelled", **_where(ti), args=list(exc.args), user_action=is_user_action(exc))
            raise
        yield TriggerEvent({"waited": self.seconds})

    async def on_kill(self) -> None:
        ti = self.task_instance
        record("trigger_on_kill", **_where(ti))
        reason = await report_if_stopped(self, details={"waiting_for": self.seconds})
        record("trigger_verdict", **_where(ti), reason=reason)

    async def cleanup(self) -> None:
        record("trigger_cleanup", **_where(self.task_instance))


class ProbeWaitOperator(BaseOperator):
    """Defers to :class:`ProbeWaitTrigger` for ``dag_run.conf["wait_s"]`` seconds (absent: forever)."""

    def execute(self, context: Context) -> None:
        ti = context["ti"]
        record("wait_execute", **_where(ti))
        seconds = (context["dag_run"].conf or {}).get("wait_s")
        self.defer(trigger=ProbeWaitTrigger(seconds=seconds), method_name="execute_complete")

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        record("wait_complete", **_where(context["ti"]))

    def on_kill(self) -> None:
        record("operator_on_kill", task_id=self.task_id)


class ProbeBusyOperator(BaseOperator):
    """Runs on a worker for ``dag_run.conf["busy_s"]`` seconds (absent: forever), recording ``on_kill``."""

    def execute(self, context: Context) -> None:
        ti = context["ti"]
        self._where = _where(ti)
        record("busy_started", **self._where)
        seconds = (context["dag_run"].conf or {}).get("busy_s")
        started = time.monotonic()
        while seconds is None or time.monotonic() - started < seconds:
            time.sleep(0.5)

    def on_kill(self) -> None:
        record("busy_on_kill", **getattr(self, "_where", {"task_id": self.task_id}))
