"""The pipeline's Airflow assets: what other DAGs schedule on.

**Finished videos.** ``publish`` emits one asset event per finished job through the alias
``video_pipeline_final_video``. The asset it resolves to is the job's final video, named by its storage URI
(``s3://bucket/prefix/jobs/<job_id>/final.mp4`` or ``file:///root/jobs/<job_id>/final.mp4``; name = URI), so
each job has its own asset and a re-run of a job updates the same one. A downstream DAG
schedules on the alias (every finished video) or on one job's asset (``Asset("s3://…/jobs/<job_id>/final.mp4")``),
and reads :class:`video_pipeline.published.PublishedVideo` from the event's ``extra``
(``examples/dags/video_catalogue.py``).
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

from video_pipeline.published import PublishedVideo

FINAL_VIDEO_ALIAS_NAME = "video_pipeline_final_video"
FINAL_VIDEO_ALIAS = AssetAlias(FINAL_VIDEO_ALIAS_NAME)


def final_video_asset(published: PublishedVideo) -> Asset:
    """The asset of one job's finished video: named by its storage URI."""
    # No group: Airflow creates an asset an alias resolves to in the default group, whatever the task says.
    return Asset(uri=published.final_uri, name=published.final_uri)
