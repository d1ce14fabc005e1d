"""Polls a Runway task from the triggerer until it ends, holding no worker slot meanwhile.

Serialises only the provider task id, the connection id and the poll settings (never the key), so it survives
a triggerer restart: the new triggerer re-creates it and resumes polling the same provider task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from video_pipeline.providers.runway import RunwayError, poll_delay
from video_pipeline_airflow.hooks.runway import RunwayHook
from video_pipeline_airflow.triggers.settle import wait_until_settled


class RunwayTaskTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        provider_task_id: str,
        runway_conn_id: str = "runway_default",
        poll_interval: float = 5.0,
        settle_until: float | None = None,
    ) -> None:
        super().__init__()
        self.provider_task_id = provider_task_id
        self.runway_conn_id = runway_conn_id
        self.poll_interval = poll_interval
        self.settle_until = settle_until

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "provider_task_id": self.provider_task_id,
                "runway_conn_id": self.runway_conn_id,
                "poll_interval": self.poll_interval,
                "settle_until": self.settle_until,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await wait_until_settled(self.settle_until)
        client = await RunwayHook(self.runway_conn_id).aget_client()
        last_status = None
        try:
            while True:
                try:
                    status = await client.get_task(self.provider_task_id)
                except RunwayError as exc:  # already retried inside the client; the task decides what next
                    yield TriggerEvent(
                        {
                            "provider_task_id": self.provider_task_id,
                            "status": "ERROR",
                            "error": str(exc),
                            "error_type": type(exc).__name__,
                        }
                    )
                    return
                if status.status != last_status or status.status == "RUNNING":
                    self.log.info(
                        "Runway task %s: %s%s",
                        self.provider_task_id,
                        status.status,
                        f" {status.progress:.0%}" if status.progress is not None else "",
                    )
                    last_status = status.status
                if status.terminal:
                    yield TriggerEvent(status.model_dump(mode="json", by_alias=True))
                    return
                await asyncio.sleep(poll_delay(self.poll_interval))
        finally:
            await client.aclose()
