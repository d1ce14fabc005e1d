"""
### Job specs on arrival

Runs as soon as a spec lands in the inbox, beside the nightly batch (`video_generation_nightly`), with the same
rules: scheduled on the asset `video_pipeline_inbox`, whose events come from an asset watcher on the SQS queue
named by env `VIDEO_PIPELINE_INBOX_QUEUE_URL` (S3 object-created notifications of `<prefix>/inbox/*.json`;
README "Nightly batches"), or from anything that posts an event for the asset.

`intake` → `trigger_job` (one mapped `video_generation` run per valid spec) → `settle` (one per spec)

- **intake** moves every `<storage>/inbox/*.json` to `processing/` under a fresh time-stamped name (unread),
  then validates what *it* moved, exactly as the nightly batch does: every file that cannot run moves to
  `inbox/rejected/` with an `.error.txt`. What an earlier batch left in `processing/` is the nightly batch's.
- **trigger_job** triggers `video_generation` with the run id derived from the spec's content
  (`nightly__<job_id>__<hash>`, the nightly batch's), so the same spec twice — dropped twice, or taken by both
  batches — is one run; then waits deferred.
- **settle** moves each spec to `done/` or `failed/` as its run ends.

A notification that is lost only delays its spec to the next nightly batch: the inbox is the record.
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import dag

from video_pipeline_airflow import nightly
from video_pipeline_airflow.assets import inbox_asset

INBOX_QUEUE_URL = os.environ.get("VIDEO_PIPELINE_INBOX_QUEUE_URL") or None


@dag(
    dag_id="video_generation_inbox",
    schedule=[inbox_asset(INBOX_QUEUE_URL)],
    catchup=False,
    # Each batch waits deferred for its runs (gates may take hours): arrivals meanwhile get their own batch.
    max_active_runs=16,
    doc_md=__doc__,
    tags=["video", "inbox"],
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
)
def video_generation_inbox() -> None:
    nightly.intake_batch(only_moved=True)


video_generation_inbox()
