"""Notifications to the optional ``video_pipeline_notify`` connection (Apprise: Slack, email, webhooks, …).

Everything is also in the task log; a notification that cannot be sent is logged and never fails a task.
Connection: conn_type ``apprise``, extra ``{"config": {"path": "slack://…"}}`` (any Apprise URL, or a list).
"""

from __future__ import annotations

import logging

from airflow.sdk import BaseHook

from video_pipeline_airflow.settings import NOTIFY_CONN_ID

log = logging.getLogger(__name__)


class NotConfigured(Exception):
    """The connection to notify does not exist: there is nobody to tell (not a delivery failure)."""


class NotDelivered(Exception):
    """Apprise could not deliver the notification to (all of) its targets."""


def send(title: str, body: str, conn_id: str = NOTIFY_CONN_ID) -> None:
    """Send one notification through the Apprise connection ``conn_id``, saying whether it went out.

    :param title: the notification's title.
    :param body: its text; never a secret or a signed URL.
    :param conn_id: the Airflow connection (type ``apprise``) that names the targets.
    :raises NotConfigured: no such connection.
    :raises NotDelivered: Apprise reported that a target did not take it.
    """
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception:
        raise NotConfigured(f"no connection {conn_id!r}") from None
    import apprise
    from airflow.providers.apprise.hooks.apprise import AppriseHook

    targets = apprise.Apprise()
    # The hook's own notify() drops Apprise's answer; its configuration step is what we need of it.
    AppriseHook(apprise_conn_id=conn_id).set_config_from_conn(conn=connection, apprise_obj=targets)
    if not targets.notify(body=body, title=title):
        raise NotDelivered(f"Apprise could not deliver {title!r} through {conn_id!r}")


def notify(title: str, body: str) -> bool:
    """Send one notification; False when no connection is configured (delivery errors are only logged).

    :param title: the notification's title (also logged).
    :param body: its text (also logged); never a secret or a signed URL.
    """
    log.info("Notification: %s — %s", title, body)
    try:
        send(title, body)
    except NotConfigured:
        return False
    except Exception as exc:  # a chat outage must not fail video generation
        log.warning("Could not send the notification %r: %s", title, exc)
        return False
    return True
