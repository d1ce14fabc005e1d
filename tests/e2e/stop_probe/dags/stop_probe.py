"""
### Stop probe (tests only)

`wait` defers to a trigger that waits `conf["wait_s"]` seconds (absent: forever); `busy` runs on a worker for
`conf["busy_s"]` seconds (absent: forever); `later` waits for `wait`, so it has not started while `wait` waits.
`stop_probe_timeout` is the same with a `dagrun_timeout` of `STOP_PROBE_TIMEOUT_S` seconds.
Used by tests/e2e/test_stop_actions.py to see what Airflow does when a person stops work.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from tests.e2e.stop_probe.probe import ProbeBusyOperator, ProbeWaitOperator


def probe_dag(dag_id: str, timeout: timedelta | None) -> DAG:
    with DAG(
        dag_id=dag_id,
        schedule=None,
        catchup=False,
        doc_md=__doc__,
        tags=["test"],
        dagrun_timeout=timeout,
        default_args={"retries": 0},
    ) as dag:
        wait = ProbeWaitOperator(task_id="wait")
        ProbeBusyOperator(task_id="busy")
        wait >> EmptyOperator(task_id="later")
    return dag


probe_dag("stop_probe", None)
probe_dag("stop_probe_timeout", timedelta(seconds=float(os.environ.get("STOP_PROBE_TIMEOUT_S", "600"))))
