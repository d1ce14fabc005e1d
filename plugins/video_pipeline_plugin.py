"""Registers the video pipeline's Airflow extensions: the preview route and the review page (api-server; the page
is a tab of every task instance in the UI) and the listener that reports runs and segment tasks stopped by
people (every process; see ``stop.py``).

Every Airflow process imports this module, each task process too, so it imports only what listeners need: the
api-server's app is built on its first request (``web_app.py`` says what that saves)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from video_pipeline_airflow import listeners as stop_listeners
from video_pipeline_airflow import stop_handlers  # noqa: F401  (registers the paid-work stop handler)
from video_pipeline_airflow.preview_links import REVIEW_ROUTE, URL_PREFIX
from video_pipeline_airflow.web_app import AppOnFirstCall
from video_pipeline_airflow.web_app import build as build_web_app


class VideoPipelinePlugin(AirflowPlugin):
    name = "video_pipeline"
    fastapi_apps = [  # noqa: RUF012
        {
            "app": AppOnFirstCall(build_web_app),
            "url_prefix": URL_PREFIX,
            "name": "Video pipeline previews",
        }
    ]
    listeners = [stop_listeners]  # noqa: RUF012
    # A tab on every task instance (3.3 has no per-operator filter: the page says when it is not a gate). The
    # relative href resolves against the UI's base URL; the UI fills the placeholders, URL-encoded.
    external_views = [  # noqa: RUF012
        {
            "name": "Review",
            "href": f"{URL_PREFIX.lstrip('/')}/review/{{DAG_ID}}/{{RUN_ID}}/{{TASK_ID}}/{{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": REVIEW_ROUTE,
        }
    ]
