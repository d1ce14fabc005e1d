"""Scale benchmark: a whole storyboard job of N segments on real Airflow against Airflow's own floor.

    .venv/bin/python -m bench.scale                      # N = 100, then N = 1000
    .venv/bin/python -m bench.scale --quick              # N = 10 smoke run (never writes RESULTS.md)
    .venv/bin/python -m bench.scale --segments 100,1000,2000 --pool-slots 8

One Airflow (api-server, scheduler, dag-processor, triggerer; SQLite + LocalExecutor) with a DAGs folder holding
the product's ``dags/video_generation.py`` and ``bench/dags/bench_noop_fanout.py`` (symlinks), env
``VIDEO_PIPELINE_MAX_SEGMENTS`` = the largest N. For each N, in this order:

1. Floor: ``bench_noop_fanout`` with ``n = N`` — the pipeline's task graph (1 → N mapped → N mapped → 1 → N
   mapped → 1 → 1 → 1 = 3N + 5 task instances) of no-op tasks. Wall = the DAG run's end − start.
2. Pipeline: ``video_generation``, provider ``storyboard`` (renders locally), ``approval: none``, N segments of
   ``duration_s`` 2 at 1280:720 without a voice: narration (nothing to speak), images, clips, assembly (stream copy, soft subtitles off as there is no
   narration, poster and GIF preview) and publish. Wall = the run's end − start. Meanwhile every 0.5 s, psutil
   RSS of this Airflow's task processes (``airflow worker -- <ti id>``; their children such as ffmpeg apart).

Render time is measured in this process without Airflow, before Airflow starts: the domain functions the tasks
call (``generate_image`` / ``animate_segment`` with the storyboard provider into a LocalStorage) for a sample
of segments, serially; render(N) = N × (mean image + mean clip) + the assembly time the ``assemble`` task
measured (``final.assembly_s`` in the manifest; domain code, timed inside the task).

Per-task cost of each mapped stage = its window × the task slots it had ÷ N (slots: its pool, capped by the
executor's parallelism, the DAG's ``max_active_tasks`` and N; the floor's: those caps), for the pipeline and the
floor; the pipeline's overhead = that − the render per task. Its ratio to the first N's says whether a task's
cost grows with N.

Goal: pipeline wall ≤ 1.3 × floor + render(N); per-task overhead at the largest N within 1.15 × the first N's;
peak task-process RSS < 400 MB and flat in N.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    BENCH_DAGS,
    DAG_ID,
    PIPELINE_DAG,
    RunTimes,
    Sampler,
    airflow_processes,
    bench_airflow,
    bytecode_note,
    command_line,
    dag_parse_seconds,
    exit_on_sigterm,
    load_now,
    machine,
    md_table,
    mib,
    rendered_fields_bytes,
    rss_probe,
    run_times,
    spread,
    stamp,
    task_summaries,
    verdict,
    wait_for_dag,
    wait_for_run,
    write_section,
)
from video_pipeline.generation import animate_segment, generate_image
from video_pipeline.models import MAX_SEGMENTS_ENV, JobSpec, Manifest
from video_pipeline.providers.storyboard import StoryboardProvider
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.settings import CLIP_POOL, IMAGE_POOL, NARRATION_POOL
from video_pipeline_dev.local import LocalAirflow

HEADING = "## Scale"
NOOP_DAG = "bench_noop_fanout"
GOAL_FACTOR = 1.3
GOAL_RSS = 400 * 2**20
GOAL_PER_TASK_GROWTH = 1.15
MAX_ACTIVE_TASKS = 16  # both DAGs'
#: The pipeline's mapped stages: task id, the floor's stage of the same shape, the pool it runs in.
MAPPED_STAGES = (
    ("narrate_segment", "stage_n", NARRATION_POOL),
    ("generate_image", "stage_a", IMAGE_POOL),
    ("animate_segment", "stage_b", CLIP_POOL),
)


@dataclass
class Render:
    sample: int
    image_s: float
    clip_s: float

    def total(self, n: int) -> float:
        return n * (self.image_s + self.clip_s)

    def per_task(self, task_id: str) -> float:
        """In-process render time of one task of a mapped stage (narration: no voice, nothing spoken)."""
        return {"generate_image": self.image_s, "animate_segment": self.clip_s}.get(task_id, 0.0)


@dataclass
class SizeResult:
    n: int
    floor: RunTimes
    floor_stages: dict[str, float]
    pipeline: RunTimes
    stages: dict[str, float]
    assembly_s: float
    final_duration_s: float
    rss: list[tuple[float, dict[str, Any]]]
    windows: dict[str, tuple[float, float]]
    retries: int
    rtif_bytes: int
    parse_s: list[float]
    floor_parse_s: list[float]
    floor_rtif_bytes: int
    load: str


def job_spec(job_id: str, n: int, duration: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "title": f"Scale bench {job_id}",
        "segments": [
            {"prompt": f"{job_id} segment {i}: a lantern over dark water", "duration_s": duration}
            for i in range(1, n + 1)
        ],
        "ratio": "1280:720",
        "provider": "storyboard",
        "seed": 3,
        "approval": "none",
    }


def measure_render(sample: int, duration: int, root: Path) -> Render:
    """The tasks' domain work without Airflow: image then clip for ``sample`` segments, serially."""
    storage = LocalStorage(root / "render-data")
    job = JobSpec.model_validate(job_spec(f"render-{stamp()}", sample, duration))
    provider = StoryboardProvider()
    image_s, clip_s = [], []
    for segment in segments_for(job):
        started = time.perf_counter()
        with_image = generate_image(storage, job, segment, provider)
        image_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        animate_segment(storage, job, with_image, provider)
        clip_s.append(time.perf_counter() - started)
    return Render(sample, statistics.fmean(image_s), statistics.fmean(clip_s))


