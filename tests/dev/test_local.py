"""The embedded Airflow's environment: SQLite waits for its lock instead of failing a request after 5 s."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from video_pipeline_airflow.sqlite import BUSY_TIMEOUT_S
from video_pipeline_dev.local import LocalAirflow

BUSY_TIMEOUT_PROBE = """
from airflow import settings
with settings.engine.connect() as connection:
    print(connection.exec_driver_sql("PRAGMA busy_timeout").scalar())
"""


def test_airflow_processes_on_sqlite_wait_for_the_lock(tmp_path: Path) -> None:
    airflow = LocalAirflow(home=tmp_path / "airflow", storage_url=None)
    env = airflow.env()
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{tmp_path / 'airflow.db'}"
    result = subprocess.run(
        [sys.executable, "-c", BUSY_TIMEOUT_PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert int(result.stdout.strip().splitlines()[-1]) == BUSY_TIMEOUT_S * 1000  # the driver's default: 5000


def test_other_databases_keep_their_driver_defaults(tmp_path: Path) -> None:
    airflow = LocalAirflow(
        home=tmp_path / "airflow", storage_url=None, sql_alchemy_conn="postgresql+psycopg2://u:p@localhost/x"
    )
    env = airflow.env()
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS" not in env
