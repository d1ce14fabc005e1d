"""
### Nightly batch of video jobs

Every night (cron from env `VIDEO_PIPELINE_NIGHTLY_CRON`, default 02:00 UTC, no catch-up):

`intake` → `trigger_job` (one mapped `video_generation` run per valid spec) → `settle` (one per spec)

- **intake** moves every `<storage>/inbox/*.json` to `processing/` under a fresh time-stamped name (unread), then
  validates what moved: every file that cannot run (a link or fifo, unreadable, too big, nested too deep, not
  JSON, an invalid spec, a duplicate) moves to `inbox/rejected/` with an `.error.txt` giving the reason, and the
  batch goes on. Nothing is deleted, overwritten or lost.
- **trigger_job** triggers `video_generation` with the spec as conf and a run id derived from the spec's content,
  so a re-run of this DAG never triggers the same spec twice (the existing run is skipped), then waits deferred.
- **settle** moves each spec to `done/` or `failed/` as its run ends.

Gates in these runs follow each spec's `gate_timeout` / `on_gate_timeout` (reject by default, never approve
silently). `max_active_runs=1` and the provider pools keep a large inbox from flooding the provider.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import dag

from video_pipeline_airflow import nightly

NIGHTLY_CRON = os.environ.get("VIDEO_PIPELINE_NIGHTLY_CRON", "0 2 * * *")


@dag(
    dag_id="video_generation_nightly",
    schedule=NIGHTLY_CRON,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["video", "nightly"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
)
def video_generation_nightly() -> None:
    nightly.intake_batch()


video_generation_nightly()
