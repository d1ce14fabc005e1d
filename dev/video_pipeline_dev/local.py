"""An embedded Airflow for the demo and the end-to-end tests: real api-server, scheduler, dag-processor and
triggerer processes sharing one ``AIRFLOW_HOME``, driven through the public REST API.

Each process starts in its own session so ``stop()`` can kill its whole process group: killing only the pid
leaves the scheduler's or api-server's children holding the port (docs/notes/airflow-3.3.md).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from video_pipeline_airflow.pools import planned_pools

REPO = Path(__file__).resolve().parents[2]
#: The example consumer DAGs (e.g. of the finished-video asset): a second DAG bundle where a harness wants them.
EXAMPLE_DAGS = REPO / "examples" / "dags"
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
TERMINAL_RUN_STATES = {"success", "failed"}
#: Seconds a REST call may take (see :meth:`LocalAirflow.api`).
API_TIMEOUT_S = 90.0


WORKER_NAME_ENV = "VIDEO_PIPELINE_WORKER_NAME"


def worker_hostname() -> str:
    """``[core] hostname_callable`` for local Celery workers: the worker's name, else the machine's FQDN."""
    return os.environ.get(WORKER_NAME_ENV) or socket.getfqdn()


LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"


def dag_bundles(extra_folders: tuple[Path, ...]) -> str:
    """``[dag_processor] dag_bundle_config_list``: Airflow's default bundle (the DAGs folder) plus one local
    bundle per extra folder, named after it."""
    bundles = [{"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}}]
    bundles += [
        {
            "name": f"{folder.parent.name}-{folder.name}",
            "classpath": LOCAL_BUNDLE,
            "kwargs": {"path": str(folder)},
        }
        for folder in extra_folders
    ]
    return json.dumps(bundles)


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError):  # the group is gone
        os.killpg(pgid, sig)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalAirflow:
    home: Path
    storage_url: str | None
    port: int = field(default_factory=free_port)
    executor: str = "LocalExecutor"
    sql_alchemy_conn: str | None = None
    parallelism: int = 8
    pool_slots: int | None = None  # None: from the providers' account limits, else the default
    processes: tuple[str, ...] = PROCESSES
    extra_env: dict[str, str] = field(default_factory=dict)
    #: ``(user, password)``: real logins (simple auth manager). None: everyone is admin (demo only).
    login: tuple[str, str] | None = None
    #: More logins beside ``login``: name → (password, role); role ``viewer``, ``user``, ``op``, ``admin``, or
    #: ``""`` (a user the simple auth manager allows nothing: no DAG may be read).
    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: More DAG folders, each its own DAG bundle beside the pipeline's ``dags/`` (e.g. ``examples/dags``).
    extra_dag_folders: tuple[Path, ...] = ()
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, init=False)
    _celery_workers: list[str] = field(default_factory=list, init=False)
    _token: str | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        self.home.mkdir(parents=True, exist_ok=True)
        secret_file = self.home / "jwt_secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secret_file.read_text(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            # The DAG files do not change while this Airflow runs: parse each once, not every 30 s (the default;
            # re-parsing took 3.5 % of a core of an idle Airflow, and the tests run two or three at once).
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            # The task supervisor notices its task process has exited only when a select() times out, and the
            # timeout is this interval: at 5 s (the default) ~40 % of tasks held their worker slot 5 s after
            # finishing (measured, Airflow 3.3.2). 1 s: a heartbeat per running task per second instead.
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
            "AIRFLOW_VAR_VIDEO_PIPELINE_GATE_POLL_SECONDS": "2",
        }
        if self.login is None:
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
        else:
            passwords = self.home / "passwords.json"
            logins = {self.login[0]: (self.login[1], "admin"), **self.users}
            passwords.write_text(json.dumps({name: password for name, (password, _) in logins.items()}))
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(
                f"{name}:{role}" for name, (_, role) in logins.items()
            )
            env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(passwords)
        if self.storage_url:  # else the Variable (set through the API) decides
            env["AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL"] = self.storage_url
        if self.extra_dag_folders:
            env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"] = dag_bundles(self.extra_dag_folders)
        if self.sql_alchemy_conn:
            env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = self.sql_alchemy_conn
        if not self.sql_alchemy_conn or self.sql_alchemy_conn.startswith("sqlite"):
            for key in ("SQL_ALCHEMY_CONNECT_ARGS", "SQL_ALCHEMY_CONNECT_ARGS_ASYNC"):
                env[f"AIRFLOW__DATABASE__{key}"] = "video_pipeline_airflow.sqlite.CONNECT_ARGS"
        # The project's own modules (dags/, plugins/, include/) live in the checkout, where nothing compiled
        # them: with PYTHONDONTWRITEBYTECODE set (as on the CI machines) every task process compiled them from
        # source again, 15 % of its CPU (py-spy over two e2e tests). Let Airflow's processes write the cache.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    def start(self, timeout: float = 180) -> None:
        self.airflow("db", "migrate")
        (self.home / "logs").mkdir(exist_ok=True)
        for name in self.processes:
            self.start_process(name)
        self.wait_until(self._ready, timeout, "Airflow api-server and DAG parsing")
        for pool, slots in planned_pools().items():
            self.set_pool(pool, self.pool_slots or slots)

    def set_pool(self, name: str, slots: int) -> None:
        body = {
            "name": name,
            "slots": slots,
            "include_deferred": True,
            "description": "provider concurrency x queue depth (deferred tasks count)",
        }
        response = self.api("POST", "/api/v2/pools", json=body)
        if response.status_code == 409:
            response = self.api("PATCH", f"/api/v2/pools/{name}", json=body)
        response.raise_for_status()

    def start_process(
        self, name: str, *args: str, command: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """Start ``airflow <command or name> <args>`` as the process ``name`` (its log: ``logs/<name>.log``)."""
        log = (self.home / "logs" / f"{name}.log").open("ab")
        self._procs[name] = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), *(command or name).split(), *args],
            env={**self.env(), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_celery_worker(self, name: str, concurrency: int) -> None:
        """A Celery worker that reports itself as ``name`` (task instances' hostname) so tests can tell two
        workers on one machine apart; serve-logs is skipped (the logs folder is shared, and the port would clash).
        """
        self.start_process(
            name,
            "--celery-hostname",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--skip-serve-logs",
            command="celery worker",
            env={
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "video_pipeline_dev.local.worker_hostname",
                WORKER_NAME_ENV: name,
            },
        )
        self._celery_workers.append(name)

    @property
    def celery_workers(self) -> tuple[str, ...]:
        """The names of the Celery workers started (and not stopped) by :meth:`start_celery_worker`."""
        return tuple(name for name in self._celery_workers if name in self._procs)

    def process_ids(self, names: tuple[str, ...]) -> list[int]:
        """Process ids of the named processes that are running (their task processes are descendants)."""
        return [self._procs[name].pid for name in names if name in self._procs]

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        proc = self._procs.pop(name, None)
        if proc is None:
            return
        _signal_group(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def stop(self, grace: float = 10) -> None:
        """Stop every process at once: SIGTERM to each one's process group, SIGKILL to the groups still there
        ``grace`` seconds later (stopping them one after another, each with its own wait, took 27-36 s at the
        end of a test module). What a leader left behind in its group (a LocalExecutor worker, a task) goes too.
        """
        procs = list(self._procs.values())
        self._procs.clear()
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def __enter__(self) -> LocalAirflow:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST -------------------------------------------------------------------------------------------

    def _ready(self) -> bool:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"airflow {name} exited with {proc.returncode}; see {self.home}/logs/{name}.log"
                )
        try:
            return self.api("GET", "/api/v2/dags/video_generation").status_code == 200
        except httpx.HTTPError:
            return False

    def token(self) -> str:
        if self._token is None:
            if self.login is None:
                response = httpx.get(f"{self.base_url}/auth/token", timeout=API_TIMEOUT_S)
            else:
                credentials = {"username": self.login[0], "password": self.login[1]}
                response = httpx.post(f"{self.base_url}/auth/token", json=credentials, timeout=API_TIMEOUT_S)
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return self._token

    def token_for(self, username: str, password: str) -> str:
        """A bearer token for another login (``users``)."""
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": username, "password": password},
            timeout=API_TIMEOUT_S,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}"}
        # Longer than SQLite's 30-s busy wait (sqlite.py): a write that waited out a lock still answers. At 30 s
        # a session's first write (its pools) timed out while three Airflows started on two loaded cores.
        return httpx.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=API_TIMEOUT_S, **kwargs
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        response = self.api(
            "POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf}
        )
        if response.status_code >= 400:
            raise RuntimeError(f"trigger refused ({response.status_code}): {response.text}")
        return str(response.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        response = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return str(response.json()["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        response = self.api(
            "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000}
        )
        response.raise_for_status()
        return list(response.json()["task_instances"])

    def task_state(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        states = [ti["state"] for ti in self.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
        return states[0] if states else None

    def set_variable(self, key: str, value: str) -> None:
        response = self.api("POST", "/api/v2/variables", json={"key": key, "value": value})
        if response.status_code == 409:
            response = self.api("PATCH", f"/api/v2/variables/{key}", json={"key": key, "value": value})
        response.raise_for_status()

    def answer_gate(
        self, dag_id: str, run_id: str, task_id: str, option: str, params: dict[str, Any]
    ) -> httpx.Response:
        """Answer a gate the way the UI's Required Action form does."""
        return self.api(
            "PATCH",
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails",
            json={"chosen_options": [option], "params_input": params},
        )

    def wait_until(
        self, predicate: Callable[[], Any], timeout: float, what: str, interval: float = 1.0
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        return str(
            self.wait_until(
                lambda: (s := self.run_state(dag_id, run_id)) in TERMINAL_RUN_STATES and s,
                timeout,
                f"run {run_id}",
            )
        )

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, states: set[str], timeout: float
    ) -> str:
        def reached() -> str | None:
            state = self.task_state(dag_id, run_id, task_id)
            if state in {"failed", "upstream_failed"} and state not in states:
                raise RuntimeError(f"{task_id} is {state}; see {self.home}/logs")
            return state if state in states else None

        return str(self.wait_until(reached, timeout, f"{task_id} in {sorted(states)}"))


@contextmanager
def running_airflow(**kwargs: Any) -> Iterator[LocalAirflow]:
    with LocalAirflow(**kwargs) as airflow:
        yield airflow
