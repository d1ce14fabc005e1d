"""Notifications through a real Apprise connection (``json://``) to a local HTTP receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from video_pipeline_airflow.notify import notify


@pytest.fixture
def receiver() -> Iterator[tuple[int, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], received
    server.shutdown()


def test_sends_through_the_notify_connection(
    receiver: tuple[int, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, received = receiver
    conn = {"conn_type": "apprise", "extra": {"config": {"path": f"json://127.0.0.1:{port}/"}}}
    monkeypatch.setenv("AIRFLOW_CONN_VIDEO_PIPELINE_NOTIFY", json.dumps(conn))
    assert notify("fox: images approve", "approve by ana via ui (round 1)") is True
    assert [(r["title"], r["message"]) for r in received] == [
        ("fox: images approve", "approve by ana via ui (round 1)")
    ]


def test_without_a_connection_nothing_is_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_VIDEO_PIPELINE_NOTIFY", raising=False)
    assert notify("t", "b") is False


def test_an_unreachable_target_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "apprise", "extra": {"config": {"path": "json://127.0.0.1:9/"}}}
    monkeypatch.setenv("AIRFLOW_CONN_VIDEO_PIPELINE_NOTIFY", json.dumps(conn))
    notify("t", "b")  # Apprise logs the delivery failure; the pipeline carries on
