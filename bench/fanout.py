"""Fan-out benchmark: the image stage of ``video_generation`` on real Airflow against the provider's bound.

    .venv/bin/python -m bench.fanout                 # the issue's scenarios: 60×5×20 s, then 200×10×5 s
    .venv/bin/python -m bench.fanout --quick         # smoke run: 12 segments, C = 3, L = 3 s
    .venv/bin/python -m bench.fanout --scenario 60:5:20:5 --queue-depth 1,2,4   # N:C:L:poll; pool = depth × C

Per scenario (N segments, provider concurrency C, image latency L, Runway poll interval P):

* Airflow: a real api-server, scheduler, dag-processor and triggerer (SQLite + LocalExecutor) run a Runway job
  of N segments against the fake Runway server (its own process; tasks beyond C wait THROTTLED there). The job
  has ``approval: images``: the bench measures the image stage and then rejects at the gate (no clips).
  Image-stage wall time = last ``end_date`` − first ``start_date`` of the ``generate_image`` instances (metadata
  DB, read-only; a task resumed from deferral keeps its first start date). Bound = ceil(N / C) · L.
* While the stage runs, every 0.5 s: the number of ``generate_image`` instances ``running`` / ``deferred`` /
  ``queued`` / ``scheduled`` (metadata DB, read-only), this Airflow's task processes (``airflow worker -- <ti id>``, psutil) and
  the provider's tasks in flight (the fake's counters). Reported over the samples where the provider had work.
* Worker time per segment (Σ instances ``running`` × sample interval ÷ N) per executor, and CeleryExecutor's ÷
  LocalExecutor's for each scenario both ran in one invocation (goal ≤ 1.2).
* Seed baseline: the seed's design — a ``ThreadPoolExecutor(3)`` that submits, polls every P s and downloads
  with our ``RunwayClient`` — on the same fake, same N, C, L, after Airflow is stopped.

The pool ``video_images`` gets ``--queue-depth`` × C slots (a comma list runs each scenario at each depth; default
the product's rule in
``video_pipeline_airflow.pools``: 2 × the account's concurrency). The poll interval is the Airflow Variable
``video_pipeline_poll_seconds`` (production default 5 s). Writes the "## Fan-out" section of
bench/RESULTS.md unless ``--no-write`` (``--quick`` never writes).
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._harness import (
    DAG_ID,
    PIPELINE_DAG,
    TASK_TITLE,
    FakeRunwayProcess,
    Sampler,
    airflow_processes,
    bytecode_note,
    command_line,
    dag_parse_seconds,
    exit_on_sigterm,
    load_now,
    machine,
    md_table,
    spread,
    stamp,
    started_airflow,
    state_mismatches,
    task_states,
    task_summaries,
    verdict,
    wait_for_run,
    worker_slots,
    write_section,
)
from video_pipeline.approval import variable_key
from video_pipeline.providers.base import ImageRequest
from video_pipeline.providers.runway import RunwayClient
from video_pipeline_airflow.pools import QUEUE_DEPTH
from video_pipeline_airflow.settings import IMAGE_POOL, POLL_VARIABLE
from video_pipeline_airflow.triggers.provider import poll_delay
from video_pipeline_dev.cluster import missing_services
from video_pipeline_dev.local import LocalAirflow

HEADING = "## Fan-out"
GOAL_RATIO = 1.05
API_KEY = "key_bench_fanout"
TASK = "generate_image"


@dataclass(frozen=True)
class Scenario:
    n: int
    c: int
    latency: float
    poll: float

    @property
    def bound(self) -> float:
        return math.ceil(self.n / self.c) * self.latency

    def label(self) -> str:
        return f"N={self.n}, C={self.c}, L={self.latency:g} s, poll {self.poll:g} s"

    @classmethod
    def parse(cls, text: str) -> Scenario:
        n, c, latency, poll = text.split(":")
        return cls(int(n), int(c), float(latency), float(poll))


ISSUE = [Scenario(60, 5, 20.0, 5.0), Scenario(200, 10, 5.0, 1.0)]
#: ``--executor`` values and how the report names them.
CELERY_WORKERS = 2
EXECUTORS = {
    "local": "LocalExecutor (SQLite)",
    "celery": f"CeleryExecutor (PostgreSQL, Redis, {CELERY_WORKERS} workers)",
}
#: CeleryExecutor's worker time per segment ÷ LocalExecutor's, at most.
WORKER_TIME_GOAL = 1.2
QUICK = [Scenario(12, 3, 3.0, 1.0)]


@dataclass
class AirflowResult:
    scenario: Scenario
    pool: int
    stage_s: float
    run_state: str
    provider: dict[str, Any]
    samples: list[dict[str, Any]]
    sample_errors: int
    longest_running_s: float
    retries: int
    load: str
    executor: str = "local"
    notes: list[str] = field(default_factory=list)

    states: dict[str | None, int] = field(default_factory=dict)
    parse_s: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.stage_s / self.scenario.bound

    @property
    def label(self) -> str:
        return f"{EXECUTORS[self.executor]}: {self.scenario.label()}"

    @property
    def failed_segments(self) -> int:
        return sum(n for state, n in self.states.items() if state != "success")


@dataclass
class BaselineResult:
    wall_s: float
    posts: int


def job_spec(job_id: str, n: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "title": f"Fan-out bench {job_id}",
        "segments": [
            {"prompt": f"{job_id} segment {i}: a lantern over dark water", "duration_s": 2}
            for i in range(1, n + 1)
        ],
        "ratio": "1280:720",
        "provider": "runway",
        "budget_credits": 10_000_000,  # a paid provider needs a budget (policy: video_pipeline_require_budget)
        "seed": 7,
        "approval": "images",
        "gate_timeout": 3600,
    }


def state_probe(
    airflow: LocalAirflow, run_id: str, fake: FakeRunwayProcess, processes: Any
) -> dict[str, Any]:
    states = task_states(airflow, DAG_ID, run_id, TASK)
    counts = Counter(state for _, state in states)
    return {
        "wall": time.time(),
        "running": [index for index, state in states if state == "running"],
        "deferred": counts["deferred"],
        "queued": counts["queued"],
        "scheduled": counts["scheduled"],
        "task_processes": sum(1 for p in processes() if TASK_TITLE.match(" ".join(p.cmdline()))),
        **fake.in_flight(),
    }


GATE_DONE = {"deferred", "success", "skipped", "failed", "upstream_failed"}


TERMINAL = {"success", "failed", "upstream_failed", "skipped"}


def images_done(airflow: LocalAirflow, run_id: str, n: int) -> bool:
    """Every ``generate_image`` instance finished, successfully or for good (retries exhausted)."""
    states = task_states(airflow, DAG_ID, run_id, TASK)
    return len(states) == n and all(state in TERMINAL for _, state in states)


def gate_state(airflow: LocalAirflow, run_id: str) -> str | None:
    """The images gate's state once it opened or can no longer open (an image failed for good), else None."""
    states = [state for _, state in task_states(airflow, DAG_ID, run_id, "images_gate")]
    return states[0] if states and states[0] in GATE_DONE else None


