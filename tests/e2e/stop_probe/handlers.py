"""The probe's stop handler: imported by every Airflow process of the probe through
``VIDEO_PIPELINE_STOP_HANDLER_MODULES``; writes each :class:`~video_pipeline_airflow.stop.Stop` it receives."""

from __future__ import annotations

from tests.e2e.stop_probe.record import record
from video_pipeline_airflow.stop import Stop, register_stop_handler

PROBE_DAG_IDS = ("stop_probe", "stop_probe_timeout")
PROBE_TASK_IDS = ("wait", "busy", "later")


def record_stop(stop: Stop) -> None:
    record(
        "stop",
        dag_id=stop.dag_id,
        run_id=stop.run_id,
        task_id=stop.task_id,
        map_index=stop.map_index,
        reason=stop.reason.value,
        conf=dict(stop.conf) if stop.conf is not None else None,
        details=dict(stop.details) if stop.details is not None else None,
    )


for _dag_id in PROBE_DAG_IDS:
    register_stop_handler(record_stop, dag_id=_dag_id, task_ids=PROBE_TASK_IDS)
