"""Registers the video pipeline's api-server extension: the preview route used by the gate forms."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from video_pipeline_airflow import stop_handlers  # noqa: F401  (registers the paid-work stop handler)
from video_pipeline_airflow.preview_app import app
from video_pipeline_airflow.previews import URL_PREFIX


class VideoPipelinePlugin(AirflowPlugin):
    name = "video_pipeline"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Video pipeline previews"}]  # noqa: RUF012
