"""What a person's stop means for paid work: the handler registered with :mod:`video_pipeline_airflow.stop`.

The stop module turns every way a person stops a run or a segment task (mark failed/success, delete, a run
timeout; reported by the api-server's and the scheduler's listener, and by a provider trigger's ``on_kill``) into
one call per stop. This handler answers it:

- a stopped **run** ends like a rejected or failed one (:func:`stages.end_run`): nothing more is submitted for
  it, its running provider tasks are cancelled (each recorded in the ledger), its end goes into the manifest and
  the job is released; outputs that had already finished are left for the salvage sweep;
- a stopped **segment task** has its own provider task cancelled (:func:`stages.on_task_stopped`), except when
  Airflow runs it again (a clear: the next try resumes the recorded provider task, never pays twice) or when
  Airflow could not say what happened (the sweep settles it once the run has ended).

Registered at import when the stop module is installed (it is not on every branch of this project); the plugin
imports this module in every Airflow process. Idempotent: one stop may be reported by several processes.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from video_pipeline.models import RunStatus

log = logging.getLogger(__name__)

STOP_MODULE = "video_pipeline_airflow.stop"
#: Reasons for which a task's provider task is left alone: Airflow runs the task again (it resumes the provider
#: task), or nobody knows what happened (settled by the sweep once the run has ended).
_LEAVE = frozenset({"task_cleared", "task_stopped_state_unknown"})
#: Run stops that are failures of the run itself (recorded as ``failed``; a person's stop is ``stopped``).
_RUN_FAILURES = frozenset({"run_failed", "run_timed_out"})


def job_of(stop: Any) -> str | None:
    """The job a stop concerns: the run's conf (its job spec) or, from a trigger, the record it polled."""
    for source in (stop.conf, stop.details):
        if source and source.get("job_id"):
            return str(source["job_id"])
    return None


def handle_stop(stop: Any) -> None:
    """Handler for :func:`video_pipeline_airflow.stop.register_stop_handler` (receives a ``stop.Stop``)."""
    from video_pipeline_airflow import stages  # imported on use: this module loads in every process

    reason = str(getattr(stop.reason, "value", stop.reason))
    job_id = job_of(stop)
    if job_id is None:
        log.warning("Stop without a job id, nothing to cancel: %s", stop.describe())
        return
    if stop.is_run_stop:
        status: RunStatus = "failed" if reason in _RUN_FAILURES else "stopped"
        stages.end_run(job_id, stop.run_id, status, f"stopped: {reason}")
        return
    if reason in _LEAVE:
        log.info("%s: the provider task is left as it is (%s)", stop.describe(), reason)
        return
    stages.on_task_stopped(
        stop.dag_id, stop.run_id, stop.task_id, stop.map_index, job_id, reason, dict(stop.details or {})
    )


def register() -> bool:
    """Register :func:`handle_stop` for the pipeline's DAG and its paid tasks; False when the stop module is
    not installed. Registering twice has no effect."""
    try:
        stop = importlib.import_module(STOP_MODULE)
    except ImportError:
        return False
    stop.register_stop_handler(handle_stop)
    return True


register()