def stage_windows(airflow: LocalAirflow, dag_id: str, run_id: str) -> dict[str, tuple[float, float]]:
    return {
        task_id: (t.start.timestamp(), t.end.timestamp())
        for task_id, t in task_summaries(airflow, dag_id, run_id).items()
    }


def run_size(airflow: LocalAirflow, n: int, duration: int, interval: float) -> SizeResult:
    print(f"[scale] N={n}: no-op floor ({3 * n + 5} task instances)", flush=True)
    floor_run = airflow.trigger(NOOP_DAG, {"n": n})
    wait_for_run(airflow, NOOP_DAG, floor_run, timeout=3 * 3600)
    floor = run_times(airflow, NOOP_DAG, floor_run)
    floor_windows = stage_windows(airflow, NOOP_DAG, floor_run)
    print(f"[scale]   floor {floor.wall_s:.1f} s ({floor.state})", flush=True)

    job_id = f"scale-{n}-{stamp()}"
    print(f"[scale] N={n}: pipeline job {job_id}", flush=True)
    run_id = airflow.trigger(DAG_ID, job_spec(job_id, n, duration))
    with Sampler(rss_probe(airflow_processes(airflow)), interval=interval) as sampler:
        wait_for_run(airflow, DAG_ID, run_id, timeout=6 * 3600)
    load = load_now()
    pipeline = run_times(airflow, DAG_ID, run_id)
    summaries = task_summaries(airflow, DAG_ID, run_id)
    if pipeline.state != "success":
        raise RuntimeError(f"pipeline run {run_id} {pipeline.state}: {summaries}")
    windows = stage_windows(airflow, DAG_ID, run_id)
    retries = sum(t.retries for t in summaries.values())
    storage_root = Path(airflow.env()["AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL"].removeprefix("file://"))
    manifest = Manifest.from_json((storage_root / "jobs" / job_id / "manifest.json").read_bytes())
    assert manifest.final is not None
    print(f"[scale]   pipeline {pipeline.wall_s:.1f} s", flush=True)
    return SizeResult(
        n=n,
        floor=floor,
        floor_stages={k: e - s for k, (s, e) in floor_windows.items()},
        pipeline=pipeline,
        stages={k: e - s for k, (s, e) in windows.items()},
        assembly_s=float(manifest.final.assembly_s or 0.0),
        final_duration_s=manifest.final.duration_s,
        rss=sampler.rows,
        windows=windows,
        retries=retries,
        rtif_bytes=rendered_fields_bytes(airflow, DAG_ID, run_id),
        parse_s=dag_parse_seconds(airflow.home, DAG_ID, run_id, "animate_segment"),
        floor_parse_s=dag_parse_seconds(airflow.home, NOOP_DAG, floor_run, "stage_b"),
        floor_rtif_bytes=rendered_fields_bytes(airflow, NOOP_DAG, floor_run),
        load=load,
    )


