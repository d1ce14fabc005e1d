"""Polls any remote provider's task from the triggerer until it ends, holding no worker slot meanwhile.

Serialises only the provider's name, its task id, the connection id, the poll settings, the deadline and
where the task is recorded (never the key), so it survives a triggerer restart: the new triggerer re-creates it
and resumes polling the same provider task, against the same deadline.

With ``handoff`` (the segment task's last take), a task that succeeded is finished right here: the output is
fetched, checked and stored, the record cleared, the segment counted, and the trigger ends the task with its
XCom (``TaskSuccessEvent``), so the task goes through a worker once (to submit) instead of twice. That work
blocks (HTTP, storage, media checks), so it runs on a thread of its own pool, never on the event loop: other
triggers keep polling meanwhile. Whenever it cannot finish the task the way the worker would
(:mod:`video_pipeline_airflow.segment_completion`), the trigger fires its ordinary event and the worker decides,
as without a hand-off. A triggerer killed mid-download re-creates the trigger, which polls and downloads again:
the provider task is never submitted twice.

A task that has not ended by ``deadline`` (epoch seconds; the Variable ``video_pipeline_provider_timeout_seconds``
after its submission) is cancelled at the provider and the trigger ends with a ``timeout`` event: a task stuck in
the provider's queue must not hold its pool slot forever.

When a person acts on the task (mark failed/success, clear, delete) Airflow cancels the trigger and calls its
``on_kill``: :func:`cancel_if_stopped` reports the stop, and the stop handler cancels the provider task unless
the task runs again (a clear). A triggerer shutdown or restart calls no ``on_kill``: the next triggerer resumes.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import random
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from video_pipeline.providers.port import AsyncRemoteClient, ProviderError, RemoteStatus, TaskState
from video_pipeline_airflow import compat, stop_handlers
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.segment_completion import Handoff, complete_in_triggerer
from video_pipeline_airflow.triggers.settle import wait_until_settled

log = logging.getLogger(__name__)

#: Up to this fraction is added to each poll interval, so tasks submitted together do not poll in lockstep.
POLL_JITTER = 0.25
#: The XCom key of a task's return value.
RETURN_VALUE = "return_value"
#: Threads finishing segments in one triggerer at once (mostly waiting on downloads and storage). A pool of
#: its own: the event loop's default executor also serves Airflow's sync-to-async calls, which slow downloads
#: must not starve.
HANDOFF_THREADS = 8

_handoff_pool: ThreadPoolExecutor | None = None
_handoff_pool_lock = threading.Lock()


def handoff_pool() -> ThreadPoolExecutor:
    """The triggerer's pool for :func:`complete_in_triggerer`, created on first use."""
    global _handoff_pool
    with _handoff_pool_lock:
        if _handoff_pool is None:
            _handoff_pool = ThreadPoolExecutor(HANDOFF_THREADS, thread_name_prefix="video-pipeline-handoff")
        return _handoff_pool


def poll_delay(interval: float, rng: random.Random | None = None) -> float:
    """Seconds until the next poll: never below ``interval``, plus jitter."""
    return interval * (1.0 + (rng or random).uniform(0.0, POLL_JITTER))


