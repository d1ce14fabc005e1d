"""Runway credentials from the ``runway_default`` connection (or ``AIRFLOW_CONN_RUNWAY_DEFAULT``).

Connection: host = API base URL (default https://api.dev.runwayml.com), password = API key. The key is handed
to the client and nowhere else: it is never logged, put in XCom, a trigger's serialized kwargs or a manifest.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from video_pipeline.providers.runway import DEFAULT_BASE_URL, AsyncRunwayClient, RunwayClient


class RunwayHook(BaseHook):
    conn_name_attr = "runway_conn_id"
    default_conn_name = "runway_default"
    conn_type = "http"
    hook_name = "Runway"

    def __init__(self, runway_conn_id: str = default_conn_name, **client_kwargs: Any) -> None:
        super().__init__()
        self.runway_conn_id = runway_conn_id
        self.client_kwargs = client_kwargs

    @staticmethod
    def _base_url(conn: Any) -> str:
        host = (conn.host or "").rstrip("/")
        if not host:
            return DEFAULT_BASE_URL
        if "://" not in host:
            scheme = conn.schema or "https"
            host = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        return host

    def _credentials(self, conn: Any) -> tuple[str, str]:
        if not conn.password:
            raise ValueError(f"connection {self.runway_conn_id!r} has no API key (password)")
        return self._base_url(conn), conn.password

    def get_client(self) -> RunwayClient:
        base_url, key = self._credentials(self.get_connection(self.runway_conn_id))
        return RunwayClient(base_url, key, **self.client_kwargs)

    async def aget_client(self) -> AsyncRunwayClient:
        base_url, key = self._credentials(await self.aget_connection(self.runway_conn_id))
        return AsyncRunwayClient(base_url, key, **self.client_kwargs)