def longest_running_stretch(samples: list[dict[str, Any]]) -> float:
    """The longest time one task instance was seen ``running`` in consecutive samples (first to last sample
    of the stretch; resolution ± one sample interval)."""
    first_seen: dict[int, float] = {}
    longest = 0.0
    previous: set[int] = set()
    for sample in samples:
        now = set(sample["running"])
        for index in now - previous:
            first_seen[index] = sample["wall"]
        for index in now:
            longest = max(longest, sample["wall"] - first_seen[index])
        previous = now
    return longest


def run_airflow_scenario(
    airflow: LocalAirflow, fake: FakeRunwayProcess, scenario: Scenario, queue_depth: int, interval: float
) -> AirflowResult:
    pool = queue_depth * scenario.c
    airflow.set_pool(IMAGE_POOL, pool)
    airflow.set_variable(POLL_VARIABLE, str(scenario.poll))
    fake.configure(concurrency=scenario.c, image_latency=scenario.latency)
    fake.reset_counters()
    job_id = f"fanout-{scenario.n}x{scenario.c}-{stamp()}"
    processes = airflow_processes(airflow)
    print(f"[fan-out] {scenario.label()}: pool {IMAGE_POOL} = {pool} slots; job {job_id}", flush=True)
    run_id = airflow.trigger(DAG_ID, job_spec(job_id, scenario.n))
    with Sampler(lambda: state_probe(airflow, run_id, fake, processes), interval=interval) as sampler:
        # Polled in the metadata DB, not REST: listing the run's task instances every second would load
        # the api-server the measured tasks talk to (each instance carries its rendered job spec).
        airflow.wait_until(
            lambda: images_done(airflow, run_id, scenario.n), scenario.bound * 6 + 900, "the image stage"
        )
    load = load_now()
    provider = fake.stats()
    summary = task_summaries(airflow, DAG_ID, run_id)[TASK]
    start, end, count, retries = summary.start, summary.end, summary.count, summary.retries
    notes = [] if summary.states == {"success": scenario.n} else [f"{TASK} states {summary.states}"]
    gate = airflow.wait_until(lambda: gate_state(airflow, run_id), 600, "the images gate to open")
    if gate == "deferred":
        time.sleep(3)  # the gate deletes a leftover decision when it opens; answer after it settled
        airflow.set_variable(variable_key(job_id, "images"), "reject")
    else:
        notes.append(f"images_gate {gate}: the run fails")
    run_state = wait_for_run(airflow, DAG_ID, run_id, timeout=600)
    window = [s for _, s in sampler.rows if start.timestamp() <= s["wall"] <= end.timestamp()]
    return AirflowResult(
        scenario=scenario,
        pool=pool,
        executor="celery" if airflow.executor == "CeleryExecutor" else "local",
        stage_s=(end - start).total_seconds(),
        run_state=run_state,
        provider=provider,
        samples=window,
        sample_errors=sampler.errors,
        longest_running_s=longest_running_stretch(window),
        retries=retries,
        load=load,
        states=summary.states,
        parse_s=dag_parse_seconds(airflow.home, DAG_ID, run_id, TASK),
        notes=notes
        + ([] if count == scenario.n else [f"{count} instances"])
        + (
            [f"{mismatches} retries forced by Airflow's defer-exit race (#72716)"]
            if (mismatches := state_mismatches(airflow.home, run_id, TASK))
            else []
        )
        + ([f"{sampler.errors} samples lost"] if sampler.errors else []),
    )


