"""The embedded Airflow's SQLite connections wait for the write lock instead of failing after 5 s."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from video_pipeline_airflow.sqlite import BUSY_TIMEOUT_S, CONNECT_ARGS


def test_a_connection_made_with_its_timeout_waits_for_the_lock(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "airflow.db", timeout=CONNECT_ARGS["timeout"])) as connection:
        assert connection.execute("PRAGMA busy_timeout").fetchone() == (BUSY_TIMEOUT_S * 1000,)
    assert BUSY_TIMEOUT_S > 5  # the driver's default
