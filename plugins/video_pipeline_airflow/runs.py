"""Asking Airflow whether a run is still active, from inside a task (through the Task SDK's task instance)."""

from __future__ import annotations

import logging
from typing import Any

from video_pipeline.claims import RunIsActive

log = logging.getLogger(__name__)

ACTIVE_RUN_STATES = frozenset({"queued", "running"})


def run_checker(context: Any) -> RunIsActive:
    """``(dag_id, run_id) -> bool`` for this task's context: queued or running → active; ended or deleted →
    not. Without a task instance (or a dag id) nothing can be known, and the safe answer is "active": a claim
    is then never taken over and a record never settled behind a run's back."""
    ti = context.get("ti") if context else None

    def is_active(dag_id: str | None, run_id: str) -> bool:
        if ti is None or not dag_id:
            return True
        try:
            state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        except Exception:
            # The execution API answers 404 for a deleted run; tell that from an outage by counting runs.
            if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]) == 0:
                log.info("Run %s of %s no longer exists", run_id, dag_id)
                return False
            raise
        # A ``DagRunState`` (a str-mixin Enum: ``str()`` gives "DagRunState.RUNNING"), or a plain string.
        return str(getattr(state, "value", state)) in ACTIVE_RUN_STATES

    return is_active
