"""Registers the video pipeline's Airflow extensions: the preview route used by the gate forms (api-server) and
the listener that reports runs and segment tasks stopped by people (every process; see ``stop.py``)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from video_pipeline_airflow import listeners as stop_listeners
from video_pipeline_airflow import stop_handlers  # noqa: F401  (registers the paid-work stop handler)
from video_pipeline_airflow.media_route import app
from video_pipeline_airflow.preview_links import URL_PREFIX


class VideoPipelinePlugin(AirflowPlugin):
    name = "video_pipeline"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Video pipeline previews"}]  # noqa: RUF012
    listeners = [stop_listeners]  # noqa: RUF012
