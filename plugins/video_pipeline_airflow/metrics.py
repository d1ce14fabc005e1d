"""The pipeline's metrics, sent through Airflow's own metrics client, so they land wherever the deployment's
``[metrics]`` sends Airflow's (StatsD, DogStatsD or OpenTelemetry) under its prefix (``statsd_prefix``,
default ``airflow``). Nothing is sent unless a backend is on.

Names (a dimension is part of the name, as in Airflow's own StatsD names, so plain StatsD keeps it):

========================================================  =======  ============================================
``video_pipeline.credits_spent``                          counter  credits a run spent, counted when it ends
``video_pipeline.credits_spent.<stage>``                  counter  the same, per stage (``images``, ``clips``)
``video_pipeline.runs.<status>``                          counter  runs ended: succeeded/rejected/failed/stopped
``video_pipeline.segments_generated.<stage>``             counter  segment outputs made by a provider
``video_pipeline.segments_from_cache.<stage>``            counter  segment outputs found in the cache (free)
``video_pipeline.segments_redone.<stage>``                counter  segments a reviewer sent back (redo)
``video_pipeline.gate_wait.<stage>``                      timer    gate opened → answered (ms)
``video_pipeline.provider.<provider>.<call>``             timer    one provider API call (ms): ``submit_image``,
                                                                   ``submit_clip``, ``status``, ``outputs``,
                                                                   ``download``, ``cancel``
``video_pipeline.provider_errors.<provider>.<class>``     counter  provider errors by class: the port's action
                                                                   (``fail``, ``retry``, ``resubmit``, ``reseed``,
                                                                   ``stop_job``, ``unavailable``, ``ambiguous``)
                                                                   or ``unexpected``
========================================================  =======  ============================================

A metric is never worth a failed task: every function here logs and swallows its own errors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta

from video_pipeline.models import Decision, RunStatus, SpendStage, Stage
from video_pipeline_airflow import compat

log = logging.getLogger(__name__)
PREFIX = "video_pipeline"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def name(*parts: str) -> str:
    """``video_pipeline.<parts…>``, each part reduced to what every backend accepts in one name segment."""
    return ".".join([PREFIX, *(_UNSAFE.sub("_", part) or "_" for part in parts)])


def _incr(metric: str, count: float = 1) -> None:
    try:
        compat.task_sdk_stats().incr(metric, count)
    except Exception:
        log.warning("Could not send the metric %s", metric, exc_info=True)


def _timing(metric: str, elapsed: timedelta) -> None:
    try:
        compat.task_sdk_stats().timing(metric, elapsed)
    except Exception:
        log.warning("Could not send the metric %s", metric, exc_info=True)


def run_ended(status: RunStatus, credits_by_stage: Mapping[SpendStage, float]) -> None:
    """A run ended: its status and what it spent, in total and per stage."""
    _incr(name("runs", status))
    _incr(name("credits_spent"), round(sum(credits_by_stage.values()), 6))
    for stage, credits in credits_by_stage.items():
        _incr(name("credits_spent", stage), credits)


def segment_done(stage: Stage, *, from_cache: bool) -> None:
    """A segment's image or clip is stored: made by its provider, or found in the cache."""
    _incr(name("segments_from_cache" if from_cache else "segments_generated", stage))


def gate_answered(decision: Decision) -> None:
    """A gate was answered: how long it waited, and how many segments a redo sends back."""
    if decision.opened_at is not None:
        _timing(name("gate_wait", decision.stage), max(decision.at - decision.opened_at, timedelta(0)))
    if decision.decision == "redo" and decision.segments:
        _incr(name("segments_redone", decision.stage), len(decision.segments))


def provider_call(provider: str, call: str, elapsed: timedelta) -> None:
    """One provider API call, and how long it took (errors included)."""
    _timing(name("provider", provider, call), elapsed)


def provider_error(provider: str, error_class: str) -> None:
    """A provider call failed; ``error_class`` is the port's action for it, or ``unexpected``."""
    _incr(name("provider_errors", provider, error_class))
