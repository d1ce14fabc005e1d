"""Stop reporting: what each Airflow signal means, who is told, how often, and that nothing in it can hurt
Airflow (a raising or slow handler, a broken hook argument). The real processes: tests/e2e/test_stop_actions.py.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import TaskInstanceState

from tests.plugins.conditions import until
from tests.plugins.stop_recorder import Recorder
from video_pipeline_airflow import compat, stop
from video_pipeline_airflow.stop import (
    Stop,
    StopReason,
    is_user_action,
    register_stop_handler,
    report_if_stopped,
    run_end_reason,
    run_stopped,
    stopped_by_user,
    task_end_reason,
    task_stop_reason,
    task_stopped,
    unregister_stop_handler,
    watches,
)

DAG = "probe_dag"

# -- what a signal means ----------------------------------------------------------------------------------

# The messages Airflow 3.3.2 passes (api_fastapi/core_api/services/public/dag_run.py, models/dagrun.py,
# jobs/scheduler_job_runner.py).
MANUAL_FAILED = "Dag Run's state was manually set to `failed`."
MANUAL_SUCCESS = "Dag Run's state was manually set to `success`."


@pytest.mark.parametrize(
    ("state", "msg", "reason"),
    [
        ("failed", MANUAL_FAILED, StopReason.RUN_MARKED_FAILED),
        ("failed", "timed_out", StopReason.RUN_TIMED_OUT),
        ("failed", "task_failure", StopReason.RUN_FAILED),
        ("failed", "all_tasks_deadlocked", StopReason.RUN_FAILED),
        ("failed", "a message a later Airflow may use", StopReason.RUN_MARKED_FAILED),
        ("failed", None, StopReason.RUN_MARKED_FAILED),
        ("success", MANUAL_SUCCESS, StopReason.RUN_MARKED_SUCCESS),
        ("success", "success", None),
        ("running", "started", None),
    ],
)
def test_run_end_reason(state: str, msg: str | None, reason: StopReason | None) -> None:
    assert run_end_reason(state, msg) == reason


def test_task_end_reason_only_for_states_set_by_a_person() -> None:
    assert task_end_reason("failed", None) is StopReason.TASK_MARKED_FAILED
    assert task_end_reason("success", None) is StopReason.TASK_MARKED_SUCCESS
    assert task_end_reason("skipped", None) is None
    for previous in TaskInstanceState:  # a worker or the scheduler: the task ended by itself
        assert task_end_reason("failed", previous.value) is None
        assert task_end_reason("success", previous.value) is None


def test_every_task_state_airflow_has_is_classified_on_purpose() -> None:
    """A state added by an upgrade must be looked at, not silently read as a clear or a stop."""
    reasons = {
        state: task_stop_reason(run_exists=True, ti_exists=True, ti_state=state.value)
        for state in TaskInstanceState
    }
    assert reasons.pop(TaskInstanceState.DEFERRED) is None
    assert StopReason.TASK_ENDED not in reasons.values(), reasons
    assert reasons[TaskInstanceState.FAILED] is StopReason.TASK_MARKED_FAILED
    assert reasons[TaskInstanceState.SUCCESS] is StopReason.TASK_MARKED_SUCCESS
    assert reasons[TaskInstanceState.SKIPPED] is StopReason.TASK_SKIPPED
    for state in (TaskInstanceState.SCHEDULED, TaskInstanceState.QUEUED, TaskInstanceState.RESTARTING):
        assert reasons[state] is StopReason.TASK_CLEARED
    assert StopReason.TASK_CLEARED.reruns
    assert task_stop_reason(run_exists=True, ti_exists=True, ti_state=None) is StopReason.TASK_CLEARED
    assert task_stop_reason(run_exists=True, ti_exists=True, ti_state="a new state") is StopReason.TASK_ENDED
    assert task_stop_reason(run_exists=True, ti_exists=False, ti_state=None) is StopReason.TASK_DELETED
    assert task_stop_reason(run_exists=False, ti_exists=False, ti_state=None) is StopReason.RUN_DELETED


# -- who is told, how often -------------------------------------------------------------------------------


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    register_stop_handler(handler, dag_id=DAG, task_ids={"pay"})
    yield handler
    unregister_stop_handler(handler)


@pytest.fixture(autouse=True)
def fresh_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stop._registry, "recent", {})


def test_handlers_get_the_stops_of_their_dag_and_tasks(recorder: Recorder) -> None:
    run_stopped(DAG, "r1", {"job_id": "j1"}, StopReason.RUN_MARKED_FAILED)
    task_stopped(DAG, "r1", "pay", 3, StopReason.TASK_CLEARED)
    task_stopped(DAG, "r1", "gate", -1, StopReason.TASK_MARKED_FAILED)  # not its task
    run_stopped("other_dag", "r1", {}, StopReason.RUN_MARKED_FAILED)  # not its DAG
    assert recorder.stops == [
        Stop(DAG, "r1", StopReason.RUN_MARKED_FAILED, conf={"job_id": "j1"}),
        Stop(DAG, "r1", StopReason.TASK_CLEARED, task_id="pay", map_index=3),
    ]
    assert recorder.stops[0].is_run_stop and not recorder.stops[1].is_run_stop
    assert watches(DAG) and watches(DAG, "pay") and not watches(DAG, "gate") and not watches("other_dag")


def test_the_video_dag_is_watched_by_default() -> None:
    assert watches(stop.VIDEO_DAG_ID)
    assert all(watches(stop.VIDEO_DAG_ID, task_id) for task_id in stop.SEGMENT_TASK_IDS)
    assert not watches(stop.VIDEO_DAG_ID, "images_gate")


def test_registering_twice_calls_once(recorder: Recorder) -> None:
    register_stop_handler(recorder, dag_id=DAG, task_ids={"pay"})
    run_stopped(DAG, "r1", None, StopReason.RUN_MARKED_SUCCESS)
    assert len(recorder.stops) == 1


def test_a_stop_reported_again_reaches_the_handlers_once(recorder: Recorder) -> None:
    """Random interleavings of repeated reports (several hooks fire for one stop)."""
    rng = random.Random(21)
    # (run_id, reason, map_index); map_index None: a run stop.
    distinct: list[tuple[str, StopReason, int | None]] = [
        ("r1", StopReason.RUN_MARKED_FAILED, None),
        ("r2", StopReason.RUN_TIMED_OUT, None),
        ("r1", StopReason.TASK_MARKED_FAILED, 0),
        ("r1", StopReason.TASK_MARKED_FAILED, 1),
        ("r1", StopReason.TASK_CLEARED, 0),
        ("r2", StopReason.TASK_SKIPPED, -1),
    ]
    for _ in range(20):
        stop._registry.recent.clear()
        recorder.stops.clear()
        reports = [rng.choice(distinct) for _ in range(rng.randint(1, 30))]
        for run_id, reason, map_index in reports:
            if map_index is None:
                run_stopped(DAG, run_id, {}, reason)
            else:
                task_stopped(DAG, run_id, "pay", map_index, reason)
        assert len(recorder.stops) == len(set(reports))
        assert len({s.describe() for s in recorder.stops}) == len(recorder.stops)


def test_the_same_stop_later_is_a_new_stop(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(stop.time, "monotonic", lambda: now[0])
    task_stopped(DAG, "r1", "pay", 0, StopReason.TASK_MARKED_FAILED)
    now[0] += stop.REPEAT_WINDOW_S - 1
    task_stopped(DAG, "r1", "pay", 0, StopReason.TASK_MARKED_FAILED)
    now[0] += 2
    task_stopped(DAG, "r1", "pay", 0, StopReason.TASK_MARKED_FAILED)
    assert len(recorder.stops) == 2


def test_a_failing_handler_does_not_keep_the_others_from_running(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(stop: Stop) -> None:
        raise RuntimeError("provider unreachable")

    register_stop_handler(broken, dag_id=DAG, task_ids=None)
    try:
        run_stopped(DAG, "r1", {}, StopReason.RUN_MARKED_FAILED)  # must not raise
    finally:
        unregister_stop_handler(broken)
    assert len(recorder.stops) == 1
    assert "provider unreachable" in caplog.text and "broken" in caplog.text


def test_handler_modules_from_the_environment_are_imported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "stop_handlers_probe.py").write_text(
        "from video_pipeline_airflow.stop import register_stop_handler\n"
        "CALLS = []\n"
        "IMPORTS = globals().setdefault('IMPORTS', 0) + 1\n"
        "register_stop_handler(CALLS.append, dag_id='env_dag', task_ids=None)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(stop.HANDLER_MODULES_ENV, "stop_handlers_probe, no_such_module_for_stops")
    monkeypatch.setattr(stop._registry, "modules_loaded", False)
    monkeypatch.setattr(stop._registry, "registrations", list(stop._registry.registrations))
    try:
        assert watches("env_dag")
        run_stopped("env_dag", "r1", {}, StopReason.RUN_MARKED_FAILED)
        module = sys.modules["stop_handlers_probe"]
        assert [s.run_id for s in module.CALLS] == ["r1"]
        assert "no_such_module_for_stops" in caplog.text  # named, not raised
    finally:
        sys.modules.pop("stop_handlers_probe", None)


# -- triggers ---------------------------------------------------------------------------------------------


class FakeSupervisor:
    """Stands in for Airflow's Task SDK channel (RuntimeTaskInstance's static queries) in the triggerer."""

    def __init__(self, runs: dict[str, dict[str, str | None]], delay: float = 0.0) -> None:
        self.runs = runs
        self.delay = delay
        self.calls = 0

    def get_dr_count(self, dag_id: str, run_ids: list[str]) -> int:
        self.calls += 1
        time.sleep(self.delay)
        return sum(run in self.runs for run in run_ids)

    def get_task_states(
        self, dag_id: str, task_ids: list[str], run_ids: list[str], map_index: int
    ) -> dict[str, dict[str, Any]]:
        self.calls += 1
        return {run: self.runs[run] for run in run_ids if run in self.runs}


def trigger(map_index: int = -1, timeout_after: datetime | None = None) -> Any:
    ti = SimpleNamespace(dag_id=DAG, run_id="r1", task_id="pay", map_index=map_index, try_number=1)
    return SimpleNamespace(task_instance=ti, timeout_after=timeout_after)


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> FakeSupervisor:
    fake = FakeSupervisor({"r1": {"pay": "deferred"}})
    monkeypatch.setattr(compat, "runtime_task_instance", lambda: fake)
    return fake


USER_ACTION = asyncio.CancelledError(compat.user_action_cancel_message())


async def test_a_shutdown_is_not_a_stop_and_asks_nothing(supervisor: FakeSupervisor) -> None:
    supervisor.runs["r1"]["pay"] = "failed"
    assert await stopped_by_user(trigger(), asyncio.CancelledError()) is None
    assert await stopped_by_user(trigger(), asyncio.CancelledError("EOF - shutting down")) is None
    assert supervisor.calls == 0


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        ({"r1": {"pay": "deferred"}}, None),  # moved to another triggerer: keeps waiting
        ({"r1": {"pay": "failed"}}, StopReason.TASK_MARKED_FAILED),
        ({"r1": {"pay": "success"}}, StopReason.TASK_MARKED_SUCCESS),
        ({"r1": {"pay": None}}, StopReason.TASK_CLEARED),
        ({"r1": {"pay": "skipped"}}, StopReason.TASK_SKIPPED),
        ({"r1": {}}, StopReason.TASK_DELETED),
        ({}, StopReason.RUN_DELETED),
    ],
)
async def test_a_user_action_is_classified_from_the_task_state(
    supervisor: FakeSupervisor, runs: dict[str, dict[str, str | None]], expected: StopReason | None
) -> None:
    supervisor.runs = runs
    assert await stopped_by_user(trigger(), USER_ACTION) == expected
    assert await stopped_by_user(trigger()) == expected  # from on_kill: no exception to look at


async def test_mapped_task_states_are_keyed_by_map_index(supervisor: FakeSupervisor) -> None:
    supervisor.runs = {"r1": {"pay_0": "deferred", "pay_3": "failed", "pay": "deferred"}}
    assert await stopped_by_user(trigger(map_index=3)) is StopReason.TASK_MARKED_FAILED
    assert await stopped_by_user(trigger(map_index=0)) is None


async def test_a_timed_out_trigger_is_not_a_user_stop(supervisor: FakeSupervisor) -> None:
    supervisor.runs["r1"]["pay"] = "scheduled"
    past = datetime.now(UTC) - timedelta(seconds=1)
    assert await stopped_by_user(trigger(timeout_after=past), USER_ACTION) is None
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await stopped_by_user(trigger(timeout_after=future), USER_ACTION) is StopReason.TASK_CLEARED


async def test_when_airflow_cannot_answer_a_user_action_is_still_a_stop(
    supervisor: FakeSupervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    supervisor.delay = 0.8
    started = time.monotonic()
    unknown = StopReason.TASK_STOPPED_STATE_UNKNOWN
    assert await stopped_by_user(trigger(), USER_ACTION, timeout=0.2) is unknown
    assert time.monotonic() - started < 0.6
    assert not unknown.reruns

    def unreachable() -> Any:
        raise ConnectionError("supervisor gone")

    monkeypatch.setattr(compat, "runtime_task_instance", unreachable)
    assert await stopped_by_user(trigger()) is unknown  # on_kill: Airflow says a person acted
    assert await stopped_by_user(SimpleNamespace(task_instance=None), USER_ACTION) is None


async def test_without_airflows_cancel_message_only_the_task_state_decides(
    supervisor: FakeSupervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def moved() -> str:
        raise ImportError("_USER_ACTION_CANCEL_MSG")

    monkeypatch.setattr(compat, "user_action_cancel_message", moved)
    assert is_user_action(asyncio.CancelledError()) is None
    assert await stopped_by_user(trigger(), asyncio.CancelledError()) is None  # still deferred: a restart
    supervisor.runs["r1"]["pay"] = "failed"
    assert await stopped_by_user(trigger(), asyncio.CancelledError()) is StopReason.TASK_MARKED_FAILED
    monkeypatch.setattr(compat, "runtime_task_instance", moved)
    assert await stopped_by_user(trigger(), asyncio.CancelledError()) is None  # nothing says it was a stop


def test_is_user_action_reads_the_triggerers_message() -> None:
    assert is_user_action(USER_ACTION) is True
    assert is_user_action(asyncio.CancelledError()) is False
    assert is_user_action(asyncio.CancelledError("EOF - shutting down")) is False


async def test_report_if_stopped_survives_the_triggerers_repeated_cancels(
    supervisor: FakeSupervisor,
) -> None:
    """The triggerer cancels a trigger's task again about every second until it ends: on_kill is cut short,
    the report is not."""
    supervisor.runs["r1"]["pay"] = "failed"
    supervisor.delay = 0.3
    received: list[Stop] = []
    register_stop_handler(received.append, dag_id=DAG, task_ids={"pay"})
    try:
        on_kill = asyncio.ensure_future(report_if_stopped(trigger(), details={"provider_task_id": "t-1"}))
        await until(lambda: supervisor.calls > 0, what="the first question to the api-server")
        on_kill.cancel("__airflow_user_action__")
        with pytest.raises(asyncio.CancelledError):
            await on_kill
        await until(lambda: bool(received), what="the stop report")
    finally:
        unregister_stop_handler(received.append)
    assert [(s.task_id, s.reason) for s in received] == [("pay", StopReason.TASK_MARKED_FAILED)]
    assert received[0].details == {"provider_task_id": "t-1"}


async def test_report_if_stopped_reports_nothing_for_a_restart(supervisor: FakeSupervisor) -> None:
    received: list[Stop] = []
    register_stop_handler(received.append, dag_id=DAG, task_ids={"pay"})
    try:
        assert await report_if_stopped(trigger(), asyncio.CancelledError()) is None
        assert await report_if_stopped(trigger()) is None  # still deferred: it moved
        supervisor.runs["r1"]["pay"] = None
        assert await report_if_stopped(trigger()) is StopReason.TASK_CLEARED
    finally:
        unregister_stop_handler(received.append)
    assert [s.reason for s in received] == [StopReason.TASK_CLEARED]
    assert supervisor.calls == 4  # two questions per on_kill, none for the shutdown