def seed_baseline(fake: FakeRunwayProcess, scenario: Scenario, workers: int = 3) -> BaselineResult:
    """The seed's design: one process, ``ThreadPoolExecutor(workers)``, each thread submit → poll → download."""
    fake.configure(concurrency=scenario.c, image_latency=scenario.latency)
    fake.reset_counters()
    tag = f"seed-{stamp()}"

    def one(index: int, out: Path) -> Path:
        request = ImageRequest(
            prompt=f"{tag} segment {index}: a lantern over dark water",
            seed=7 + index,
            ratio="1280:720",
            model="gen4_image",
            index=index,
        )
        with RunwayClient(fake.base_url, fake.api_key) as client:
            task_id = client.text_to_image(request)
            while not (status := client.get_task(task_id)).terminal:
                time.sleep(poll_delay(scenario.poll))
            status.raise_for_failure()
            return client.download(status.output[0], out / f"{index:03d}.png")

    print(f"[fan-out] seed baseline, {workers} threads: {scenario.label()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vp-bench-seed-") as tmp:
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            paths = list(pool.map(lambda i: one(i, Path(tmp)), range(1, scenario.n + 1)))
        wall = time.perf_counter() - started
        assert len(paths) == scenario.n and all(p.stat().st_size > 0 for p in paths)
    stats = fake.stats()
    return BaselineResult(wall, sum(stats["posts"].values()))


def worker_seconds(result: AirflowResult, interval: float) -> float:
    """Worker time each segment cost: Σ ``generate_image`` instances running × sample interval ÷ N."""
    return sum(len(s["running"]) for s in result.samples) * interval / result.scenario.n


