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

STORAGE_URL_VARIABLE = "video_pipeline_storage_url"
AWS_CONN_ID = "aws_default"
RUNWAY_CONN_ID = "runway_default"
NOTIFY_CONN_ID = "video_pipeline_notify"
#: Provider pools, created with ``--include-deferred`` so tasks waiting on the provider count against them.
#: Size = the provider's concurrency × a queue depth (2), so the provider always has queued work.
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


RUNWAY_POLL_VARIABLE = "video_pipeline_runway_poll_seconds"
RUNWAY_POLL_DEFAULT_S = 5.0
#: Runway asks clients to poll a task no more often than every 5 s.
RUNWAY_POLL_MIN_S = 5.0
#: Longer only delays the download of an output whose URL expires (24–48 h); it saves nothing.
RUNWAY_POLL_MAX_S = 300.0
#: The floor for a Runway API on this machine's loopback (the fake server of the tests and demos): it is not
#: Runway's service, so Runway's minimum does not apply, but a poll loop must never spin.
LOOPBACK_POLL_MIN_S = 0.05


def runway_poll_seconds(runway_conn_id: str = RUNWAY_CONN_ID) -> float:
    """How often the triggerer polls a Runway task: the Variable (default 5 s), clamped to
    [``RUNWAY_POLL_MIN_S``, ``RUNWAY_POLL_MAX_S``] with a warning naming the value that was clamped. A value that
    is not a number (or NaN) gives the default, with a warning. Only when the connection's API host is a loopback
    address (a fake Runway on this machine) is the floor ``LOOPBACK_POLL_MIN_S`` instead of Runway's 5 s."""
    raw = Variable.get(RUNWAY_POLL_VARIABLE, default=None)
    if raw is None or not str(raw).strip():
        return RUNWAY_POLL_DEFAULT_S
    try:
        value = float(str(raw).strip())
    except ValueError:
        value = math.nan
    if math.isnan(value):
        log.warning(
            "%s=%r is not a number of seconds; polling every %g s",
            RUNWAY_POLL_VARIABLE,
            raw,
            RUNWAY_POLL_DEFAULT_S,
        )
        return RUNWAY_POLL_DEFAULT_S
    floor = LOOPBACK_POLL_MIN_S if _runway_on_loopback(runway_conn_id) else RUNWAY_POLL_MIN_S
    clamped = min(max(value, floor), RUNWAY_POLL_MAX_S)
    if clamped != value:
        why = "Runway asks for at least 5 s" if clamped == RUNWAY_POLL_MIN_S else "outside the sane range"
        log.warning(
            "%s=%r is outside [%g, %g] s (%s); polling every %g s",
            RUNWAY_POLL_VARIABLE,
            raw,
            floor,
            RUNWAY_POLL_MAX_S,
            why,
            clamped,
        )
    return clamped


def _runway_on_loopback(runway_conn_id: str) -> bool:
    """Whether the Runway connection points at this machine's loopback (127.0.0.0/8, ::1, ``localhost``)."""
    try:
        host = BaseHook.get_connection(runway_conn_id).host or ""
    except Exception:  # no such connection: the submission will say so; here the strict floor applies
        return False
    name = urlsplit(host if "://" in host else f"//{host}").hostname or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


RUNWAY_IMAGE_SOURCE_VARIABLE = "video_pipeline_runway_image_source"


def runway_image_source() -> str:
    """How an image reaches image_to_video: ``upload`` (data URI, or Runway's uploads endpoint when larger
    than 5 MB; works everywhere) or ``presigned`` (an https presigned S3 URL; S3 must be reachable by Runway)."""
    return str(Variable.get(RUNWAY_IMAGE_SOURCE_VARIABLE, default="upload"))


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
