"""The local PostgreSQL and Redis a CeleryExecutor Airflow needs (the cluster test and the benches use them).

CI machines run both on their default ports; a laptop usually has neither, and callers skip saying so.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

PG = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def missing_services() -> str | None:
    """Why a Celery cluster cannot run here, or None if it can."""
    if reachable(PG) and reachable(REDIS):
        return None
    return f"needs PostgreSQL on {PG[0]}:{PG[1]} and Redis on {REDIS[0]}:{REDIS[1]} (CI has both)"


@contextmanager
def fresh_metadata_db(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database (user ``postgres``) for one Airflow's metadata, dropped afterwards; yields
    its SQLAlchemy URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = f"host={PG[0]} port={PG[1]} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@{PG[0]}:{PG[1]}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def celery_env(metadata_url: str, redis_db: int) -> dict[str, str]:
    """Airflow settings for a Celery broker on Redis database ``redis_db`` (flushed now: Redis keeps nothing
    on disk here, and a previous run's messages must not leak in) and results in the metadata database.
    Tasks go to a queue of this cluster's own: workers left running by an interrupted earlier run listen on
    theirs, so they cannot take (and strand) this run's tasks, as happened once."""
    import redis

    redis.Redis(host=REDIS[0], port=REDIS[1], db=redis_db).flushdb()
    return {
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"vp-{uuid.uuid4().hex[:10]}",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{metadata_url.replace('+psycopg2', '')}",
        "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
    }
