"""SQLite connection arguments for the embedded Airflow (demo, tests, benches): Airflow imports them by path
(``[database] sql_alchemy_connect_args``) in every process.

SQLite lets one writer in at a time and makes the others wait up to the driver's busy timeout, 5 s by
default; on a busy 2-core machine the api-server, scheduler, dag-processor, triggerer and task processes
together exceed it (seen: a trigger refused with "database is locked" while the nightly DAG's first run
wrote its XCom). Waiting longer costs nothing when there is no contention.
"""

BUSY_TIMEOUT_S = 30

CONNECT_ARGS = {"timeout": BUSY_TIMEOUT_S}
