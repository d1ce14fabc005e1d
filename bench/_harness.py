"""Shared parts of the Airflow benchmarks (bench/fanout.py, bench/scale.py, bench/rerun.py).

Everything here drives *real* parts: the embedded Airflow of ``video_pipeline_dev.local`` (api-server,
scheduler, dag-processor, triggerer; SQLite + LocalExecutor), the fake Runway server as its own process
(``python -m video_pipeline_dev.fake_runway``), and the public REST API. Run the benches from the repository root
as modules, e.g. ``.venv/bin/python -m bench.fanout``, so ``bench`` imports (``video_pipeline_dev`` is installed by ``make install``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import platform
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import airflow
import httpx
import psutil
import sqlalchemy

from video_pipeline_dev.cluster import celery_env, fresh_metadata_db, missing_services
from video_pipeline_dev.local import REPO, TERMINAL_RUN_STATES, LocalAirflow

RESULTS = REPO / "bench" / "RESULTS.md"
RESULTS_INTRO = (
    "# Benchmark results\n\nMeasured on this repository's machine; each section says how it was produced.\n"
)
PIPELINE_DAG = REPO / "dags" / "video_generation.py"
BENCH_DAGS = REPO / "bench" / "dags"
DAG_ID = "video_generation"
#: A LocalExecutor task process retitles itself ``airflow worker -- <ti uuid>``; its supervisor and the
#: executor's worker processes are ``airflow worker -- LocalExecutor: …``.
TASK_TITLE = re.compile(r"^airflow worker -- [0-9a-f]{8}-[0-9a-f]{4}-")
WORKER_PREFIX = "airflow worker --"
ANALYSIS = "### Analysis"


# ------------------------------------------------------------------------------------------- reporting


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores (nproc {len(os.sched_getaffinity(0))}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, load average {load} at start, "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"Airflow {airflow.__version__}"
    )


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so ``kill <bench pid>`` still stops the bench's Airflow processes (each
    runs in its own session; without this they would outlive the bench)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def load_now() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def command_line() -> str:
    return ".venv/bin/python -m " + " ".join(
        shlex.quote(a)
        for a in [sys.modules["__main__"].__spec__.name, *sys.argv[1:]]  # type: ignore[union-attr]
    )


def md_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool, why: str = "") -> str:
    return "met" if ok else f"**missed**{': ' + why if why else ''}"


def write_section(heading: str, body: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``heading`` section of RESULTS.md, leaving every other section as it is.

    A section runs from its ``## `` heading to the next ``## `` heading. Read-modify-write in one go, so two
    benches writing different sections at different times do not lose each other's text. A hand-written
    ``### Analysis`` block at the end of the old section is kept (a re-run replaces only the numbers).
    """
    text = path.read_text() if path.exists() else RESULTS_INTRO
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    section = f"{heading}\n\n{body.strip()}\n"
    if (old := pattern.search(text)) and (kept := re.search(rf"^{ANALYSIS}.*", old.group(0), re.S | re.M)):
        section += "\n" + kept.group(0).strip() + "\n"
    if old:
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def fmt_s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s"


# ------------------------------------------------------------------------------------------ fake Runway


