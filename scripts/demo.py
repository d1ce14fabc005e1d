"""`make demo`: run examples/jobs/demo.json through both gates on an embedded Airflow, then stop it. The demo
speaks: each segment's narration is voiced offline and the segment lasts as long as it is spoken.

At each gate it prints what a reviewer would look at (the preview files and the form's URL) and approves:
interactively on a terminal, automatically with AUTO_APPROVE=1 or without a TTY. KEEP_RUNNING=1 leaves Airflow
up afterwards so you can browse the UI (stop it with Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from video_pipeline.approval import variable_key
from video_pipeline.contact_sheets import sheet_pages
from video_pipeline.layout import JobLayout
from video_pipeline.media.probe import probe
from video_pipeline.models import Manifest
from video_pipeline_dev.local import REPO, LocalAirflow

DAG_ID = "video_generation"
JOB = REPO / "examples" / "jobs" / "demo.json"


def ask(stage: str) -> str:
    if os.environ.get("AUTO_APPROVE") == "1" or not sys.stdin.isatty():
        print(f"  → approving {stage} (AUTO_APPROVE or no TTY)")
        return "approve"
    while True:
        answer = input(f"  Approve {stage}? [a]pprove / [r]eject: ").strip().lower()
        if answer in ("a", "approve", ""):
            return "approve"
        if answer in ("r", "reject"):
            return "reject"


def review(airflow: LocalAirflow, run_id: str, job_id: str, stage: str, data: Path) -> str:
    task_id = f"{stage}_gate"
    print(f"\n⏸  {task_id}: waiting for a reviewer")
    airflow.wait_for_task_state(DAG_ID, run_id, task_id, {"deferred", "success", "skipped"}, timeout=300)
    manifest = Manifest.model_validate_json((data / JobLayout(job_id).manifest).read_text())
    sheets = sheet_pages(manifest.job, stage, manifest.segments)  # type: ignore[arg-type]
    for sheet in sheets:
        print(f"  contact sheet of segments {sheet.label}: {data / sheet.key}")
    folder = data / JobLayout(job_id).root / stage
    for path in sorted(folder.iterdir())[: 5 if stage == "images" else 3]:
        print(f"  preview: {path}")
    print(f"  form:    {airflow.base_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{task_id}/required_actions")
    decision = ask(stage)
    key = variable_key(job_id, stage)  # type: ignore[arg-type]
    print(f"  (same as: airflow variables set {key} {decision})")
    airflow.set_variable(key, decision)
    return decision


def main() -> int:
    started = time.monotonic()
    data = REPO / ".data"
    job = json.loads(JOB.read_text())
    airflow = LocalAirflow(home=REPO / ".airflow", storage_url=data.as_uri())
    print(f"Starting Airflow (api-server, scheduler, dag-processor, triggerer) in {airflow.home} …")
    with airflow:
        print(f"Airflow is up at {airflow.base_url} ({time.monotonic() - started:.0f} s)")
        run_id = airflow.trigger(DAG_ID, job)
        print(f"Triggered {DAG_ID} run {run_id} for job {job['job_id']!r}")
        for stage in ("images", "clips"):
            if review(airflow, run_id, job["job_id"], stage, data) == "reject":
                break
        state = airflow.wait_for_run(DAG_ID, run_id, timeout=300)
        manifest = Manifest.from_json((data / JobLayout(job["job_id"]).manifest).read_bytes())
        print(f"\nRun {run_id}: {state}; job status {manifest.status}")
        if manifest.final:
            final = Path(urlparse(data.as_uri()).path) / manifest.final.key
            probed = probe(final)
            print(f"final.mp4: {final}")
            planned = sum(s.fitted_s or s.duration_s for s in manifest.segments)
            print(
                f"  {probed.duration_s:.2f} s, {probed.width}x{probed.height} {probed.codec}, "
                f"{probed.frame_count} frames (planned {planned:.2f} s), streams {manifest.final.streams}"
            )
            for segment in manifest.segments:
                heard = manifest.final.narration.get(segment.index)
                print(
                    f"  seg {segment.index:03d}: {segment.fitted_s or segment.duration_s:.2f} s, narration spoken "
                    f"{segment.narration_s or 0:.2f} s"
                    + (f", heard {heard[0]:.2f}–{heard[1]:.2f} s" if heard else "")
                )
            if manifest.final.subtitles_key:
                print(f"captions: {Path(urlparse(data.as_uri()).path) / manifest.final.subtitles_key}")
            print(f"  stage wall times: {manifest.timings_s}")
        print(f"manifest:  {data / JobLayout(job['job_id']).manifest}")
        print(f"UI:        {airflow.base_url}/dags/{DAG_ID}/runs/{run_id}")
        print(f"Demo wall time: {time.monotonic() - started:.0f} s")
        if os.environ.get("KEEP_RUNNING") == "1":
            print("KEEP_RUNNING=1: Airflow stays up; Ctrl-C to stop.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        else:
            print("Stopping Airflow (KEEP_RUNNING=1 keeps it up to browse the UI).")
    return 0 if state == "success" or manifest.status == "rejected" else 1


if __name__ == "__main__":
    sys.exit(main())
