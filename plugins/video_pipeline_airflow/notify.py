"""Notifications to the optional ``video_pipeline_notify`` connection (Apprise: Slack, email, webhooks, …).

Everything is also in the task log; a notification that cannot be sent is logged and never fails a task.
Connection: conn_type ``apprise``, extra ``{"config": {"path": "slack://…"}}`` (any Apprise URL, or a list).
"""

from __future__ import annotations

import logging

from airflow.sdk import BaseHook

from video_pipeline_airflow.settings import NOTIFY_CONN_ID

log = logging.getLogger(__name__)


def notify(title: str, body: str) -> bool:
    """Send one notification; False when no connection is configured (delivery errors are only logged).

    :param title: the notification's title (also logged).
    :param body: its text (also logged); never a secret or a signed URL.
    """
    log.info("Notification: %s — %s", title, body)
    try:
        BaseHook.get_connection(NOTIFY_CONN_ID)
    except Exception:
        return False
    from airflow.providers.apprise.hooks.apprise import AppriseHook

    try:
        AppriseHook(apprise_conn_id=NOTIFY_CONN_ID).notify(body=body, title=title)
    except Exception as exc:  # a chat outage must not fail video generation
        log.warning("Could not send the notification %r: %s", title, exc)
        return False
    return True