class FakeRunwayProcess:
    """``python -m video_pipeline_dev.fake_runway`` as a child process (its own interpreter: the triggerer's
    polls do not compete with the bench's samplers for one GIL). Control and counters over HTTP."""

    def __init__(self, *, api_key: str, concurrency: int, image_latency: float, video_latency: float) -> None:
        self.api_key = api_key
        self.args = [
            "--api-key",
            api_key,
            "--concurrency",
            str(concurrency),
            "--image-latency",
            str(image_latency),
            "--video-latency",
            str(video_latency),
            "--credits",
            "10000000",
        ]
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self._http = httpx.Client(timeout=10)  # one client: a new one per call costs ~10 ms of CPU

    def __enter__(self) -> FakeRunwayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "video_pipeline_dev.fake_runway", "--port", "0", *self.args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("fake Runway did not start")
        deadline = time.monotonic() + 20
        while True:
            try:
                self._http.get(f"{self.base_url}/_fake/stats").raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # Benches submit more than a tier-1 day: lift the daily cap (concurrency is what they measure).
        self.configure(max_daily_generations=10_000_000)
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def configure(self, **changes: Any) -> dict[str, Any]:
        response = self._http.post(f"{self.base_url}/_fake/config", json=changes)
        response.raise_for_status()
        return dict(response.json())

    def reset_counters(self) -> None:
        self._http.post(f"{self.base_url}/_fake/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get(f"{self.base_url}/_fake/stats")
        response.raise_for_status()
        return dict(response.json())

    def in_flight(self) -> dict[str, int]:
        """The provider's tasks now: ``provider_running`` (holding one of its C slots: PENDING or RUNNING)
        and ``in_flight`` (those plus the THROTTLED ones queued behind the limit)."""
        by_status = self.stats()["tasks_by_status"]
        running = int(by_status.get("PENDING", 0) + by_status.get("RUNNING", 0))
        return {"provider_running": running, "in_flight": running + int(by_status.get("THROTTLED", 0))}

    def connection_env(self) -> dict[str, str]:
        conn = {"conn_type": "http", "host": self.base_url, "password": self.api_key}
        return {"AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(conn)}


# ---------------------------------------------------------------------------------------------- Airflow


def dags_folder(root: Path, *files: Path) -> Path:
    """A DAGs folder of symlinks to the given DAG files (the product's DAG file is used as is)."""
    folder = root / "dags"
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        link = folder / f.name
        if not link.exists():
            link.symlink_to(f)
    return folder


#: Where the benches' Airflow processes cache bytecode (kept between runs, like a deployment's compiled .pyc).
PYCACHE = Path(tempfile.gettempdir()) / "vp-bench-pycache"


def bytecode_env(enabled: bool) -> dict[str, str]:
    """This machine sets ``PYTHONDONTWRITEBYTECODE=1``: without .pyc files every task process compiles each
    module it imports from source (a task process's DAG parse: ~0.9 s of CPU cold, ~0.3 s from bytecode).
    ``make install`` compiles site-packages since commit 47ef10a, but the project's own packages (an editable
    install) and a venv made before that still have none. A deployment has compiled bytecode (pip compiles at
    install, as the Docker image does); the benches get the same with a private cache directory instead of
    writing into the shared checkout. (With a prefix set, Python reads bytecode only from the prefix.)"""
    if not enabled:
        return {}
    return {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(PYCACHE)}


def warm_bytecode(env: dict[str, str], dag_files: Sequence[Path]) -> None:
    """Fill the bytecode cache for what a task process imports (the task runner and the DAG files)."""
    if not env:
        return
    code = "import runpy, sys\nimport airflow.sdk.execution_time.task_runner\nfor f in sys.argv[1:]: runpy.run_path(f)\n"
    subprocess.run(
        [sys.executable, "-c", code, *map(str, dag_files)],
        env={**os.environ, **env},
        cwd=REPO,
        check=True,
        capture_output=True,
    )


def bytecode_note(*, enabled: bool) -> str:
    """The RESULTS.md line saying how the bench's Airflow processes got their bytecode."""
    how = (
        "on (a private PYTHONPYCACHEPREFIX, warmed before start; this machine sets PYTHONDONTWRITEBYTECODE=1, "
        "see `bench/_harness.py:bytecode_env`)."
        if enabled
        else "off (PYTHONDONTWRITEBYTECODE=1 as this machine sets it; .pyc only where make install compiled)."
    )
    return f"Python bytecode cache for the Airflow processes: {how}"


def bench_airflow(
    root: Path,
    *,
    dag_files: Sequence[Path],
    parallelism: int,
    extra_env: dict[str, str] | None = None,
    bytecode_cache: bool = True,
    metadata_url: str | None = None,
) -> LocalAirflow:
    """An embedded Airflow over ``dag_files``: SQLite + LocalExecutor, or with ``metadata_url`` (PostgreSQL)
    CeleryExecutor (see :func:`started_airflow`)."""
    storage = root / "data"
    storage.mkdir(parents=True, exist_ok=True)
    cache = bytecode_env(bytecode_cache)
    warm_bytecode(cache, dag_files)
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder(root, *dag_files)), **cache, **(extra_env or {})}
    return LocalAirflow(
        home=root / "airflow-home",
        storage_url=storage.as_uri(),
        parallelism=parallelism,
        extra_env=env,
        executor="CeleryExecutor" if metadata_url else "LocalExecutor",
        sql_alchemy_conn=metadata_url,
    )


