"""The api-server app of the plugin: the media route with the review page's router, built on its first request.

Airflow imports every plugin module in every process that loads plugins, and every task process does (it looks
for listeners). Building the app there cost each task about 0.8 s of CPU (FastAPI, Airflow's REST security
and execution API, the review page), about as much as the rest of a short task's start (measured with
``python -X importtime``, Airflow 3.3.2). Only the api-server ever calls the app, so the plugin mounts
:class:`AppOnFirstCall`, which imports the real one (:func:`build`) when the first request reaches it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.types import Receive, Scope, Send


@functools.cache
def build() -> FastAPI:
    """The preview route's app with the review page's routes on it (built once per process)."""
    from video_pipeline_airflow.media_route import app
    from video_pipeline_airflow.review_route import router

    app.include_router(router)
    return app


class AppOnFirstCall:
    """An ASGI app that stands for the app ``build`` returns and calls ``build`` when it is first called.

    :param build: takes nothing and returns an ASGI app; its imports are what is put off.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build
        self._app: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """The real app, built once (the api-server may call from more than one thread)."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self.build()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.load()(scope, receive, send)