def peak(
    rows: list[tuple[float, dict[str, Any]]], key: str, window: tuple[float, float] | None = None
) -> int:
    values = [s[key] for _, s in rows if window is None or window[0] <= s["wall"] <= window[1]]
    return max(values, default=0)


def per_task_table(results: list[SizeResult], render: Render, pools: dict[str, int], parallelism: int) -> str:
    """Per mapped stage and N: a task's cost (window × slots ÷ N), its overhead (− render) and the floor's, each
    with its ratio to the first N's; then the verdict on the growth goal at the largest N."""

    def costs(r: SizeResult, task_id: str, floor: str, pool: str) -> tuple[float, float, float]:
        slots = min(pools[pool], parallelism, MAX_ACTIVE_TASKS, r.n)
        floor_slots = min(parallelism, MAX_ACTIVE_TASKS, r.n)
        cost = r.stages[task_id] * slots / r.n
        return cost, cost - render.per_task(task_id), r.floor_stages[floor] * floor_slots / r.n

    first, rows, growth = results[0], [], {}
    for r in results:
        row: list[object] = [r.n]
        for task_id, floor, pool in MAPPED_STAGES:
            cost, overhead, floor_cost = costs(r, task_id, floor, pool)
            _, base, floor_base = costs(first, task_id, floor, pool)
            growth[task_id] = overhead / base if base > 0 else float("inf")
            row.append(
                f"{cost:.3f} s − {render.per_task(task_id):.3f} s = **{overhead:.3f} s** "
                f"(×{growth[task_id]:.2f}); floor {floor_cost:.3f} s (×{floor_cost / floor_base:.2f})"
            )
        rows.append(row)
    table = md_table(
        [
            "N",
            *(
                f"{task_id}: per task − render = overhead (× N={first.n}); floor"
                for task_id, _, _ in MAPPED_STAGES
            ),
        ],
        rows,
    )
    if len(results) < 2:
        return table
    worst = max(growth, key=lambda k: growth[k])
    ok = growth[worst] <= GOAL_PER_TASK_GROWTH
    return (
        f"{table}\n\nPer-task overhead at N={results[-1].n} vs N={first.n} (goal ≤ ×{GOAL_PER_TASK_GROWTH}): "
        f"largest growth ×{growth[worst]:.2f} ({worst}): {verdict(ok, 'grows with N')}."
    )