#: Redis database of the benches' Celery broker (the cluster test uses 11).
BENCH_REDIS_DB = 12


@contextlib.contextmanager
def started_airflow(
    root: Path,
    *,
    executor: str,
    dag_files: Sequence[Path],
    parallelism: int,
    celery_workers: int = 1,
    **kwargs: Any,
) -> Iterator[LocalAirflow]:
    """A running bench Airflow. ``executor`` ``local``: SQLite + LocalExecutor. ``celery``: a fresh
    PostgreSQL database, Redis broker and ``celery_workers`` Celery workers sharing ``parallelism`` task
    slots (:func:`worker_slots`), so both executors run the same number of tasks at once."""
    if executor == "local":
        with bench_airflow(root, dag_files=dag_files, parallelism=parallelism, **kwargs) as airflow:
            yield airflow
        return
    if reason := missing_services():
        raise SystemExit(f"--executor celery {reason}")
    with fresh_metadata_db("vp_bench") as url:
        extra_env = {**celery_env(url, BENCH_REDIS_DB), **kwargs.pop("extra_env", {})}
        airflow = bench_airflow(
            root,
            dag_files=dag_files,
            parallelism=parallelism,
            extra_env=extra_env,
            metadata_url=url,
            **kwargs,
        )
        with airflow:
            for n, slots in enumerate(worker_slots(parallelism, celery_workers), start=1):
                airflow.start_celery_worker(
                    "bench-worker" if celery_workers == 1 else f"bench-worker-{n}", slots
                )
            yield airflow


