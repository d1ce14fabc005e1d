"""A stop handler that records what it is handed, and on which thread."""

from __future__ import annotations

import threading

from video_pipeline_airflow.stop import Stop


class Recorder:
    def __init__(self) -> None:
        self.stops: list[Stop] = []
        self.threads: list[str] = []
        self.called = threading.Event()

    def __call__(self, stop: Stop) -> None:
        self.stops.append(stop)
        self.threads.append(threading.current_thread().name)
        self.called.set()
