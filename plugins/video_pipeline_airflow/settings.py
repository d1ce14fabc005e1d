"""Deployment settings read from Airflow Variables (which ``AIRFLOW_VAR_*`` env vars also provide)."""

from __future__ import annotations

import os
from pathlib import Path

from airflow.sdk import Variable

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


def runway_poll_seconds() -> float:
    """How often the triggerer polls a Runway task: ≥ 5 s in production (Runway asks for it), short in tests."""
    return float(Variable.get(RUNWAY_POLL_VARIABLE, default="5"))


RUNWAY_IMAGE_SOURCE_VARIABLE = "video_pipeline_runway_image_source"


def runway_image_source() -> str:
    """How an image reaches image_to_video: ``upload`` (data URI, or Runway's uploads endpoint when larger
    than 5 MB; works everywhere) or ``presigned`` (an https presigned S3 URL; S3 must be reachable by Runway)."""
    return str(Variable.get(RUNWAY_IMAGE_SOURCE_VARIABLE, default="upload"))


PROVIDER_TIMEOUT_VARIABLE = "video_pipeline_provider_timeout_seconds"
DEFAULT_PROVIDER_TIMEOUT_S = 7200.0


def provider_timeout_seconds() -> float:
    """How long a provider task (image or clip) may take from its submission before it is cancelled and its
    segment fails: a task stuck PENDING/THROTTLED must not hold a pool slot forever. Default 2 h."""
    value = float(Variable.get(PROVIDER_TIMEOUT_VARIABLE, default=str(DEFAULT_PROVIDER_TIMEOUT_S)))
    if not value > 0:  # also refuses nan
        raise ValueError(f"{PROVIDER_TIMEOUT_VARIABLE} must be a positive number of seconds, got {value!r}")
    return value
