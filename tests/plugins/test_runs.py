"""Whether a run is still active, as the Task SDK's task instance answers it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DagRunState

from video_pipeline_airflow.runs import run_checker


class RunNotFound(Exception):
    pass


def task_instance(runs: dict[str, Any]) -> SimpleNamespace:
    """Stands in for the RuntimeTaskInstance's two calls (they go to the Airflow API server)."""

    def get_dagrun_state(dag_id: str, run_id: str) -> Any:
        if run_id not in runs:
            raise RunNotFound(f"404 {run_id}")
        return runs[run_id]

    def get_dr_count(dag_id: str, run_ids: list[str]) -> int:
        return sum(1 for r in run_ids if r in runs)

    return SimpleNamespace(get_dagrun_state=get_dagrun_state, get_dr_count=get_dr_count)


@pytest.mark.parametrize(
    ("state", "active"),
    [
        (DagRunState.QUEUED, True),
        (DagRunState.RUNNING, True),
        (DagRunState.SUCCESS, False),
        (DagRunState.FAILED, False),
        ("running", True),
        ("failed", False),
    ],
)
def test_queued_and_running_runs_are_active(state: Any, active: bool) -> None:
    is_active = run_checker({"ti": task_instance({"r": state})})
    assert is_active("video_generation", "r") is active


def test_a_deleted_run_is_not_active() -> None:
    assert run_checker({"ti": task_instance({})})("video_generation", "gone") is False


def test_an_outage_is_not_mistaken_for_a_deleted_run() -> None:
    ti = task_instance({"r": DagRunState.RUNNING})
    ti.get_dagrun_state = lambda dag_id, run_id: (_ for _ in ()).throw(ConnectionError("API down"))
    with pytest.raises(ConnectionError):
        run_checker({"ti": ti})("video_generation", "r")


def test_without_a_task_instance_every_run_counts_as_active() -> None:
    assert run_checker({})("video_generation", "r") is True
    assert run_checker({"ti": task_instance({})})(None, "r") is True
