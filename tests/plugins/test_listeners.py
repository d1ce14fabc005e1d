"""The Airflow listener: it hands each stop by a person to the stop handlers off Airflow's own thread, ignores
what ended by itself, never raises, and lets the DAGs load (the real processes: tests/e2e/test_stop_actions.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import TaskInstanceState

from tests.plugins.stop_recorder import Recorder
from video_pipeline_airflow import listeners, stop
from video_pipeline_airflow.stop import Stop, StopReason, register_stop_handler, unregister_stop_handler

DAG = "probe_dag"
# The message Airflow 3.3.2 passes when a person marks a run failed (api_fastapi/core_api/services/public/dag_run.py).
MANUAL_FAILED = "Dag Run's state was manually set to `failed`."


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    handler = Recorder()
    register_stop_handler(handler, dag_id=DAG, task_ids={"pay"})
    yield handler
    unregister_stop_handler(handler)


@pytest.fixture(autouse=True)
def fresh_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stop._registry, "recent", {})


@pytest.fixture
def own_pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[ThreadPoolExecutor]:
    """The listener's pool, fresh for this test: shutting it down waits for everything handed to it."""
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="video-pipeline-stop")
    monkeypatch.setattr(listeners, "_executor", pool)
    yield pool
    pool.shutdown(wait=True)


def test_listener_hooks_hand_the_work_off(recorder: Recorder, own_pool: ThreadPoolExecutor) -> None:
    release = threading.Event()
    slow_calls: list[Stop] = []

    def slow(stop: Stop) -> None:
        release.wait(5)
        slow_calls.append(stop)

    register_stop_handler(slow, dag_id=DAG, task_ids={"pay"})
    try:
        run = SimpleNamespace(dag_id=DAG, run_id="r9", conf={"job_id": "j9"})
        started = time.perf_counter()
        listeners.on_dag_run_failed(dag_run=run, msg=MANUAL_FAILED)
        ti = SimpleNamespace(
            dag_id=DAG,
            run_id="r9",
            task_id="pay",
            map_index=2,
            dag_run=SimpleNamespace(conf={"job_id": "j9"}),
        )
        listeners.on_task_instance_success(previous_state=None, task_instance=ti)
        elapsed = time.perf_counter() - started
        assert elapsed < 0.2, f"a hook held Airflow for {elapsed:.2f} s"
        release.set()
        own_pool.shutdown(wait=True)  # every stop handed off has reached the handlers
    finally:
        release.set()
        unregister_stop_handler(slow)
    assert {(s.task_id, s.reason) for s in recorder.stops} == {
        (None, StopReason.RUN_MARKED_FAILED),
        ("pay", StopReason.TASK_MARKED_SUCCESS),
    }
    assert len(slow_calls) == 2
    assert all(s.conf == {"job_id": "j9"} for s in recorder.stops)
    assert all(name.startswith("video-pipeline-stop") for name in recorder.threads)


def test_listener_ignores_tasks_that_ended_by_themselves_and_other_dags(
    recorder: Recorder, own_pool: ThreadPoolExecutor
) -> None:
    ti = SimpleNamespace(dag_id=DAG, run_id="r1", task_id="pay", map_index=0)
    listeners.on_task_instance_success(previous_state=TaskInstanceState.RUNNING, task_instance=ti)
    listeners.on_task_instance_failed(
        previous_state=TaskInstanceState.RUNNING, task_instance=ti, error="boom"
    )
    listeners.on_dag_run_success(dag_run=SimpleNamespace(dag_id=DAG, run_id="r1", conf={}), msg="success")
    other = SimpleNamespace(dag_id="other_dag", run_id="r1", task_id="pay", map_index=0, conf={})
    listeners.on_task_instance_failed(previous_state=None, task_instance=other, error="x")
    listeners.on_dag_run_failed(dag_run=other, msg=MANUAL_FAILED)
    own_pool.shutdown(wait=True)  # anything handed off has run
    assert recorder.stops == []


def test_listener_hooks_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @property
        def dag_id(self) -> str:
            raise RuntimeError("detached instance")

    listeners.on_dag_run_failed(dag_run=Broken(), msg=MANUAL_FAILED)
    listeners.on_task_instance_failed(previous_state=None, task_instance=Broken(), error=None)
    logged = [r for r in caplog.records if r.exc_info and "detached instance" in str(r.exc_info[1])]
    assert len(logged) == 2


# -- the DAGs still load with the listener, and the watched tasks are the paid ones ------------------------


@pytest.fixture(scope="module")
def dagbag_with_listener() -> Iterator[Any]:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.listeners.listener import get_listener_manager

    manager = get_listener_manager()
    was_registered = manager.pm.is_registered(listeners)
    manager.add_listener(listeners)
    try:
        yield DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags"), bundle_name="tests")
    finally:
        if not was_registered:
            manager.pm.unregister(listeners)


def test_dags_load_with_the_listener_registered(dagbag_with_listener: Any) -> None:
    """The dag-processor refuses a DAG with an ``end_from_trigger`` task once any plugin listener exists."""
    assert dagbag_with_listener.import_errors == {}
    assert stop.VIDEO_DAG_ID in dagbag_with_listener.dags
    for dag in dagbag_with_listener.dags.values():
        assert not [t.task_id for t in dag.tasks if getattr(t, "end_from_trigger", False)], dag.dag_id


def test_the_watched_tasks_are_the_dags_paid_segment_tasks(dagbag_with_listener: Any) -> None:
    from video_pipeline_airflow.operators.segment import SegmentOperator

    dag = dagbag_with_listener.dags[stop.VIDEO_DAG_ID]
    paid = {
        t.task_id for t in dag.tasks if issubclass(getattr(t, "operator_class", type(t)), SegmentOperator)
    }
    assert paid == stop.SEGMENT_TASK_IDS
