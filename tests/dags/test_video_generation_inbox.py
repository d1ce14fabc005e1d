"""The on-arrival intake: scheduled on the inbox asset, watched on the configured queue, wired as the nightly
batch is (intake → one triggered run per spec, waiting deferred → settle)."""

from __future__ import annotations

from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import Asset

from video_pipeline_airflow.assets import INBOX_ASSET_NAME, INBOX_WATCHER_NAME
from video_pipeline_airflow.triggers.inbox_queue import InboxQueueTrigger

DAGS = Path(__file__).resolve().parents[2] / "dags"
QUEUE = "https://sqs.eu-west-1.amazonaws.com/123456789012/video-inbox"


def inbox_dag(monkeypatch: pytest.MonkeyPatch, queue: str | None) -> object:
    if queue:
        monkeypatch.setenv("VIDEO_PIPELINE_INBOX_QUEUE_URL", queue)
    else:
        monkeypatch.delenv("VIDEO_PIPELINE_INBOX_QUEUE_URL", raising=False)
    bag = DagBag(dag_folder=str(DAGS / "video_generation_inbox.py"), bundle_name="tests")
    assert bag.import_errors == {}
    return bag.dags["video_generation_inbox"]


def scheduled_asset(dag: object) -> Asset:
    (asset,) = dag.timetable.asset_condition.objects  # type: ignore[attr-defined]
    assert isinstance(asset, Asset) and asset.name == INBOX_ASSET_NAME
    return asset


def test_with_a_queue_the_inbox_asset_is_watched_on_it(monkeypatch: pytest.MonkeyPatch) -> None:
    (watcher,) = scheduled_asset(inbox_dag(monkeypatch, QUEUE)).watchers
    assert watcher.name == INBOX_WATCHER_NAME
    assert isinstance(watcher.trigger, InboxQueueTrigger)
    assert (watcher.trigger.queue_url, watcher.trigger.aws_conn_id) == (QUEUE, "aws_default")


def test_without_a_queue_the_asset_has_no_watcher(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scheduled_asset(inbox_dag(monkeypatch, None)).watchers == []


def test_wired_like_the_nightly_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    dag = inbox_dag(monkeypatch, QUEUE)
    assert "trigger_job" in dag.get_task("intake").downstream_task_ids  # type: ignore[attr-defined]
    assert "settle" in dag.get_task("trigger_job").downstream_task_ids  # type: ignore[attr-defined]
    trigger_job = dag.get_task("trigger_job")  # type: ignore[attr-defined]
    partial = trigger_job.partial_kwargs
    assert trigger_job.operator_class.__name__ == "TriggerDagRunOperator"
    assert partial["trigger_dag_id"] == "video_generation"
    assert partial["skip_when_already_exists"] and partial["wait_for_completion"] and partial["deferrable"]
