"""Deployment settings read from Airflow Variables (which ``AIRFLOW_VAR_*`` env vars also provide)."""

from __future__ import annotations

import ipaddress
import logging
import math
import os
from pathlib import Path
from urllib.parse import urlsplit

from airflow.sdk import BaseHook, Variable

from video_pipeline.policy import SETTINGS as POLICY_VARIABLES
from video_pipeline.policy import Policy, parse_policy
from video_pipeline.providers.port import RemoteProvider

STORAGE_URL_VARIABLE = "video_pipeline_storage_url"
AWS_CONN_ID = "aws_default"
NOTIFY_CONN_ID = "video_pipeline_notify"
#: Provider pools, created with ``--include-deferred`` so tasks waiting on the provider count against them.
#: Size = the provider's concurrency × a queue depth (2), so the provider always has queued work.
NARRATION_POOL = "video_narration"
IMAGE_POOL = "video_images"
CLIP_POOL = "video_clips"
DEFAULT_POOL_SLOTS = 4
GATE_POLL_VARIABLE = "video_pipeline_gate_poll_seconds"

log = logging.getLogger(__name__)


def storage_url() -> str:
    """``video_pipeline_storage_url`` (Variable or ``AIRFLOW_VAR_…``), else ``file://<cwd>/.data``."""
    url = Variable.get(STORAGE_URL_VARIABLE, default=None)
    if url:
        return str(url)
    return (Path(os.getcwd()) / ".data").resolve().as_uri()


def gate_poll_seconds() -> float:
    """How often a gate checks for a Variable decision; short in tests, 10 s by default."""
    return float(Variable.get(GATE_POLL_VARIABLE, default="10"))


POLL_VARIABLE = "video_pipeline_poll_seconds"
POLL_DEFAULT_S = 5.0
#: Longer only delays the download of an output whose URL expires (hours); it saves nothing.
POLL_MAX_S = 300.0
#: The floor for a provider API on this machine's loopback (the fake servers of the tests and demos): it is
#: not the provider's service, so its minimum does not apply, but a poll loop must never spin.
LOOPBACK_POLL_MIN_S = 0.05


def poll_seconds(provider: RemoteProvider, conn_id: str | None = None) -> float:
    """How often the triggerer polls a provider task: the Variable (default 5 s), clamped to [the provider's
    minimum (``min_poll_s``), ``POLL_MAX_S``] with a warning naming the value that was clamped. A value that is
    not a number (or NaN) gives the default, with a warning. Only when the provider's connection points at this
    machine's loopback (a fake server) is the floor ``LOOPBACK_POLL_MIN_S`` instead of the provider's minimum."""
    raw = Variable.get(POLL_VARIABLE, default=None)
    floor = LOOPBACK_POLL_MIN_S if _on_loopback(conn_id or provider.conn_id) else provider.min_poll_s
    if raw is None or not str(raw).strip():
        return max(POLL_DEFAULT_S, floor)
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if math.isnan(value):
        log.warning(
            "%s=%r is not a number of seconds; polling every %g s", POLL_VARIABLE, raw, POLL_DEFAULT_S
        )
        return max(POLL_DEFAULT_S, floor)
    clamped = min(max(value, floor), POLL_MAX_S)
    if clamped != value:
        why = (
            f"{provider.name} asks for at least {provider.min_poll_s:g} s"
            if clamped == floor
            else "outside the sane range"
        )
        log.warning(
            "%s=%r is outside [%g, %g] s (%s); polling every %g s",
            POLL_VARIABLE,
            raw,
            floor,
            POLL_MAX_S,
            why,
            clamped,
        )
    return clamped


def _on_loopback(conn_id: str) -> bool:
    """Whether the connection points at this machine's loopback (127.0.0.0/8, ::1, ``localhost``)."""
    try:
        host = BaseHook.get_connection(conn_id).host or ""
    except Exception:  # no such connection: the submission will say so; here the strict floor applies
        return False
    name = urlsplit(host if "://" in host else f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


IMAGE_SOURCE_VARIABLE = "video_pipeline_image_source"


def image_source() -> str:
    """How an approved image reaches a remote clip model: ``upload`` (the provider's own way to receive a file:
    a data URI or its uploads endpoint; works everywhere) or ``presigned`` (an https presigned S3 URL; the S3
    storage must be reachable by the provider)."""
    return str(Variable.get(IMAGE_SOURCE_VARIABLE, default="upload"))


def job_policy() -> Policy:
    """The deployment's bounds on job specs (``video_pipeline.policy``): the Variables
    ``video_pipeline_nightly_approval``, ``video_pipeline_max_budget_credits`` and
    ``video_pipeline_require_budget`` (or their ``AIRFLOW_VAR_…`` env vars)."""
    return parse_policy({name: Variable.get(name, default=None) for name in POLICY_VARIABLES})


PROVIDER_TIMEOUT_VARIABLE = "video_pipeline_provider_timeout_seconds"
DEFAULT_PROVIDER_TIMEOUT_S = 7200.0


def provider_timeout_seconds() -> float:
    """How long a provider task (image or clip) may take from its submission before it is cancelled and its
    segment fails: a task stuck PENDING/THROTTLED must not hold a pool slot forever. Default 2 h."""
    value = float(Variable.get(PROVIDER_TIMEOUT_VARIABLE, default=str(DEFAULT_PROVIDER_TIMEOUT_S)))
    if not value > 0:  # also refuses nan
        raise ValueError(f"{PROVIDER_TIMEOUT_VARIABLE} must be a positive number of seconds, got {value!r}")
    return value
