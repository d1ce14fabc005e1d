"""Provider clients that report each API call's latency and each error's class as metrics
(``video_pipeline.provider.<provider>.<call>``, ``video_pipeline.provider_errors.<provider>.<class>``): an
error a call raises, and a provider task that its status reports failed.

``ProviderHook`` hands these out instead of the provider's own clients, so every caller (the segment tasks, the
trigger in the triggerer, the salvage, the stop handlers) is measured without knowing it. Everything but the
port's calls passes straight through to the wrapped client.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from video_pipeline.providers.port import AsyncRemoteClient, ProviderError, RemoteClient, RemoteStatus
from video_pipeline_airflow import metrics

#: The port's calls (``video_pipeline.providers.port``), each timed under its own name.
CALLS = frozenset({"submit_image", "submit_clip", "status", "outputs", "download", "cancel"})


def error_class(exc: BaseException) -> str:
    """A provider error's class for the metric: the port's action, or ``unexpected`` for anything else."""
    return str(exc.action) if isinstance(exc, ProviderError) else "unexpected"


def count_task_failure(provider: str, result: Any) -> None:
    """A status that says the provider task failed is a provider error too (reported, not raised)."""
    if isinstance(result, RemoteStatus) and result.terminal and (failure := result.failure()) is not None:
        metrics.provider_error(provider, error_class(failure))


class MeteredClient:
    """A :class:`RemoteClient` that times each port call and counts its errors by class.

    :param client: the provider's client.
    :param provider: the provider's registry name (the metrics' dimension).
    """

    def __init__(self, client: RemoteClient, provider: str) -> None:
        self._client = client
        self._provider = provider

    def __enter__(self) -> MeteredClient:
        self._client.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.__exit__(*exc)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._client, attribute)
        if attribute not in CALLS:
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                result = value(*args, **kwargs)
            except Exception as exc:
                metrics.provider_error(self._provider, error_class(exc))
                raise
            finally:
                metrics.provider_call(
                    self._provider, attribute, timedelta(seconds=time.monotonic() - started)
                )
            count_task_failure(self._provider, result)
            return result

        return call


class AsyncMeteredClient:
    """An :class:`AsyncRemoteClient` that times each port call and counts its errors by class.

    :param client: the provider's async client.
    :param provider: the provider's registry name (the metrics' dimension).
    """

    def __init__(self, client: AsyncRemoteClient, provider: str) -> None:
        self._client = client
        self._provider = provider

    async def __aenter__(self) -> AsyncMeteredClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.__aexit__(*exc)

    def __getattr__(self, attribute: str) -> Any:
        value = getattr(self._client, attribute)
        if attribute not in CALLS:
            return value

        async def call(*args: Any, **kwargs: Any) -> Any:
            started = time.monotonic()
            try:
                result = await value(*args, **kwargs)
            except Exception as exc:
                metrics.provider_error(self._provider, error_class(exc))
                raise
            finally:
                metrics.provider_call(
                    self._provider, attribute, timedelta(seconds=time.monotonic() - started)
                )
            count_task_failure(self._provider, result)
            return result

        return call