def executor_table(results: list[AirflowResult], interval: float) -> str | None:
    """Per scenario and pool both executors ran: stage ratio and worker time per segment side by side, and
    CeleryExecutor's worker time ÷ LocalExecutor's; None when only one executor ran."""
    by_key = {(r.executor, r.scenario, r.pool): r for r in results}
    rows = []
    for (executor, scenario, pool), celery in by_key.items():
        local = by_key.get(("local", scenario, pool))
        if executor != "celery" or local is None:
            continue
        local_s, celery_s = worker_seconds(local, interval), worker_seconds(celery, interval)
        ratio = celery_s / local_s if local_s else math.inf
        rows.append(
            [
                f"{scenario.label()}, pool {pool}",
                f"{local.ratio:.3f} / {celery.ratio:.3f}",
                f"{local_s:.2f} s",
                f"{celery_s:.2f} s",
                f"**{ratio:.2f}**",
                f"≤ {WORKER_TIME_GOAL}",
                verdict(ratio <= WORKER_TIME_GOAL, f"{ratio / WORKER_TIME_GOAL - 1:.0%} over"),
            ]
        )
    if not rows:
        return None
    return md_table(
        [
            "scenario",
            "stage ÷ bound: Local / Celery",
            "worker time per segment: Local",
            "Celery",
            "Celery ÷ Local",
            "goal",
            "verdict",
        ],
        rows,
    )


def summarise(samples: list[dict[str, Any]], key: str) -> tuple[int, float]:
    values = [len(s[key]) if isinstance(s[key], list) else int(s[key]) for s in samples]
    return (max(values), statistics.fmean(values)) if values else (0, 0.0)


