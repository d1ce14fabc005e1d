"""When a person stops paid work in Airflow, the pipeline is told: one place, two calls.

A run or a segment task can be stopped in many ways (mark the run or the task failed or success, clear, delete,
a run timeout) and each reaches different Airflow machinery in a different process
(``docs/notes/airflow-stop-actions.md`` has the measured table). Two adapters turn all of them into two calls:

- :mod:`video_pipeline_airflow.listeners` (an Airflow listener) calls :func:`run_stopped` and
  :func:`task_stopped` from the api-server and the scheduler;
- a trigger calls :func:`report_if_stopped` from its ``on_kill``: :func:`stopped_by_user` tells a person's
  stop from a triggerer restart and, for a stop, :func:`task_stopped` is called in the triggerer.

Both calls pass a :class:`Stop` to every handler registered for the DAG with :func:`register_stop_handler`.
Several mechanisms may report one stop (the api-server's hook and the trigger's ``on_kill`` for a deferred task
marked failed; for a run marked failed, the api-server and sometimes the scheduler too), in different processes: calls repeated within :data:`REPEAT_WINDOW_S` in one
process reach the handlers once, and handlers must be idempotent across processes anyway. A handler that raises
is logged and does not keep the others from running.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from video_pipeline_airflow import compat

log = logging.getLogger(__name__)

VIDEO_DAG_ID = "video_generation"
#: The mapped tasks that pay a provider (``dags/video_generation.py``); checked against the DAG by a test.
SEGMENT_TASK_IDS = frozenset({"generate_image", "animate_segment"})

#: Comma-separated modules imported once per process before the first stop is dispatched; each registers its
#: handlers at import (a deployment's own handlers, or a test's probe) with :func:`register_stop_handler`.
HANDLER_MODULES_ENV = "VIDEO_PIPELINE_STOP_HANDLER_MODULES"
#: Imported before those: the pipeline's own handler (cancel the stopped work's provider tasks).
DEFAULT_HANDLER_MODULES = ("video_pipeline_airflow.stop_handlers",)
#: A stop reported again within this many seconds, in the same process, is not dispatched again.
REPEAT_WINDOW_S = 120.0
#: How long a trigger waits for the api-server to say what happened to its task (its triggerer's first request
#: builds the supervisor's API client: 4-12 s measured).
STATE_QUERY_TIMEOUT_S = 30.0


class StopReason(StrEnum):
    """Why a run or a task ended without its result."""

    RUN_MARKED_FAILED = "run_marked_failed"
    RUN_MARKED_SUCCESS = "run_marked_success"
    RUN_TIMED_OUT = "run_timed_out"  # dagrun_timeout
    RUN_FAILED = "run_failed"  # the scheduler failed it (a task failed for good, or a deadlock)
    RUN_DELETED = "run_deleted"  # seen by a trigger: its run is gone (the DAG was deleted)
    TASK_MARKED_FAILED = "task_marked_failed"  # by a person, directly or by marking its run
    TASK_MARKED_SUCCESS = "task_marked_success"
    TASK_SKIPPED = "task_skipped"  # its run timed out (or was marked) while it waited
    TASK_CLEARED = "task_cleared"  # it will run again: its next try resumes the provider task it recorded
    TASK_DELETED = "task_deleted"  # its task instance was deleted (REST), or its task left the DAG
    TASK_ENDED = "task_ended"  # ended in a state this version does not know
    TASK_STOPPED_STATE_UNKNOWN = "task_stopped_state_unknown"  # a person acted; Airflow did not say how

    @property
    def reruns(self) -> bool:
        """True when Airflow will run the task again (a clear), so its recorded provider task is not lost."""
        return self is StopReason.TASK_CLEARED


@dataclass(frozen=True)
class Stop:
    """One stop, as handed to each handler.

    :param dag_id: the DAG of the stopped run.
    :param run_id: the stopped run, or the run of the stopped task.
    :param reason: what happened.
    :param conf: the run's ``conf`` (for ``video_generation``, the job spec); None where the reporter does not
        have it (a trigger).
    :param task_id: the stopped task for a task stop; None for a run stop.
    :param map_index: the stopped task's map index (-1 when not mapped); None for a run stop.
    :param details: what the reporter knows besides (a trigger: e.g. the provider task id it was polling).
    """

    dag_id: str
    run_id: str
    reason: StopReason
    conf: Mapping[str, Any] | None = None
    task_id: str | None = None
    map_index: int | None = None
    details: Mapping[str, Any] | None = None

    @property
    def is_run_stop(self) -> bool:
        return self.task_id is None

    def describe(self) -> str:
        where = f"{self.dag_id}/{self.run_id}"
        if self.task_id is not None:
            where += f"/{self.task_id}[{self.map_index}]"
        return f"{where}: {self.reason.value}"


#: A handler receives each :class:`Stop` of the DAG it was registered for. It runs on a thread of its own in
#: the api-server or the scheduler, or on a worker thread of the triggerer; it must be idempotent.
StopHandler = Callable[[Stop], None]


@dataclass(frozen=True)
class _Registration:
    handler: StopHandler
    dag_id: str
    task_ids: frozenset[str] | None  # None: every task of the DAG

    def wants(self, stop: Stop) -> bool:
        if stop.dag_id != self.dag_id:
            return False
        return stop.task_id is None or self.task_ids is None or stop.task_id in self.task_ids


def log_stop(stop: Stop) -> None:
    """The default handler until provider cancellation is wired in: say what stopped."""
    log.warning("Stopped: %s", stop.describe())


@dataclass
class _Registry:
    registrations: list[_Registration] = field(default_factory=list)
    recent: dict[tuple[Any, ...], float] = field(default_factory=dict)
    modules_loaded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_registry = _Registry(registrations=[_Registration(log_stop, VIDEO_DAG_ID, SEGMENT_TASK_IDS)])


def register_stop_handler(
    handler: StopHandler, *, dag_id: str = VIDEO_DAG_ID, task_ids: Iterable[str] | None = SEGMENT_TASK_IDS
) -> None:
    """Have ``handler`` called for every stop of a run of ``dag_id`` and of its tasks ``task_ids``.

    Register at import time of a module that every Airflow process imports (this package, or a module named
    in ``VIDEO_PIPELINE_STOP_HANDLER_MODULES``): stops are reported in the api-server, the scheduler and the
    triggerer. Registering the same handler for the same DAG and tasks twice has no effect.

    :param handler: called with a :class:`Stop`; must be idempotent (one stop may be reported by several
        processes) and should return within seconds (run-level stops are dispatched one at a time per
        process).
    :param dag_id: the DAG whose runs and tasks it handles.
    :param task_ids: the tasks whose stops it receives (run stops always); None for every task of the DAG.
    """
    registration = _Registration(handler, dag_id, None if task_ids is None else frozenset(task_ids))
    with _registry.lock:
        if registration not in _registry.registrations:
            _registry.registrations.append(registration)


def unregister_stop_handler(handler: StopHandler) -> None:
    """Remove every registration of ``handler`` (tests; a deployment replacing the default)."""
    with _registry.lock:
        _registry.registrations[:] = [r for r in _registry.registrations if r.handler != handler]


def watches(dag_id: str, task_id: str | None = None) -> bool:
    """Whether any handler wants stops of this DAG (and task): listeners ask this before handing work off."""
    _load_handler_modules()
    with _registry.lock:
        registrations = list(_registry.registrations)
    probe = Stop(dag_id, "", StopReason.TASK_ENDED, task_id=task_id, map_index=-1)
    return any(r.wants(probe) for r in registrations)


def run_stopped(dag_id: str, run_id: str, conf: Mapping[str, Any] | None, reason: StopReason) -> None:
    """A run ended without its result: tell the handlers (no-op for a DAG nobody watches).

    :param dag_id: the run's DAG.
    :param run_id: the run.
    :param conf: the run's conf (for ``video_generation``, the job spec: its ``job_id`` names the job).
    :param reason: what happened to it.
    """
    _dispatch(Stop(dag_id, run_id, StopReason(reason), conf=dict(conf or {})))


def task_stopped(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    reason: StopReason,
    conf: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """A task instance ended without its result: tell the handlers (no-op for a task nobody watches).

    :param dag_id: the task's DAG.
    :param run_id: its run.
    :param task_id: the task.
    :param map_index: its map index (-1 when not mapped).
    :param reason: what happened to it; :attr:`StopReason.reruns` says whether Airflow runs it again.
    :param conf: its run's conf, if the reporter has it.
    :param details: what else the reporter knows (a trigger: the provider task id it was polling).
    """
    _dispatch(
        Stop(
            dag_id,
            run_id,
            StopReason(reason),
            conf=None if conf is None else dict(conf),
            task_id=task_id,
            map_index=int(map_index),
            details=None if details is None else dict(details),
        )
    )


def _dispatch(stop: Stop) -> None:
    _load_handler_modules()
    key = (stop.dag_id, stop.run_id, stop.task_id, stop.map_index, stop.reason)
    now = time.monotonic()
    with _registry.lock:
        for old, seen in list(_registry.recent.items()):
            if now - seen > REPEAT_WINDOW_S:
                del _registry.recent[old]
        if key in _registry.recent:
            log.info("Stop already reported in this process: %s", stop.describe())
            return
        _registry.recent[key] = now
        handlers = [r.handler for r in _registry.registrations if r.wants(stop)]
    if handlers:
        log.info("Stop %s: %d handler(s)", stop.describe(), len(handlers))
    for handler in handlers:
        try:
            handler(stop)
        except Exception:
            log.exception("Stop handler %s failed for %s", _name(handler), stop.describe())


def _load_handler_modules() -> None:
    if _registry.modules_loaded:
        return
    _registry.modules_loaded = True
    extra = (part.strip() for part in os.environ.get(HANDLER_MODULES_ENV, "").split(","))
    for name in (*DEFAULT_HANDLER_MODULES, *filter(None, extra)):
        try:
            importlib.import_module(name)
        except Exception:
            log.exception(
                "%s names %s, which could not be imported: its stop handlers are missing",
                HANDLER_MODULES_ENV,
                name,
            )


def _name(handler: StopHandler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


# -- deciding what a signal from Airflow means (pure) ------------------------------------------------------

#: ``msg`` of the scheduler's run-state listener calls in Airflow 3.3.2 (models/dagrun.py,
#: jobs/scheduler_job_runner.py). The api-server's calls say "Dag Run's state was manually set to ...".
_SCHEDULER_FAILURE_MESSAGES = {"timed_out": StopReason.RUN_TIMED_OUT}
_SCHEDULER_FAILURES = {"task_failure", "all_tasks_deadlocked"}
_SCHEDULER_SUCCESS_MESSAGE = "success"


def run_end_reason(state: str, msg: str | None) -> StopReason | None:
    """What a run listener call (``on_dag_run_failed``/``on_dag_run_success``) means, or None if not a stop.

    A failed run is always a stop (timed out, failed, or marked failed; an unknown message counts as marked).
    A successful run is a stop only when a person marked it: the scheduler's own call says ``success``.
    """
    if state == "failed":
        if msg in _SCHEDULER_FAILURE_MESSAGES:
            return _SCHEDULER_FAILURE_MESSAGES[msg]
        return StopReason.RUN_FAILED if msg in _SCHEDULER_FAILURES else StopReason.RUN_MARKED_FAILED
    if state == "success":
        return None if msg == _SCHEDULER_SUCCESS_MESSAGE else StopReason.RUN_MARKED_SUCCESS
    return None


def task_end_reason(state: str, previous_state: str | None) -> StopReason | None:
    """What a task listener call (``on_task_instance_failed``/``_success``) means, or None if not a stop.

    In Airflow 3.3.2 only the api-server (a person setting the state, directly or by marking the run) calls
    these with ``previous_state=None``; a worker or the scheduler passes ``running`` for a task that ended by
    itself, and its retries and results are the operator's business.
    """
    if previous_state is not None:
        return None
    if state == "failed":
        return StopReason.TASK_MARKED_FAILED
    if state == "success":
        return StopReason.TASK_MARKED_SUCCESS
    return None


_RERUN_STATES = {
    None,
    "none",
    "scheduled",
    "queued",
    "running",
    "restarting",
    "up_for_retry",
    "up_for_reschedule",
    "awaiting_input",
}
_ENDED_STATES = {
    "failed": StopReason.TASK_MARKED_FAILED,
    "success": StopReason.TASK_MARKED_SUCCESS,
    "skipped": StopReason.TASK_SKIPPED,
    "upstream_failed": StopReason.TASK_SKIPPED,
    "removed": StopReason.TASK_DELETED,
}


def task_stop_reason(*, run_exists: bool, ti_exists: bool, ti_state: str | None) -> StopReason | None:
    """What a cancelled trigger's task instance looks like now means, or None if it was not stopped.

    Still ``deferred``: the trigger was moved or restarted, and the task keeps waiting (for a new trigger).
    """
    if not run_exists:
        return StopReason.RUN_DELETED
    if not ti_exists:
        return StopReason.TASK_DELETED
    state = None if ti_state is None else str(ti_state)
    if state == "deferred":
        return None
    if state in _RERUN_STATES:
        return StopReason.TASK_CLEARED
    return _ENDED_STATES.get(state, StopReason.TASK_ENDED)  # type: ignore[arg-type]


# -- triggers ---------------------------------------------------------------------------------------------


def is_user_action(cancelled: BaseException) -> bool | None:
    """Whether a ``CancelledError`` caught in a trigger's ``run()`` is the triggerer acting on a person's
    action (True) or a shutdown, a restart or a timeout (False); None if this Airflow no longer says."""
    try:
        marker = compat.user_action_cancel_message()
    except Exception:  # moved in an upgrade (tests/plugins/test_compat.py names it)
        log.warning("Cannot tell a person's cancel from a shutdown by its message", exc_info=True)
        return None
    return bool(cancelled.args) and cancelled.args[0] == marker


async def stopped_by_user(
    trigger: Any, cancelled: BaseException | None = None, *, timeout: float = STATE_QUERY_TIMEOUT_S
) -> StopReason | None:
    """Why the task this trigger waits for was stopped, or None when only the trigger stopped running.

    Call it from the trigger's ``on_kill()`` (Airflow 3.3 calls that only after a person acted on the task,
    or when the trigger moved to another triggerer) or from ``except asyncio.CancelledError as exc:`` in
    ``run()``, passing ``exc``. It asks the api-server for the task instance: still ``deferred`` means the
    trigger moved and the task keeps waiting. None also means: the triggerer is shutting down or restarting,
    or the trigger's own timeout passed; the provider task must keep running, a new trigger resumes it.

    Never raises. When a person did act but the api-server cannot say how within ``timeout`` seconds (the
    triggerer's first request after a start builds its in-process API client: measured 4-12 s),
    it answers :attr:`StopReason.TASK_STOPPED_STATE_UNKNOWN`.

    The triggerer cancels a cancelled trigger's task again on each of its loops (about every second) until
    the trigger has ended, which interrupts whatever ``on_kill`` awaits: to act on the answer, use
    :func:`report_if_stopped`, which survives that.

    :param trigger: the trigger (its ``task_instance`` and ``timeout_after`` are set by the triggerer).
    :param cancelled: the ``CancelledError`` caught in ``run()``, if called from there.
    :param timeout: seconds to wait for the api-server's answer.
    """
    user_action: bool | None = True
    try:
        if cancelled is not None:
            user_action = is_user_action(cancelled)
            if user_action is False:
                return None
        timeout_after = getattr(trigger, "timeout_after", None)
        if isinstance(timeout_after, datetime) and _as_utc(timeout_after) < datetime.now(UTC):
            return None  # the trigger's own timeout: Airflow fails the task itself
        ti = getattr(trigger, "task_instance", None)
        if ti is None:
            return None
        async with asyncio.timeout(timeout):
            run_exists, ti_exists, ti_state = await asyncio.to_thread(
                observe_task, ti.dag_id, ti.run_id, ti.task_id, ti.map_index
            )
        return task_stop_reason(run_exists=run_exists, ti_exists=ti_exists, ti_state=ti_state)
    except Exception:  # includes TimeoutError
        log.warning("Could not ask what happened to this trigger's task", exc_info=True)
        return StopReason.TASK_STOPPED_STATE_UNKNOWN if user_action else None


_reporting: set[asyncio.Task[StopReason | None]] = set()


async def report_if_stopped(
    trigger: Any, cancelled: BaseException | None = None, *, details: Mapping[str, Any] | None = None
) -> StopReason | None:
    """:func:`stopped_by_user`, then :func:`task_stopped` (on a thread) if the task was stopped.

    Runs in an asyncio task of its own, so that it completes even when the triggerer cancels the caller
    again (it does, about every second, until the trigger has ended); returns the reason when the caller is
    still there to hear it. Call it from the trigger's ``on_kill()``.

    :param trigger: the trigger (its ``task_instance`` is set by the triggerer).
    :param cancelled: the ``CancelledError`` caught in ``run()``, if called from there instead.
    :param details: passed to the handlers with the stop (e.g. ``{"provider_task_id": ...}``).
    """
    work = asyncio.ensure_future(_report(trigger, cancelled, details))
    _reporting.add(work)  # the event loop keeps only a weak reference to a task
    work.add_done_callback(_reporting.discard)
    return await asyncio.shield(work)


async def _report(
    trigger: Any, cancelled: BaseException | None, details: Mapping[str, Any] | None
) -> StopReason | None:
    reason = await stopped_by_user(trigger, cancelled)
    if reason is not None:
        ti = trigger.task_instance
        try:
            await asyncio.to_thread(
                task_stopped, ti.dag_id, ti.run_id, ti.task_id, ti.map_index, reason, None, details
            )
        except Exception:
            log.exception("Could not report the stop of %s/%s/%s", ti.dag_id, ti.run_id, ti.task_id)
    return reason


def observe_task(dag_id: str, run_id: str, task_id: str, map_index: int) -> tuple[bool, bool, str | None]:
    """``(run exists, task instance exists, its state)`` from the api-server, through the Task SDK's supervisor
    channel (blocking: call it on a thread from a trigger)."""
    runtime_ti = compat.runtime_task_instance()
    if runtime_ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]) == 0:
        return False, False, None
    states = runtime_ti.get_task_states(
        dag_id=dag_id, task_ids=[task_id], run_ids=[run_id], map_index=map_index
    )
    # Keyed by task id, or "<task id>_<map index>" for a mapped task instance (execution API, 3.3.2).
    key = task_id if map_index is None or map_index < 0 else f"{task_id}_{map_index}"
    of_run = states.get(run_id, {})
    if key not in of_run:
        return True, False, None
    state = of_run[key]
    return True, True, None if state is None else str(getattr(state, "value", state))


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
