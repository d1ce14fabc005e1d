"""A StatsD server for tests: a UDP socket on loopback that keeps the metric lines it receives."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType


class StatsdListener:
    """Receives StatsD datagrams on ``127.0.0.1:<port>`` in a thread and keeps each line (``name:value|type``)
    whose name contains ``keep`` (Airflow's own metrics are many: a long session would hoard them)."""

    def __init__(self, keep: str = "") -> None:
        self.keep = keep
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="statsd-listener", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            lines = [line for line in data.decode("utf-8", "replace").splitlines() if self.keep in line]
            with self._lock:
                self._lines += lines

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def metrics(self, name: str) -> list[tuple[float, str]]:
        """``(value, type)`` of every line received for the metric ``name`` (prefix included)."""
        found = []
        for line in self.lines():
            metric, _, rest = line.partition(":")
            if metric == name:
                value, _, kind = rest.partition("|")
                found.append((float(value), kind.split("|")[0]))
        return found

    def wait_for(self, name: str, timeout: float = 10.0) -> list[tuple[float, str]]:
        deadline = time.monotonic() + timeout
        while not (found := self.metrics(name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return found

    def __enter__(self) -> StatsdListener:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()
