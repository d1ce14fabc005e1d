"""moto's S3 server over real HTTP, restartable to simulate a storage outage."""

from __future__ import annotations

from moto.server import ThreadedMotoServer

from video_pipeline_dev.local import free_port


class MotoS3:
    """moto's S3 server on a fixed loopback port. ``stop``/``start`` make an outage: moto keeps its data in this
    process, so objects written before the outage are there after it."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port)
        self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
