"""What a stop does to ``video_generation``: the stopped work's provider tasks are cancelled and recorded.

``video_pipeline_airflow.stop`` hears every way a person ends work (listeners in the api-server and the
scheduler, the trigger's ``on_kill`` in the triggerer; docs/notes/airflow-stop-actions.md) and calls the
handler registered here, in whichever of those processes heard it:

- a run stop (marked failed or success, timed out, failed): the run submits nothing more, its in-flight provider
  tasks are cancelled (``DELETE``; each recorded in the spend ledger), the manifest records the run's end and the
  job is released for the next run (:func:`stages.end_run`). Outputs that had already finished at the provider
  stay recorded; the next run of the job and the salvage sweep store them in the cache, so nobody pays twice.
- a segment task stop (marked failed or success, deleted): that task's provider task is cancelled; the run goes
  on (:func:`stages.on_task_stopped`).
- a clear is *not* a stop of the spend: the task runs again and its next try resumes the recorded provider task
  (no second POST), so nothing is cancelled.

Several processes may report one stop; each step is idempotent (a cancelled record is cleared, a released
claim is gone), so a repeat does nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from video_pipeline_airflow.stop import Stop, register_stop_handler

log = logging.getLogger(__name__)


def cancel_stopped_work(stop: Stop) -> None:
    """Stop handler for ``video_generation`` runs and their segment tasks (see the module docstring).

    :param stop: what stopped, as reported by ``video_pipeline_airflow.stop``.
    """
    if stop.reason.reruns:
        log.info("%s: the task runs again and resumes its provider task; nothing cancelled", stop.describe())
        return
    # Imported here: the listener that calls this runs in the api-server and the scheduler, which should not
    # pay for the pipeline's imports until a stop actually happens.
    from video_pipeline_airflow import stages

    if stop.is_run_stop:
        stages.on_run_stopped(stop.dag_id, stop.run_id, dict(stop.conf or {}), stop.reason.value)
        return
    assert stop.task_id is not None and stop.map_index is not None
    conf: dict[str, Any] = dict(stop.conf or {})
    details = stop.details or {}
    if not conf.get("job_id") and details.get("job_id"):
        conf["job_id"] = details["job_id"]  # reported by the trigger, which knows the job but not the conf
    settled = stages.on_task_stopped(
        stop.dag_id, stop.run_id, stop.task_id, stop.map_index, conf, stop.reason.value
    )
    for result in settled:
        log.warning("%s: %s", stop.describe(), result.describe())


register_stop_handler(cancel_stopped_work)
