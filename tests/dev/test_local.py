"""The embedded Airflow: its environment (SQLite waits for its lock instead of failing a request after 5 s) and
how it stops."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
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


def test_stop_ends_every_process_group_within_the_grace(tmp_path: Path) -> None:
    """One that ignores SIGTERM is killed after the grace; one that obeys goes at once; a child left in a group
    (as a LocalExecutor worker is in the scheduler's) goes with it."""
    airflow = LocalAirflow(home=tmp_path / "airflow", storage_url=None)
    child_pid = tmp_path / "child.pid"
    stubborn = subprocess.Popen(
        ["sh", "-c", f"trap '' TERM; sleep 60 & echo $! > {child_pid}; wait"], start_new_session=True
    )
    obedient = subprocess.Popen(["sleep", "60"], start_new_session=True)
    airflow._procs.update(stubborn=stubborn, obedient=obedient)
    while not child_pid.exists() or not child_pid.read_text().strip():  # the trap is set, the child started
        time.sleep(0.01)
    started = time.monotonic()
    airflow.stop(grace=1)
    took = time.monotonic() - started
    assert stubborn.returncode == -signal.SIGKILL
    assert obedient.returncode == -signal.SIGTERM
    assert 1 <= took < 5
    assert airflow.process_ids(("stubborn", "obedient")) == []
    assert not_running(int(child_pid.read_text()))


def not_running(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True