def worker_slots(parallelism: int, workers: int) -> list[int]:
    """Task slots per Celery worker: ``parallelism`` shared as evenly as it divides."""
    if not 1 <= workers <= parallelism:
        raise ValueError(f"{workers} workers cannot share {parallelism} slots")
    return [parallelism // workers + (n < parallelism % workers) for n in range(workers)]


def wait_for_dag(airflow: LocalAirflow, dag_id: str, timeout: float = 180) -> None:
    airflow.wait_until(
        lambda: airflow.api("GET", f"/api/v2/dags/{dag_id}").status_code == 200, timeout, f"DAG {dag_id}"
    )


def parse_time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class RunTimes:
    state: str
    start: dt.datetime
    end: dt.datetime

    @property
    def wall_s(self) -> float:
        return (self.end - self.start).total_seconds()


def run_times(airflow: LocalAirflow, dag_id: str, run_id: str) -> RunTimes:
    response = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
    response.raise_for_status()
    run = response.json()
    start, end = parse_time(run["start_date"]), parse_time(run["end_date"])
    assert start and end, run
    return RunTimes(str(run["state"]), start, end)


def wait_for_run(airflow: LocalAirflow, dag_id: str, run_id: str, timeout: float) -> str:
    """Wait for a run to end, polling its state in the metadata database. Not the REST API: a run's response
    carries its conf (the job spec), and at N = 1000 segments each poll cost the api-server ~0.5 s of CPU,
    taken from the run being measured."""

    def ended() -> str | None:
        rows = query_metadata(
            airflow,
            "SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=dag_id,
            run_id=run_id,
        )
        return rows[0][0] if rows and rows[0][0] in TERMINAL_RUN_STATES else None

    return str(airflow.wait_until(ended, timeout, f"run {run_id}"))


def count_tis(airflow: LocalAirflow, dag_id: str, run_id: str, task_id: str, state: str) -> int:
    response = airflow.api(
        "GET",
        f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
        params={"task_id": task_id, "state": state, "limit": 1},
    )
    response.raise_for_status()
    return int(response.json()["total_entries"])


@dataclass
class TaskSummary:
    """A (mapped) task's instances in one run: first start, last end, states and retries."""

    start: dt.datetime
    end: dt.datetime
    count: int
    states: dict[str | None, int]
    retries: int

    @property
    def wall_s(self) -> float:
        return (self.end - self.start).total_seconds()


def _db_time(value: str | dt.datetime | None) -> dt.datetime | None:
    """A timestamp column: SQLite gives text (UTC), PostgreSQL an aware datetime."""
    if not value:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


@functools.cache
def _engine(url: str) -> sqlalchemy.engine.Engine:
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


def query_metadata(airflow: LocalAirflow, sql: str, **params: object) -> list[tuple[Any, ...]]:
    """A read-only query on this Airflow's metadata database: its SQLite file opened read-only, or its
    PostgreSQL database (CeleryExecutor runs)."""
    url = airflow.sql_alchemy_conn or f"sqlite:///file:{airflow.home / 'airflow.db'}?mode=ro&uri=true"
    with _engine(url).connect() as conn:
        return [tuple(row) for row in conn.execute(sqlalchemy.text(sql), params)]


def task_summaries(airflow: LocalAirflow, dag_id: str, run_id: str) -> dict[str, TaskSummary]:
    """Per task id, from the metadata database (read-only). A task resumed from deferral keeps its first
    ``start_date`` (the execution API drops the new one), so a window covers submit → wait → download.

    Not the REST API: a task instance's response carries its rendered template fields, and every mapped
    instance renders the whole job spec (N segments), so listing 2N instances of an N = 1000 job would be a
    response of hundreds of MB.
    """
    rows = query_metadata(
        airflow,
        "SELECT task_id, start_date, end_date, state, try_number FROM task_instance "
        "WHERE dag_id = :dag_id AND run_id = :run_id",
        dag_id=dag_id,
        run_id=run_id,
    )
    grouped: dict[str, list[tuple[dt.datetime | None, dt.datetime | None, str | None, int]]] = {}
    for task_id, start, end, state, tries in rows:
        grouped.setdefault(task_id, []).append((_db_time(start), _db_time(end), state, int(tries or 0)))
    result = {}
    for task_id, items in grouped.items():
        starts = [s for s, _, _, _ in items if s]
        ends = [e for _, e, _, _ in items if e]
        if not starts or not ends:
            continue
        states: dict[str | None, int] = {}
        for _, _, state, _ in items:
            states[state] = states.get(state, 0) + 1
        retries = sum(max(0, t - 1) for _, _, _, t in items)
        result[task_id] = TaskSummary(min(starts), max(ends), len(items), states, retries)
    return result


def rendered_fields_bytes(airflow: LocalAirflow, dag_id: str, run_id: str) -> int:
    """Bytes of rendered template fields Airflow stored for one run (table rendered_task_instance_fields)."""
    ((total,),) = query_metadata(
        airflow,
        "SELECT COALESCE(SUM(LENGTH(CAST(rendered_fields AS TEXT))), 0) FROM rendered_task_instance_fields "
        "WHERE dag_id = :dag_id AND run_id = :run_id",
        dag_id=dag_id,
        run_id=run_id,
    )
    return int(total)


PARSE_MS = re.compile(r'"?dag_file_parse_ms"?[=:]\s*(\d+)')


def dag_parse_seconds(home: Path, dag_id: str, run_id: str, task_id: str) -> list[float]:
    """How long each task process spent parsing the DAG file before running the task: Airflow logs
    ``Worker startup parse complete … dag_file_parse_ms=…`` at every task-process start (a deferred task
    that resumes starts, and parses, again)."""
    folder = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
    found = []
    for log in folder.rglob("attempt=*.log"):
        if ".trigger." in log.name:
            continue
        for line in log.read_text(errors="replace").splitlines():
            if "Worker startup parse complete" in line and (m := PARSE_MS.search(line)):
                found.append(int(m.group(1)) / 1000)
    return found


#: What the scheduler logs when it fails a task whose defer-exit it read after the task was queued again
#: (apache/airflow#72716; see plugins/video_pipeline_airflow/triggers/settle.py).
STATE_MISMATCH = "but the task instance's state attribute is"


def state_mismatches(home: Path, run_id: str, task_id: str) -> int:
    """How many of the run's ``task_id`` instances the scheduler failed as 'state changed externally'."""
    log = home / "logs" / "scheduler.log"
    if not log.exists():
        return 0
    marker = f".{task_id} {run_id} "
    return sum(
        1
        for line in log.read_text(errors="replace").splitlines()
        if STATE_MISMATCH in line and marker in line
    )


def spread(values: Sequence[float]) -> str:
    """``median / p90 / max`` of a sample, in seconds."""
    if not values:
        return "–"
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{ordered[len(ordered) // 2]:.2f} / {p90:.2f} / {ordered[-1]:.2f} s"


# ------------------------------------------------------------------------------------------- sampling


def airflow_processes(airflow: LocalAirflow) -> Callable[[], list[psutil.Process]]:
    """A function listing this Airflow's ``airflow worker --`` processes: the descendants of its scheduler
    (LocalExecutor) and of its Celery workers. Task processes cannot be told apart by their environment:
    setproctitle overwrites the memory /proc/<pid>/environ shows, hence the process tree."""
    roots = [psutil.Process(pid) for pid in airflow.process_ids(("scheduler", *airflow.celery_workers))]

    def list_() -> list[psutil.Process]:
        found = []
        for root in roots:
            try:
                children = root.children(recursive=True)
            except (psutil.Error, OSError):
                continue
            for proc in children:
                try:
                    if " ".join(proc.cmdline()).startswith(WORKER_PREFIX):
                        found.append(proc)
                except (psutil.Error, OSError):
                    continue
        return found

    return list_


def task_states(
    airflow: LocalAirflow, dag_id: str, run_id: str, task_id: str
) -> list[tuple[int, str | None]]:
    """``(map_index, state)`` of a task's instances, read from the metadata database (read-only).

    Sampling through the REST API costs the api-server ~0.1 s of CPU a call on this machine, and the
    api-server also serves the execution API the task processes talk to: polling it several times a second
    would slow the run being measured. A SELECT costs well under a millisecond.
    """
    rows = query_metadata(
        airflow,
        "SELECT map_index, state FROM task_instance "
        "WHERE dag_id = :dag_id AND run_id = :run_id AND task_id = :task_id",
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
    )
    return [(int(m), s) for m, s in rows]


@dataclass
class Sampler:
    """Calls ``probe()`` every ``interval`` seconds in a thread; keeps ``(monotonic time, dict)`` rows."""

    probe: Callable[[], dict[str, Any]]
    interval: float = 0.5
    rows: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.rows.append((started, self.probe()))
            except Exception:  # a slow or refused REST call loses one sample, not the bench
                self.errors += 1
            next_at = max(next_at + self.interval, time.monotonic())
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def rss_probe(list_processes: Callable[[], list[psutil.Process]]) -> Callable[[], dict[str, Any]]:
    """RSS of this Airflow's task processes (``airflow worker -- <ti id>``, each with its children such as
    ffmpeg counted apart) and of the executor's worker/supervisor processes."""

    def probe() -> dict[str, Any]:
        task_rss, child_rss, other_rss = [], [], []
        for proc in list_processes():
            try:
                title = " ".join(proc.cmdline())
                rss = proc.memory_info().rss
                if TASK_TITLE.match(title):
                    task_rss.append(rss)
                    child_rss += [c.memory_info().rss for c in proc.children(recursive=True)]
                else:
                    other_rss.append(rss)
            except (psutil.Error, OSError):
                continue
        return {
            "wall": time.time(),
            "tasks": len(task_rss),
            "task_rss_max": max(task_rss, default=0),
            "child_rss_max": max(child_rss, default=0),
            "worker_rss_max": max(other_rss, default=0),
        }

    return probe


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MiB"


def stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%m%d%H%M%S")
