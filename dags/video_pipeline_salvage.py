"""
### Salvage paid provider work

Every 5 minutes (env `VIDEO_PIPELINE_SALVAGE_CRON`), one task, `sweep`, settles every provider task that is
recorded for a job (`jobs/<job_id>/provider-tasks/…`) but whose run is no longer active — it was marked failed
or success, deleted, rejected, or failed — so paid work is neither lost nor left running:

- **succeeded** → the output is downloaded, checked and stored in the content-addressed cache (a later run with
  the same inputs pays nothing), and recorded as `salvaged`;
- **still queued or running** → cancelled at the provider (`DELETE`), recorded as `cancelled` (refund unknown);
- **failed or cancelled** → the record is cleared;
- **output URL expired** (providers keep outputs hours to days) → recorded as `lost` spend in the manifest, never
  silently paid again.

Everything goes into the job's spend ledger and manifest. The next run of a job does the same for that job
before it starts.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from video_pipeline_airflow import stages

SALVAGE_CRON = os.environ.get("VIDEO_PIPELINE_SALVAGE_CRON", "*/5 * * * *")


@dag(
    dag_id="video_pipeline_salvage",
    schedule=SALVAGE_CRON,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["video", "maintenance"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
)
def video_pipeline_salvage() -> None:
    @task
    def sweep(**context: Any) -> dict[str, list[str]]:
        return stages.salvage_sweep(context)

    sweep()


video_pipeline_salvage()
