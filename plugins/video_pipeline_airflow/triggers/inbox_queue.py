"""Wakes the inbox DAG when a job spec lands in an S3 inbox: S3 sends an object-created notification for
``<prefix>/inbox/*.json`` to an SQS queue, and this trigger (an asset watcher's, in the triggerer) turns the
queue's messages into events of the asset ``video_pipeline_inbox``.

A message is only a wake-up call: the inbox itself stays the record of what is pending, and the DAG it wakes
runs the same intake as the nightly batch (``video_pipeline.inbox``). So a message that is lost, duplicated or
late costs nothing but time: a spec never runs twice (its run id is derived from its content), and one whose
message never came is taken by the next nightly batch.

Messages are deleted after their event has been handed to the triggerer; a triggerer that dies in between
leaves them to be received again after the queue's visibility timeout (another, harmless, wake-up).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import unquote_plus

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from video_pipeline.inbox import INBOX

#: SQS's longest long poll: the receive call returns as soon as a message arrives, or after this long empty.
LONG_POLL_S = 20
#: After a failed receive (queue gone, network down): wait this long before the next try, and say so once.
RETRY_DELAY_S = 30.0
#: How many inbox keys an event names (its ``extra`` is shown in the UI; the count is always given).
MAX_KEYS_NAMED = 50


def inbox_keys(bodies: Iterable[str]) -> list[str]:
    """The inbox spec keys named by S3 object-created notifications (other messages, such as the
    ``s3:TestEvent`` S3 sends when the notification is configured, or keys in the inbox's subfolders such as
    ``inbox/rejected/``, name none), in order and once each."""
    keys: list[str] = []
    for body in bodies:
        try:
            records = json.loads(body).get("Records") or []
        except (ValueError, AttributeError):
            continue
        for record in records:
            if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith(
                "ObjectCreated"
            ):
                continue
            key = unquote_plus(str(((record.get("s3") or {}).get("object") or {}).get("key", "")))
            folder, _, name = key.rpartition("/")
            if (folder + "/").endswith(INBOX) and name.endswith(".json") and key not in keys:
                keys.append(key)
    return keys


class InboxQueueTrigger(BaseEventTrigger):
    """Long-polls an SQS queue of S3 object-created notifications and fires one event per batch of messages
    that names inbox specs: ``{"keys": [...], "count": n, "queue": <queue url>}``. Runs for as long as the
    asset watcher exists.

    :param queue_url: the SQS queue the inbox bucket notifies.
    :param aws_conn_id: the AWS connection (credentials, region, ``endpoint_url``); the storage's own.
    :param region_name: the queue's region, if not the connection's.
    :param wait_time_s: the long poll (at most 20 s; shorter only makes more empty receives).
    """

    def __init__(
        self,
        *,
        queue_url: str,
        aws_conn_id: str = "aws_default",
        region_name: str | None = None,
        wait_time_s: int = LONG_POLL_S,
    ) -> None:
        super().__init__()
        self.queue_url = queue_url
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.wait_time_s = min(max(int(wait_time_s), 0), LONG_POLL_S)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "queue_url": self.queue_url,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "wait_time_s": self.wait_time_s,
            },
        )

    def _client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.sqs import SqsHook

        return SqsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).get_conn()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # boto3 is synchronous: every call runs in a worker thread so the triggerer's loop never blocks (the
        # amazon provider's async client would need aiobotocore, whose botocore pin conflicts with ours).
        client: Any = None
        failing = False
        while True:
            try:
                if client is None:
                    client = await asyncio.to_thread(self._client)
                response = await asyncio.to_thread(
                    client.receive_message,
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_time_s,
                )
            except Exception as exc:
                if not failing:
                    self.log.warning(
                        "Inbox queue %s cannot be read (%s); trying again every %g s",
                        self.queue_url,
                        exc,
                        RETRY_DELAY_S,
                    )
                failing, client = True, None
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            if failing:
                self.log.info("Inbox queue %s can be read again", self.queue_url)
                failing = False
            messages = response.get("Messages") or []
            if not messages:
                continue
            keys = inbox_keys(str(m.get("Body", "")) for m in messages)
            if keys:
                self.log.info("%d new inbox spec(s): %s", len(keys), ", ".join(keys[:5]))
                yield TriggerEvent(
                    {"keys": keys[:MAX_KEYS_NAMED], "count": len(keys), "queue": self.queue_url}
                )
            await self._delete(client, messages)

    async def _delete(self, client: Any, messages: list[dict[str, Any]]) -> None:
        entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
        try:
            await asyncio.to_thread(client.delete_message_batch, QueueUrl=self.queue_url, Entries=entries)
        except Exception as exc:  # they come back after the visibility timeout: one more, harmless, wake-up
            self.log.warning("Could not delete %d message(s) from %s: %s", len(entries), self.queue_url, exc)