def report(
    results: list[AirflowResult],
    baselines: dict[Scenario, BaselineResult],
    *,
    header: str,
    interval: float,
    queue_depth: str,
    parallelism: int,
) -> str:
    rows = []
    for r in results:
        s = r.scenario
        base = baselines.get(s)
        failed = r.failed_segments
        ok = r.ratio <= GOAL_RATIO and not failed
        why = (
            f"{failed} segment(s) failed for good, the run failed (see notes)"
            if failed
            else f"{r.stage_s - s.bound * GOAL_RATIO:.1f} s over 1.05× (see the analysis)"
        )
        rows.append(
            [
                r.label,
                r.pool,
                f"{s.bound:.0f} s",
                f"{r.stage_s:.1f} s",
                f"**{r.ratio:.3f}**",
                f"≤ {GOAL_RATIO}",
                verdict(ok, why),
                f"{base.wall_s:.1f} s ({base.wall_s / s.bound:.2f}×)" if base else "not run",
                f"{base.wall_s / r.stage_s:.2f}×" if base else "–",
            ]
        )
    main_table = md_table(
        [
            "scenario",
            "pool slots",
            "bound ceil(N/C)·L",
            "Airflow image stage",
            "ratio",
            "goal",
            "verdict",
            "seed ThreadPool(3) (÷ bound)",
            "seed ÷ Airflow",
        ],
        rows,
    )
    slot_rows = []
    for r in results:
        in_flight = [s for s in r.samples if s["in_flight"] > 0]
        busy_mean = statistics.fmean(s["provider_running"] for s in r.samples) if r.samples else 0.0
        run_max, run_mean = summarise(in_flight, "running")
        proc_max, proc_mean = summarise(in_flight, "task_processes")
        def_max, def_mean = summarise(in_flight, "deferred")
        fl_max, fl_mean = summarise(in_flight, "in_flight")
        worker_s = worker_seconds(r, interval)
        slot_rows.append(
            [
                f"{r.label}, pool {r.pool}",
                f"{len(in_flight)} of {len(r.samples)}",
                f"{run_max} / {run_mean:.2f}",
                f"{proc_max} / {proc_mean:.2f}",
                f"{def_max} / {def_mean:.1f}",
                f"{fl_max} / {fl_mean:.1f}",
                f"{busy_mean:.2f} of {r.scenario.c} ({busy_mean / r.scenario.c:.0%})",
                f"{r.longest_running_s:.1f} s",
                f"{worker_s:.2f} s",
            ]
        )
    slot_table = md_table(
        [
            "scenario",
            "samples: provider busy / in stage",
            "running max / mean",
            "task processes max / mean",
            "deferred max / mean",
            "provider in flight (incl. THROTTLED) max / mean",
            "provider slots busy, mean over the stage",
            "longest 'running' stretch of one instance",
            "worker time per segment",
        ],
        slot_rows,
    )
    loss_rows = []
    for r in results:
        busy = [s for s in r.samples if s["provider_running"] > 0]
        if not busy or not r.samples:
            continue
        stage_start, stage_end = r.samples[0]["wall"], r.samples[-1]["wall"]
        head = busy[0]["wall"] - stage_start
        tail = stage_end - busy[-1]["wall"]
        inside = [s for s in r.samples if busy[0]["wall"] <= s["wall"] <= busy[-1]["wall"]]
        free = sum(r.scenario.c - min(s["provider_running"], r.scenario.c) for s in inside) * interval
        loss_rows.append(
            [
                f"{r.label}, pool {r.pool}",
                f"{r.stage_s - r.scenario.bound:+.1f} s",
                f"{head:.1f} s",
                f"{free / r.scenario.c:.1f} s",
                f"{tail:.1f} s",
            ]
        )
    loss_table = md_table(
        [
            "scenario",
            "stage − bound",
            "head: stage start → provider's first task starts",
            "free provider slots while busy (slot-seconds ÷ C)",
            "tail: provider's last task ends → stage end",
        ],
        loss_rows,
    )
    provider_rows = [
        [
            f"{r.label}, pool {r.pool}",
            sum(r.provider["posts"].values()),
            r.provider["duplicate_submissions"],
            r.retries,
            r.provider["min_poll_interval_s"] and f"{r.provider['min_poll_interval_s']:.2f} s",
            f"{spread(r.parse_s)} ({len(r.parse_s)} starts)",
            r.run_state,
            r.load,
            "; ".join(r.notes) or "–",
        ]
        for r in results
    ]
    provider_table = md_table(
        [
            "scenario",
            "POSTs",
            "duplicate submissions",
            "task retries",
            "min poll gap",
            "DAG parse per task-process start: median / p90 / max",
            "run (after reject)",
            "load avg after",
            "notes",
        ],
        provider_rows,
    )
    base_rows = [
        [s.label(), f"{b.wall_s:.1f} s", f"{math.ceil(s.n / 3) * s.latency:.0f} s", b.posts]
        for s, b in baselines.items()
    ]
    base_table = md_table(["scenario", "seed wall", "its own bound ceil(N/3)·L", "POSTs"], base_rows)
    executors = executor_table(results, interval)
    return "\n\n".join(
        [
            header,
            f"Image stage of `video_generation` (provider `runway`, `approval: images`, rejected at the gate "
            f"after the stage) on real Airflow (executor per row; parallelism {parallelism}, for CeleryExecutor "
            f"{CELERY_WORKERS} workers sharing {parallelism} slots ({' + '.join(map(str, worker_slots(parallelism, CELERY_WORKERS)))}); "
            f"`max_active_tasks` 16 from the DAG) against the fake Runway server in its own process. "
            f"Pool `{IMAGE_POOL}` = {queue_depth} × C (`include_deferred`). Stage wall = last `end_date` − "
            f"first `start_date` of the `generate_image` instances (metadata DB).",
            main_table,
            f"Worker slots while the provider had tasks in flight (samples every {interval:g} s: task "
            "instance states read from the metadata DB (read-only SELECTs; the REST API would load the "
            "api-server the tasks talk to), processes with psutil, the provider's tasks in flight from the fake; "
            "'running' = `generate_image` instances in state running; 'task processes' = this Airflow's "
            "`airflow worker -- <ti id>` processes (any task); 'worker time per segment' = Σ running × "
            "sample interval ÷ N, the worker time each segment cost):",
            slot_table,
            *(
                [
                    "CeleryExecutor against LocalExecutor (same scenario, same pool, one invocation): worker "
                    "time per segment as above.",
                    executors,
                ]
                if executors
                else []
            ),
            "Where the time over the bound goes (from the same samples; ±0.5 s):",
            loss_table,
            "Provider side (fake Runway counters):",
            provider_table,
            "Seed baseline (ThreadPoolExecutor(3) in one process, same fake, same poll interval):",
            base_table,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scenario",
        action="append",
        type=Scenario.parse,
        help="N:C:L:poll (repeatable); default: the issue's",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run (12:3:3:1); never writes RESULTS.md")
    parser.add_argument(
        "--queue-depth",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[QUEUE_DEPTH],
        help="pool slots = depth × C; a comma list runs each scenario at each depth (default: 2, the product's)",
    )
    parser.add_argument(
        "--executor",
        action="append",
        choices=sorted(EXECUTORS),
        help="repeatable; default: local, and celery where PostgreSQL and Redis run locally",
    )
    parser.add_argument("--parallelism", type=int, default=8, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument("--interval", type=float, default=0.5, help="sampling interval, seconds")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the seed ThreadPoolExecutor baseline"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run Airflow without a bytecode cache (this machine's PYTHONDONTWRITEBYTECODE=1 as is)",
    )
    parser.add_argument(
        "--heading",
        default=HEADING,
        help=f"the RESULTS.md section to write (default {HEADING!r}; another keeps that one, e.g. for one executor)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home and data")
    args = parser.parse_args()
    exit_on_sigterm()
    scenarios: list[Scenario] = args.scenario or (QUICK if args.quick else ISSUE)
    if not args.executor:
        args.executor = ["local"] if (reason := missing_services()) else ["local", "celery"]
        if reason:
            print(f"[fan-out] CeleryExecutor not measured: {reason}", flush=True)
    header = "\n".join(
        [
            f"Machine: {machine()}.",
            f"Command: `{command_line()}`.",
            bytecode_note(enabled=not args.no_bytecode_cache),
            "Goal: image-stage wall ≤ 1.05 × ceil(N/C)·L; no worker slot held while waiting on the provider.",
        ]
    )
    tmp = Path(tempfile.mkdtemp(prefix="vp-bench-fanout-"))
    first = scenarios[0]
    results: list[AirflowResult] = []
    baselines: dict[Scenario, BaselineResult] = {}

    def publish(pending: str = "") -> None:
        text = report(
            results,
            baselines,
            header=header,
            interval=args.interval,
            queue_depth="/".join(map(str, args.queue_depth)),
            parallelism=args.parallelism,
        )
        if not (args.quick or args.no_write):
            write_section(args.heading, text + (f"\n\n({pending})" if pending else ""))
        if not pending:
            print("\n" + text)

    for executor in args.executor:
        with (
            FakeRunwayProcess(
                api_key=API_KEY, concurrency=first.c, image_latency=first.latency, video_latency=first.latency
            ) as fake,
            started_airflow(
                tmp / executor,
                executor=executor,
                bytecode_cache=not args.no_bytecode_cache,
                dag_files=[PIPELINE_DAG],
                parallelism=args.parallelism,
                celery_workers=CELERY_WORKERS,
                extra_env=fake.connection_env(),
            ) as airflow,
        ):
            print(f"[fan-out] {EXECUTORS[executor]} up at {airflow.base_url}", flush=True)
            for scenario in scenarios:
                for depth in args.queue_depth:
                    result = run_airflow_scenario(airflow, fake, scenario, depth, args.interval)
                    results.append(result)
                    print(
                        f"[fan-out]   image stage {result.stage_s:.1f} s, bound {scenario.bound:.0f} s, "
                        f"ratio {result.ratio:.3f}",
                        flush=True,
                    )
        publish("seed baselines: still running or not finished")  # keep what is measured if a later part dies
    if not args.no_baseline:
        for scenario in scenarios:
            # A fresh fake per baseline: a clean provider queue, and nothing left over from the Airflow runs.
            with FakeRunwayProcess(
                api_key=API_KEY, concurrency=scenario.c, image_latency=scenario.latency, video_latency=1.0
            ) as fake:
                baselines[scenario] = seed_baseline(fake, scenario)
            print(f"[fan-out]   seed baseline {baselines[scenario].wall_s:.1f} s", flush=True)
    publish()
    if not (args.quick or args.no_write):
        print(f"\nwrote the {args.heading!r} section of bench/RESULTS.md")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
