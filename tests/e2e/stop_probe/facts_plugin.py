"""A second listener for the probe, put in the probe's plugins folder: writes every run and task listener call
for the probe DAGs with the process it ran in (what Airflow itself fires, for the facts note)."""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from tests.e2e.stop_probe.handlers import PROBE_DAG_IDS
from tests.e2e.stop_probe.record import record


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _ti(hook: str, previous_state: Any, ti: Any, **extra: Any) -> None:
    if ti.dag_id in PROBE_DAG_IDS:
        record(
            "hook",
            hook=hook,
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=ti.map_index,
            previous_state=_state(previous_state),
            state=_state(getattr(ti, "state", None)),
            ti_type=type(ti).__name__,
            **extra,
        )


def _run(hook: str, dag_run: Any, msg: str) -> None:
    if dag_run.dag_id in PROBE_DAG_IDS:
        record("hook", hook=hook, dag_id=dag_run.dag_id, run_id=dag_run.run_id, msg=msg)


class ProbeFacts:
    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        _run("on_dag_run_running", dag_run, msg)

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        _run("on_dag_run_success", dag_run, msg)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        _run("on_dag_run_failed", dag_run, msg)

    @hookimpl
    def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
        _ti("on_task_instance_running", previous_state, task_instance)

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        _ti("on_task_instance_success", previous_state, task_instance)

    @hookimpl
    def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
        _ti("on_task_instance_failed", previous_state, task_instance, error=str(error)[:120])

    @hookimpl
    def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
        _ti("on_task_instance_skipped", previous_state, task_instance)


class StopProbeFactsPlugin(AirflowPlugin):
    name = "stop_probe_facts"
    listeners = [ProbeFacts()]  # noqa: RUF012
