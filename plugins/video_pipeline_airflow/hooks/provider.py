"""A remote provider's (or a paid voice's) credentials from its Airflow connection (``<provider>_default``, e.g. set by
``AIRFLOW_CONN_<PROVIDER>_DEFAULT``), handed to the provider's client.

Connection: host = API base URL (default: the provider's), password = API key, extra = client settings
(``timeout``, ``max_retries``, ``backoff_base``, ``backoff_cap``). The key is handed to the client and nowhere
else: it is never logged, put in XCom, a trigger's serialized kwargs or a manifest.
"""

from __future__ import annotations

import json
from typing import Any, cast

from airflow.sdk import BaseHook

from video_pipeline.providers import registry
from video_pipeline.providers.port import (
    AsyncRemoteClient,
    Endpoint,
    RemoteClient,
    RemoteProvider,
    SpeechProvider,
)
from video_pipeline_airflow.metered_client import AsyncMeteredClient, MeteredClient


class ProviderHook(BaseHook):
    """Opens clients of one remote provider with the key of its connection; gives a paid voice its endpoint.

    :param provider: the provider's registry name (``video_pipeline.providers.registry``): a remote image/clip
        provider, or a voice with a connection.
    :param conn_id: the connection to read (default: the provider's own, e.g. ``<provider>_default``).
    """

    conn_name_attr = "conn_id"
    conn_type = "http"
    hook_name = "Video provider"

    def __init__(self, provider: str, conn_id: str | None = None) -> None:
        super().__init__()
        found: RemoteProvider | SpeechProvider = (
            registry.speech(provider) if provider in registry.speech_names() else registry.remote(provider)
        )
        if found.conn_id is None:
            raise ValueError(f"provider {provider!r} runs on this machine; it has no connection")
        self.provider = found
        self.conn_id: str = conn_id or found.conn_id

    def _endpoint(self, conn: Any) -> Endpoint:
        if not conn.password:
            raise ValueError(f"connection {self.conn_id!r} has no API key (password)")
        host = (conn.host or "").rstrip("/")
        if host and "://" not in host:
            host = f"{conn.schema or 'https'}://{host}" + (f":{conn.port}" if conn.port else "")
        extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else json.loads(conn.extra or "{}")
        return Endpoint(host or self.provider.default_base_url or None, conn.password, dict(extra or {}))

    def endpoint(self) -> Endpoint:
        return self._endpoint(self.get_connection(self.conn_id))

    def get_client(self) -> RemoteClient:
        """The provider's client, metered: each call's latency and each error's class become metrics."""
        client = self._remote().client(self.endpoint())
        return cast(RemoteClient, MeteredClient(client, self.provider.name))

    async def aget_client(self) -> AsyncRemoteClient:
        """The provider's async client (the trigger's), metered like :meth:`get_client`'s."""
        client = self._remote().async_client(self._endpoint(await self.aget_connection(self.conn_id)))
        return cast(AsyncRemoteClient, AsyncMeteredClient(client, self.provider.name))

    def _remote(self) -> RemoteProvider:
        if not isinstance(self.provider, RemoteProvider):
            raise ValueError(f"{self.provider.name} is a voice: it has no remote-task client")
        return self.provider
