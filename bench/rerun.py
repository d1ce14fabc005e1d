"""Re-run benchmark: the same Runway job twice on real Airflow; the second run must cost no provider call.

    .venv/bin/python -m bench.rerun                  # 20 segments, C = 5, image 40 s, clip 60 s, poll 5 s
    .venv/bin/python -m bench.rerun --quick          # 4 segments, C = 2, 3 s / 4 s, poll 1 s (never writes)

A real api-server, scheduler, dag-processor and triggerer (SQLite + LocalExecutor) run ``video_generation`` with
provider ``runway`` (against the fake Runway server, its own process) and ``approval: none``: images, clips,
assembly and publish. Then the identical spec (same job id, prompts, seed) is triggered again. Wall time of a
run = the DAG run's end − start (REST). Provider calls per run come from the fake's counters (reset in between).
Pools ``video_images`` / ``video_clips`` = 2 × C (the product's rule); poll interval = the Variable
``video_pipeline_poll_seconds`` (production default 5 s). The default latencies are Runway's typical ones
(docs/notes/runway-api.md: ~40 s an image, ~60 s a 5–10 s clip); the ratio depends on them, so the table states them.

Goal: 0 provider POSTs in the second run; second ÷ first wall ≤ 0.2.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._harness import (
    DAG_ID,
    PIPELINE_DAG,
    FakeRunwayProcess,
    RunTimes,
    bench_airflow,
    bytecode_note,
    command_line,
    exit_on_sigterm,
    load_now,
    machine,
    md_table,
    run_times,
    stamp,
    task_summaries,
    verdict,
    wait_for_run,
    write_section,
)
from video_pipeline.models import Manifest
from video_pipeline_airflow.pools import QUEUE_DEPTH
from video_pipeline_airflow.settings import CLIP_POOL, IMAGE_POOL, POLL_VARIABLE
from video_pipeline_dev.local import LocalAirflow

HEADING = "## Re-run"
GOAL_RATIO = 0.2
API_KEY = "key_bench_rerun"


@dataclass(frozen=True)
class Params:
    n: int
    c: int
    image_latency: float
    video_latency: float
    poll: float
    duration: int

    def label(self) -> str:
        return (
            f"N={self.n}, C={self.c}, image L={self.image_latency:g} s, clip L={self.video_latency:g} s, "
            f"poll {self.poll:g} s, clips {self.duration} s"
        )


@dataclass
class RunResult:
    times: RunTimes
    stages: dict[str, float]
    provider: dict[str, Any]
    image_hits: int
    clip_hits: int
    retries: int
    load: str

    @property
    def posts(self) -> int:
        return int(sum(self.provider["posts"].values()))

    @property
    def polls(self) -> int:
        return int(sum(self.provider["polls"].values()))


def job_spec(job_id: str, p: Params) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "title": f"Re-run bench {job_id}",
        "segments": [
            {"prompt": f"{job_id} segment {i}: a lantern over dark water", "duration_s": p.duration}
            for i in range(1, p.n + 1)
        ],
        "ratio": "1280:720",
        "provider": "runway",
        "budget_credits": 10_000_000,  # a paid provider needs a budget (policy: video_pipeline_require_budget)
        "seed": 5,
        "approval": "none",
    }


def one_run(
    airflow: LocalAirflow, fake: FakeRunwayProcess, spec: dict[str, Any], label: str, timeout: float
) -> RunResult:
    fake.reset_counters()
    print(f"[rerun] {label} run of {spec['job_id']}", flush=True)
    run_id = airflow.trigger(DAG_ID, spec)
    wait_for_run(airflow, DAG_ID, run_id, timeout=timeout)
    times = run_times(airflow, DAG_ID, run_id)
    provider = fake.stats()
    if times.state != "success":
        raise RuntimeError(f"{label} run {run_id} ended {times.state}; see {airflow.home}/logs")
    summaries = task_summaries(airflow, DAG_ID, run_id)
    stages = {t: summaries[t].wall_s for t in ("generate_image", "animate_segment", "assemble")}
    storage_root = Path(airflow.env()["AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL"].removeprefix("file://"))
    manifest = Manifest.from_json((storage_root / "jobs" / spec["job_id"] / "manifest.json").read_bytes())
    print(f"[rerun]   {times.wall_s:.1f} s, POSTs {provider['posts']}", flush=True)
    return RunResult(
        times=times,
        stages=stages,
        provider=provider,
        image_hits=sum(s.image_cache_hit for s in manifest.segments),
        clip_hits=sum(s.clip_cache_hit for s in manifest.segments),
        retries=sum(t.retries for t in summaries.values()),
        load=load_now(),
    )


def report(first: RunResult, second: RunResult, p: Params, *, header: str, parallelism: int) -> str:
    ratio = second.times.wall_s / first.times.wall_s
    goal_table = md_table(
        ["measure", "goal", "measured", "verdict"],
        [
            ["provider POSTs in the second run", "0", f"**{second.posts}**", verdict(second.posts == 0)],
            [
                "wall second ÷ first",
                f"≤ {GOAL_RATIO}",
                f"**{ratio:.3f}** ({second.times.wall_s:.1f} s ÷ {first.times.wall_s:.1f} s)",
                verdict(
                    ratio <= GOAL_RATIO, f"{second.times.wall_s - GOAL_RATIO * first.times.wall_s:.1f} s over"
                ),
            ],
        ],
    )
    rows = []
    for name, r in (("first", first), ("second", second)):
        rows.append(
            [
                name,
                f"{r.times.wall_s:.1f} s",
                f"{r.stages['generate_image']:.1f} s",
                f"{r.stages['animate_segment']:.1f} s",
                f"{r.stages['assemble']:.1f} s",
                r.posts,
                r.polls,
                r.provider["downloads"],
                f"{r.image_hits} / {r.clip_hits} of {p.n}",
                r.provider["duplicate_submissions"],
                r.retries,
                r.load,
            ]
        )
    detail = md_table(
        [
            "run",
            "wall",
            "images stage",
            "clips stage",
            "assemble task",
            "POSTs",
            "polls (GET task)",
            "downloads",
            "cache hits images / clips",
            "duplicate submissions",
            "task retries",
            "load avg after",
        ],
        rows,
    )
    return "\n\n".join(
        [
            header,
            f"{p.label()}; SQLite + LocalExecutor, parallelism {parallelism}; pools `{IMAGE_POOL}` / "
            f"`{CLIP_POOL}` = {QUEUE_DEPTH * p.c}; `approval: none`; identical spec both times. Stage windows "
            "= first start → last end of the task's instances (metadata DB).",
            goal_table,
            detail,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=5, help="the fake account's concurrency C")
    parser.add_argument("--image-latency", type=float, default=40.0, help="Runway's typical ~40 s")
    parser.add_argument("--video-latency", type=float, default=60.0, help="Runway's typical ~60 s")
    parser.add_argument("--poll", type=float, default=5.0, help="video_pipeline_poll_seconds")
    parser.add_argument("--duration", type=int, default=5, help="duration_s of every clip")
    parser.add_argument("--parallelism", type=int, default=8, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument(
        "--quick", action="store_true", help="4 segments, C 2, 3 s / 4 s, poll 1; never writes"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="run Airflow without a bytecode cache (this machine's PYTHONDONTWRITEBYTECODE=1 as is)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home and data")
    args = parser.parse_args()
    exit_on_sigterm()
    p = (
        Params(4, 2, 3.0, 4.0, 1.0, args.duration)
        if args.quick
        else Params(
            args.segments, args.concurrency, args.image_latency, args.video_latency, args.poll, args.duration
        )
    )
    header = "\n".join(
        [
            f"Machine: {machine()}.",
            f"Command: `{command_line()}`.",
            bytecode_note(enabled=not args.no_bytecode_cache),
            "Goal: the second run of an identical job makes 0 provider POSTs and takes ≤ 0.2 × the first.",
        ]
    )
    tmp = Path(tempfile.mkdtemp(prefix="vp-bench-rerun-"))
    with FakeRunwayProcess(
        api_key=API_KEY, concurrency=p.c, image_latency=p.image_latency, video_latency=p.video_latency
    ) as fake:
        airflow = bench_airflow(
            tmp,
            bytecode_cache=not args.no_bytecode_cache,
            dag_files=[PIPELINE_DAG],
            parallelism=args.parallelism,
            extra_env=fake.connection_env(),
        )
        airflow.pool_slots = QUEUE_DEPTH * p.c
        started = time.perf_counter()
        with airflow:
            print(f"[rerun] Airflow up in {time.perf_counter() - started:.0f} s", flush=True)
            airflow.set_variable(POLL_VARIABLE, str(p.poll))
            spec = job_spec(f"rerun-{p.n}-{stamp()}", p)
            timeout = 3600 + 10 * (p.image_latency + p.video_latency) * p.n / p.c
            first = one_run(airflow, fake, spec, "first", timeout)
            second = one_run(airflow, fake, spec, "second", timeout)
    text = report(first, second, p, header=header, parallelism=args.parallelism)
    print("\n" + text)
    if not (args.quick or args.no_write):
        write_section(HEADING, text)
        print("\nwrote the '## Re-run' section of bench/RESULTS.md")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
