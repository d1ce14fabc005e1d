"""The plugin's api-server app: task processes import the plugin without building it; the api-server's first
request builds it, once."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from video_pipeline_airflow import web_app
from video_pipeline_airflow.web_app import AppOnFirstCall

PLUGINS_FOLDER = Path(__file__).resolve().parents[2] / "plugins"
BUILT: list[FastAPI] = []


def counted_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    BUILT.append(app)
    return app


def test_importing_the_plugin_builds_no_web_app() -> None:
    """What a task process does when it looks for listeners: no FastAPI, no Airflow REST internals, no routes."""
    heavy = (
        "fastapi",
        "starlette",
        "airflow.api_fastapi.execution_api.app",
        "airflow.api_fastapi.core_api.security",
        "video_pipeline_airflow.media_route",
        "video_pipeline_airflow.review_route",
    )
    probe = (
        f"import sys; sys.path.insert(0, {str(PLUGINS_FOLDER)!r})  # as Airflow puts its plugins folder\n"
        "import video_pipeline_plugin\n"
        f"print(','.join(m for m in {heavy!r} if m in sys.modules))\n"
        "print(len(video_pipeline_plugin.VideoPipelinePlugin.listeners))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    loaded, listeners = result.stdout.splitlines()
    assert loaded == ""
    assert listeners == "1"


def test_the_app_is_built_on_the_first_request_and_only_once() -> None:
    BUILT.clear()
    lazy = AppOnFirstCall(counted_app)
    assert BUILT == []
    with TestClient(lazy) as client:
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(client.get("/ping"))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [answer.json() for answer in answers] == [{"pong": "yes"}] * 8
    assert len(BUILT) == 1


def test_the_built_app_serves_the_media_and_review_routes() -> None:
    app: Any = web_app.build()
    paths = {getattr(route, "path", "") for route in app.routes}
    assert "/files/{key:path}" in paths
    assert any(path.startswith("/review/") for path in paths)
    assert web_app.build() is app
