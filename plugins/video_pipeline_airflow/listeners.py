"""Airflow listener that reports runs and segment tasks stopped by people to :mod:`video_pipeline_airflow.stop`.

Registered by the plugin (``plugins/video_pipeline_plugin.py``), so every Airflow process that loads plugins
imports it: the api-server, the scheduler, the dag-processor, the triggerer and each task process. In Airflow
3.3.2 (``docs/notes/airflow-stop-actions.md``):

- the api-server calls ``on_dag_run_failed``/``_success`` when a person sets a run's state (REST or UI), and
  ``on_task_instance_failed``/``_success`` with ``previous_state=None`` for each task instance a person set,
  directly or by marking the run (those that were running or deferred);
- the scheduler calls ``on_dag_run_failed`` when a run fails or times out (``msg`` says which) and
  ``on_dag_run_success`` when it finishes;
- nothing calls a hook when a task is cleared or deleted; the trigger of a deferred task sees those (its
  ``on_kill``, see :func:`video_pipeline_airflow.stop.report_if_stopped`), a running task's ``on_kill`` runs
  on its worker. A running run cannot be deleted (the api-server answers 409).

Each hook runs inline in Airflow's own code (inside the api-server's request before its transaction commits,
or in the scheduler's loop) and a hook that raises stops the other listeners' hooks for that call. So each
hook here only filters (dictionary lookups), copies what it needs from the ORM object (for a task, at most one
read of its run's conf, in the request's own session) and hands the call to a small thread pool; it never
raises. The handlers run on that pool, after the hook has returned.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.listeners import hookimpl

from video_pipeline_airflow import stop

log = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()  # the api-server runs hooks on several request threads


def _hand_off(call: Callable[..., None], *args: Any) -> None:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="video-pipeline-stop")
        executor = _executor
    executor.submit(call, *args)


def _forget_executor() -> None:
    # A process forked from one that used the pool (LocalExecutor workers fork from the scheduler) inherits
    # the pool without its threads, and maybe the lock held: it must start its own.
    global _executor, _executor_lock
    _executor = None
    _executor_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_executor)


def _state_name(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))


def _run_ended(dag_run: Any, state: str, msg: str | None) -> None:
    try:
        dag_id, run_id = dag_run.dag_id, dag_run.run_id
        reason = stop.run_end_reason(state, msg)
        if reason is None or not stop.watches(dag_id):
            return
        _hand_off(stop.run_stopped, dag_id, run_id, dict(dag_run.conf or {}), reason)
    except Exception:
        log.exception("Could not report a stopped run")


def _task_ended(task_instance: Any, state: str, previous_state: Any) -> None:
    try:
        reason = stop.task_end_reason(state, _state_name(previous_state))
        if reason is None:
            return
        dag_id, task_id = task_instance.dag_id, task_instance.task_id
        if not stop.watches(dag_id, task_id):
            return
        run_id, map_index = task_instance.run_id, task_instance.map_index
        map_index = -1 if map_index is None else map_index
        _hand_off(stop.task_stopped, dag_id, run_id, task_id, map_index, reason, _run_conf(task_instance))
    except Exception:
        log.exception("Could not report a stopped task")


def _run_conf(task_instance: Any) -> dict[str, Any] | None:
    """The run's conf of an api-server task instance (the ORM relationship: at most one small read in the
    request's own session); None where it is not at hand."""
    try:
        dag_run = getattr(task_instance, "dag_run", None)
        return None if dag_run is None else dict(dag_run.conf or {})
    except Exception:
        return None


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    _run_ended(dag_run, "failed", msg)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    _run_ended(dag_run, "success", msg)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    _task_ended(task_instance, "failed", previous_state)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    _task_ended(task_instance, "success", previous_state)