def report(
    results: list[SizeResult], render: Render, *, header: str, pools: dict[str, int], parallelism: int
) -> str:
    rows = []
    for r in results:
        render_n = render.total(r.n) + r.assembly_s
        budget = GOAL_FACTOR * r.floor.wall_s + render_n
        ok = r.pipeline.wall_s <= budget
        rows.append(
            [
                r.n,
                f"{r.floor.wall_s:.1f} s ({(3 * r.n + 5) / r.floor.wall_s:.1f} tasks/s)",
                f"{render_n:.1f} s",
                f"{budget:.1f} s",
                f"**{r.pipeline.wall_s:.1f} s**",
                f"{(r.pipeline.wall_s - render_n) / r.floor.wall_s:.2f}",
                verdict(ok, f"{r.pipeline.wall_s - budget:.0f} s over"),
                r.load,
            ]
        )
    wall_table = md_table(
        [
            "N",
            "floor: no-op DAG (3N+5 tasks)",
            "render(N) in-process",
            "goal 1.3 × floor + render",
            "pipeline wall",
            "(pipeline − render) ÷ floor",
            "verdict",
            "load avg after",
        ],
        rows,
    )
    stage_rows = [
        [
            r.n,
            " / ".join(f"{r.floor_stages[floor]:.1f} s" for _, floor, _ in MAPPED_STAGES),
            f"{r.stages['narrate_segment']:.1f} s",
            f"{r.stages['generate_image']:.1f} s",
            f"{r.n * render.image_s:.1f} s",
            f"{r.stages['animate_segment']:.1f} s",
            f"{r.n * render.clip_s:.1f} s",
            f"{r.stages['assemble']:.1f} s (ffmpeg {r.assembly_s:.1f} s)",
            f"{r.final_duration_s:.0f} s",
            r.retries,
            f"{mib(r.rtif_bytes)} (no-op DAG {mib(r.floor_rtif_bytes)})",
            f"{spread(r.parse_s)} (no-op DAG {spread(r.floor_parse_s)})",
        ]
        for r in results
    ]
    stage_table = md_table(
        [
            "N",
            "floor: mapped stages n / a / b",
            "narration stage",
            "images stage",
            "N × image render",
            "clips stage",
            "N × clip render",
            "assemble task",
            "final.mp4",
            "task retries",
            "rendered fields stored",
            "DAG parse per task start, median / p90 / max: clips (no-op stage b)",
        ],
        stage_rows,
    )
    rss_rows = []
    for r in results:
        task_peak = peak(r.rss, "task_rss_max")
        rss_rows.append(
            [
                r.n,
                f"**{mib(task_peak)}**",
                mib(peak(r.rss, "task_rss_max", r.windows["generate_image"])),
                mib(peak(r.rss, "task_rss_max", r.windows["animate_segment"])),
                mib(peak(r.rss, "task_rss_max", r.windows["assemble"])),
                mib(peak(r.rss, "child_rss_max")),
                mib(peak(r.rss, "worker_rss_max")),
                peak(r.rss, "tasks"),
                len(r.rss),
                verdict(task_peak < GOAL_RSS, f"{mib(task_peak)} ≥ 400 MiB"),
            ]
        )
    rss_table = md_table(
        [
            "N",
            "peak task process RSS",
            "… images",
            "… clips",
            "… assemble",
            "peak child (ffmpeg) RSS",
            "peak executor worker/supervisor RSS",
            "max task processes at once",
            "samples",
            "verdict (< 400 MB)",
        ],
        rss_rows,
    )
    flat = ""
    if len(results) >= 2:
        small, large = results[0], results[-1]
        a, b = peak(small.rss, "task_rss_max"), peak(large.rss, "task_rss_max")
        ok = b <= a * 1.15
        flat = (
            f"Flat in N: peak task RSS {mib(a)} at N={small.n} vs {mib(b)} at N={large.n} "
            f"(×{b / a:.2f}; goal flat, taken as ≤ ×1.15): {verdict(ok, 'grows with N')}."
        )
    return "\n\n".join(
        [
            header,
            f"SQLite + LocalExecutor, parallelism {parallelism}, `max_active_tasks` 16 (both DAGs); pools "
            + ", ".join(f"`{k}` = {v}" for k, v in pools.items())
            + f". Render sample: {render.sample} segments in-process, mean image {render.image_s:.2f} s, "
            f"mean clip {render.clip_s:.2f} s (wall, one at a time).",
            wall_table,
            "Where the time goes (windows from the task instances' start/end dates):",
            stage_table,
            f"Per-task cost of each mapped stage: window × task slots ÷ N, the slot-seconds a task took (slots: "
            "the stage's pool, at most the "
            f"parallelism {parallelism}, `max_active_tasks` {MAX_ACTIVE_TASKS} and N; the floor's: the same but "
            "the pool), minus the render per task (in-process) = the overhead:",
            per_task_table(results, render, pools, parallelism),
            "Memory (psutil RSS every sample interval; task process = `airflow worker -- <ti id>`, the "
            "process that runs the task's code):",
            rss_table,
            flat,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", default="100,1000", help="comma-separated N values (default 100,1000)")
    parser.add_argument(
        "--quick", action="store_true", help="N = 10, render sample 3; never writes RESULTS.md"
    )
    parser.add_argument("--duration", type=int, default=2, help="duration_s of every segment (2 = cheapest)")
    parser.add_argument("--render-sample", type=int, default=20, help="segments rendered in-process")
    parser.add_argument("--parallelism", type=int, default=8, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument(
        "--pool-slots", type=int, help="slots of video_images/video_clips (default: the product's default)"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="RSS sampling interval, seconds")
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run Airflow without a bytecode cache (this machine's PYTHONDONTWRITEBYTECODE=1 as is)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home and data")
    args = parser.parse_args()
    exit_on_sigterm()
    sizes = [10] if args.quick else [int(x) for x in args.segments.split(",")]
    sample = 3 if args.quick else args.render_sample
    header = "\n".join(
        [
            f"Machine: {machine()}.",
            f"Command: `{command_line()}`.",
            bytecode_note(enabled=not args.no_bytecode_cache),
            "Goal: pipeline wall ≤ 1.3 × the no-op floor + render time; per-task overhead of each mapped stage "
            f"at the largest N ≤ ×{GOAL_PER_TASK_GROWTH} the first N's; peak task-process RSS < 400 MB, flat in N. "
            "Measured: the whole job (narration without a voice, images, clips, assemble, publish) with "
            "`approval: none`.",
        ]
    )
    # The job's segment cap, for Airflow and for this process (it reads the manifests back).
    segment_cap = str(max(max(sizes), 1024))
    os.environ[MAX_SEGMENTS_ENV] = segment_cap
    tmp = Path(tempfile.mkdtemp(prefix="vp-bench-scale-"))
    print(f"[scale] render sample: {sample} segments in-process", flush=True)
    render = measure_render(sample, args.duration, tmp)
    print(f"[scale]   image {render.image_s:.2f} s, clip {render.clip_s:.2f} s", flush=True)
    airflow = bench_airflow(
        tmp,
        bytecode_cache=not args.no_bytecode_cache,
        dag_files=[PIPELINE_DAG, BENCH_DAGS / "bench_noop_fanout.py"],
        parallelism=args.parallelism,
        # Airflow refuses to map over more than [core] max_map_length items (default 1024).
        extra_env={MAX_SEGMENTS_ENV: segment_cap, "AIRFLOW__CORE__MAX_MAP_LENGTH": segment_cap},
    )
    airflow.pool_slots = args.pool_slots
    results = []
    with airflow:
        wait_for_dag(airflow, NOOP_DAG)
        pools = {}
        for name in (NARRATION_POOL, IMAGE_POOL, CLIP_POOL):
            response = airflow.api("GET", f"/api/v2/pools/{name}")
            response.raise_for_status()
            pools[name] = int(response.json()["slots"])
        for n in sizes:
            results.append(run_size(airflow, n, args.duration, args.interval))
            if n != sizes[-1] and not (args.quick or args.no_write):  # keep what is done if a later N dies
                partial = report(results, render, header=header, pools=pools, parallelism=args.parallelism)
                pending = ", ".join(str(m) for m in sizes[len(results) :])
                write_section(HEADING, partial + f"\n\n(N = {pending}: still running or not finished.)")
    text = report(results, render, header=header, pools=pools, parallelism=args.parallelism)
    print("\n" + text)
    if not (args.quick or args.no_write):
        write_section(HEADING, text)
        print("\nwrote the '## Scale' section of bench/RESULTS.md")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