class ProviderTaskTrigger(BaseTrigger):
    """Polls one remote provider task until it ends or its deadline passes.

    Fires one event: ``{"event": "done", …RemoteStatus}`` when the task ended (succeeded, failed or cancelled;
    never with output URLs), ``{"event": "error", …}`` when polling itself failed after the client's retries,
    or ``{"event": "timeout", …}`` at the deadline (with whether the cancel went through). With ``handoff``, a
    task that succeeded ends the segment task instead (its return value set, then ``TaskSuccessEvent``), or
    fires ``done`` with ``stored`` (the take's JSON) when the take was stored but finishing it failed.

    :param provider: the provider's registry name.
    :param provider_task_id: the provider task to poll.
    :param conn_id: the provider's connection (API base URL and key); default: the provider's own.
    :param poll_interval: seconds between polls (at least the provider's minimum against its real API), with
        jitter.
    :param settle_until: epoch seconds before which no event that resumes the task on a worker may fire (see
        ``settle.py``); polling starts at once.
    :param deadline: epoch seconds after which the task is cancelled and a ``timeout`` event ends the trigger
        (``None``: no deadline).
    :param job_id: the job whose provider-task record names this task (for recording a stop).
    :param run_id: the run that submitted it.
    :param kind: ``images`` or ``clips``.
    :param digest: the output's content digest (the record's key).
    :param record_id: the record's id (a stop settles only this record, never a newer one).
    :param handoff: what finishing the segment task here needs (``Handoff.to_dict()``); ``None``: the task
        resumes on a worker whatever happens (earlier takes, a gate's redo).
    """

    def __init__(
        self,
        *,
        provider: str,
        provider_task_id: str,
        conn_id: str | None = None,
        poll_interval: float = 5.0,
        settle_until: float | None = None,
        deadline: float | None = None,
        job_id: str | None = None,
        run_id: str | None = None,
        kind: str | None = None,
        digest: str | None = None,
        record_id: str | None = None,
        handoff: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.provider = provider
        self.provider_task_id = provider_task_id
        self.conn_id = conn_id
        self.poll_interval = poll_interval
        self.settle_until = settle_until
        self.deadline = deadline
        self.job_id = job_id
        self.run_id = run_id
        self.kind = kind
        self.digest = digest
        self.record_id = record_id
        self.handoff = handoff

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "provider": self.provider,
                "provider_task_id": self.provider_task_id,
                "conn_id": self.conn_id,
                "poll_interval": self.poll_interval,
                "settle_until": self.settle_until,
                "deadline": self.deadline,
                "job_id": self.job_id,
                "run_id": self.run_id,
                "kind": self.kind,
                "digest": self.digest,
                "record_id": self.record_id,
                "handoff": self.handoff,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async with await ProviderHook(self.provider, self.conn_id).aget_client() as client:
            async for event in self._poll(client):
                if not isinstance(event, TaskSuccessEvent):
                    # Only an event that resumes the task on a worker can race the scheduler's reading of the
                    # deferral (settle.py). A task this trigger ends is success, a state that race leaves alone,
                    # so a fast provider's segment does not wait the settle time.
                    await wait_until_settled(self.settle_until)
                yield event
                return

    async def on_kill(self) -> None:
        """Airflow 3.3 calls this (never on a triggerer shutdown or restart) when a person acted on the task
        this trigger waits for: mark failed/success, clear, delete (docs/notes/airflow-stop-actions.md)."""
        await cancel_if_stopped(self)

    def details(self) -> dict[str, Any]:
        """What a stop handler needs to settle this trigger's provider task (never the key)."""
        return {
            "provider": self.provider,
            "provider_task_id": self.provider_task_id,
            "job_id": self.job_id,
            "run_id": self.run_id,
            "kind": self.kind,
            "digest": self.digest,
            "record_id": self.record_id,
        }

    def _label(self) -> str:
        return f"{self.provider} task {self.provider_task_id}"

    async def _poll(self, client: AsyncRemoteClient) -> AsyncIterator[TriggerEvent]:
        last = None
        while True:
            try:
                status = await client.status(self.provider_task_id)
            except ProviderError as exc:  # already retried inside the client; the task decides what next
                yield TriggerEvent(
                    {
                        "event": "error",
                        "provider": self.provider,
                        "provider_task_id": self.provider_task_id,
                        "error": str(exc),
                        "error_type": type(exc).__name__,
                    }
                )
                return
            if status.detail != last or status.state == TaskState.RUNNING:
                self.log.info(
                    "%s: %s%s%s",
                    self._label(),
                    status.detail or status.state,
                    f" {status.progress:.0%}" if status.progress is not None else "",
                    f" (queue position {status.queue_position})" if status.queue_position is not None else "",
                )
                last = status.detail
            if status.terminal:
                # RemoteStatus holds no output URLs: they are signed, and the triggerer logs every event it
                # fires. Whoever downloads asks for them right before (fresh, too).
                if self.handoff is not None and status.state == TaskState.SUCCEEDED:
                    yield await self._finish_here(status)
                    return
                yield TriggerEvent({"event": "done", **status.model_dump(mode="json")})
                return
            if self.deadline is not None and time.time() >= self.deadline:
                yield await self._time_out(client, status.detail or str(status.state))
                return
            delay = poll_delay(self.poll_interval)
            if self.deadline is not None:
                delay = max(min(delay, self.deadline - time.time()), 0.0)
            await asyncio.sleep(delay)

    async def _finish_here(self, status: RemoteStatus) -> TriggerEvent:
        """End the segment task from here (on a thread of :func:`handoff_pool`), or hand it back to a worker."""
        assert self.handoff is not None
        done: dict[str, Any] = {"event": "done", **status.model_dump(mode="json")}
        work = functools.partial(
            complete_in_triggerer,
            Handoff.from_dict(self.handoff),
            self.provider,
            self.conn_id,
            status.task_id,
            self.log,
        )
        try:
            completed = await asyncio.get_running_loop().run_in_executor(handoff_pool(), work)
        except Exception as exc:
            self.log.warning("%s: not finished here (%s); a worker resumes the task", self._label(), exc)
            return TriggerEvent(done)
        if completed.stored is None:
            self.log.info(
                "%s: not finished here (%s); a worker resumes the task", self._label(), completed.why
            )
            return TriggerEvent(done)
        if completed.xcom is None:
            self.log.info("%s: output stored, not finished here (%s)", self._label(), completed.why)
            return TriggerEvent({**done, "stored": completed.stored})
        try:
            await self._set_return_value(completed.xcom)
        except Exception as exc:
            self.log.warning(
                "%s: could not set the task's XCom (%s); a worker finishes it", self._label(), exc
            )
            return TriggerEvent({**done, "stored": completed.stored})
        self.log.info("%s: output stored; the task ends here", self._label())
        return TaskSuccessEvent()

    async def _set_return_value(self, value: dict[str, Any]) -> None:
        """The segment task's return value, through the XCom backend as the task itself would set it (not
        ``TaskSuccessEvent(xcoms=…)``: those reach downstream tasks JSON-encoded twice in Airflow 3.3.2)."""
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("the triggerer gave this trigger no task instance")
        await compat.xcom_backend().aset(
            RETURN_VALUE,
            value,
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=-1 if ti.map_index is None else ti.map_index,
        )

    async def _time_out(self, client: AsyncRemoteClient, last_status: str) -> TriggerEvent:
        try:
            cancelled = await client.cancel(self.provider_task_id)
            error = None
        except ProviderError as exc:
            cancelled, error = False, str(exc)
        self.log.warning(
            "%s still %s at its deadline: %s",
            self._label(),
            last_status,
            "cancelled" if cancelled else f"cancel failed ({error or 'unknown task'})",
        )
        return TriggerEvent(
            {
                "event": "timeout",
                "provider": self.provider,
                "provider_task_id": self.provider_task_id,
                "last_status": last_status,
                "cancelled": cancelled,
                "error": error,
            }
        )


# ------------------------------------------------------------------------------------------ stop seam

#: The Airflow side of stopping (``video_pipeline_airflow.stop``): its ``report_if_stopped(trigger, details=…)``
#: asks Airflow what happened to the task (a person's stop, or only the trigger moving), and for a stop calls
#: every registered stop handler — ours (``stop_handlers.handle_stop``) cancels the provider task and records it.
STOP_MODULE = "video_pipeline_airflow.stop"


def stop_module() -> Any | None:
    """The stop module, or ``None`` while it is not installed."""
    try:
        return importlib.import_module(STOP_MODULE)
    except ImportError:
        return None


async def cancel_if_stopped(trigger: ProviderTaskTrigger) -> Any | None:
    """From the trigger's ``on_kill``: if a person stopped the task (not a clear: its next try resumes the
    provider task), the stop handlers cancel the provider task and record it in the job's ledger. Returns the
    stop's reason (``None``: not a stop, or no stop module). Never raises: it runs on the way out."""
    stop = stop_module()
    if stop is None:
        log.warning(
            "Trigger for %s task %s killed by a person's action, but %s is not installed: the task is "
            "left for the run's end or the salvage sweep",
            trigger.provider,
            trigger.provider_task_id,
            STOP_MODULE,
        )
        return None
    try:
        stop_handlers.register()  # the plugin registers it in every process; make sure in this one
        return await stop.report_if_stopped(trigger, details=trigger.details())
    except Exception:
        log.exception("Could not report the stop of %s task %s", trigger.provider, trigger.provider_task_id)
        return None
