"""The pipeline's Airflow assets: what other DAGs schedule on.

**Finished videos.** ``publish`` emits one asset event per finished job through the alias
``video_pipeline_final_video``. The asset it resolves to is the job's final video, named by its storage URI
(``s3://bucket/prefix/jobs/<job_id>/final.mp4`` or ``file:///root/jobs/<job_id>/final.mp4``; name = URI), so
each job has its own asset and a re-run of a job updates the same one. A downstream DAG
schedules on the alias (every finished video) or on one job's asset (``Asset("s3://…/jobs/<job_id>/final.mp4")``),
and reads :class:`video_pipeline.published.PublishedVideo` from the event's ``extra``
(``examples/dags/video_catalogue.py``).

**The inbox.** ``video_pipeline_inbox`` stands for "a job spec arrived in the inbox": the DAG
``video_generation_inbox`` is scheduled on it. On S3 storage whose bucket sends object-created notifications
of ``<prefix>/inbox/*.json`` to an SQS queue, an asset watcher on that queue (:class:`InboxQueueTrigger`) makes
the events; anything else can make one too (``POST /api/v2/assets/events``, a task's outlet).
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias, AssetWatcher

from video_pipeline.published import PublishedVideo
from video_pipeline_airflow.settings import AWS_CONN_ID
from video_pipeline_airflow.triggers.inbox_queue import InboxQueueTrigger

FINAL_VIDEO_ALIAS_NAME = "video_pipeline_final_video"
FINAL_VIDEO_ALIAS = AssetAlias(FINAL_VIDEO_ALIAS_NAME)


def final_video_asset(published: PublishedVideo) -> Asset:
    """The asset of one job's finished video: named by its storage URI."""
    # No group: Airflow creates an asset an alias resolves to in the default group, whatever the task says.
    return Asset(uri=published.final_uri, name=published.final_uri)


INBOX_ASSET_NAME = "video_pipeline_inbox"
INBOX_WATCHER_NAME = "video_pipeline_inbox_queue"


def inbox_asset(queue_url: str | None) -> Asset:
    """The inbox's asset, watched on ``queue_url`` (an SQS queue of the inbox bucket's object-created
    notifications; None: no watcher, events come from elsewhere)."""
    watchers = []
    if queue_url:
        trigger = InboxQueueTrigger(queue_url=queue_url, aws_conn_id=AWS_CONN_ID)
        watchers.append(AssetWatcher(name=INBOX_WATCHER_NAME, trigger=trigger))
    return Asset(name=INBOX_ASSET_NAME, watchers=watchers)
