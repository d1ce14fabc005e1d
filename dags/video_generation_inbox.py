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
from typing import Any

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from video_pipeline_airflow import nightly
from video_pipeline_airflow.assets import inbox_asset

INBOX_QUEUE_URL = os.environ.get("VIDEO_PIPELINE_INBOX_QUEUE_URL") or None
POKE_SECONDS = int(os.environ.get("VIDEO_PIPELINE_NIGHTLY_POKE_SECONDS", "60"))


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
    @task
    def intake() -> list[dict[str, Any]]:
        return nightly.intake(only_moved=True)

    @task(trigger_rule="all_done", map_index_template="{{ task.op_kwargs['spec']['name'] }}")
    def settle(spec: dict[str, Any]) -> str:
        return nightly.settle(spec)

    specs = intake()
    triggered = TriggerDagRunOperator.partial(
        task_id="trigger_job",
        trigger_dag_id="video_generation",
        skip_when_already_exists=True,
        wait_for_completion=True,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(specs.map(nightly.trigger_kwargs))
    triggered >> settle.expand(spec=specs)


video_generation_inbox()
