"""Finishing a segment task, the same on a worker and in the triggerer.

A segment task's last take is done when its output is stored: the take is merged with the earlier ones, its
times are stamped, it is counted (metrics, progress milestones and their notifications) and the segment's JSON
becomes the task's XCom. :func:`finish_segment` does that for ``SegmentOperator`` on a worker, and for
:func:`complete_in_triggerer`, which lets ``ProviderTaskTrigger`` end the task itself once the last take's
provider task succeeded: one worker hand-off per segment (submit) instead of two (submit, then resume).

:func:`complete_in_triggerer` only finishes what it can finish the way the worker would. Whenever it cannot (the
run was stopped, the record is another attempt's, nothing to fetch, a refused or expired output, storage down)
it declines or raises, the trigger fires its ordinary event and the task resumes on a worker, whose
``execute_complete`` applies today's rules (retry, fail, lost spend). It blocks (HTTP, storage, media checks):
the trigger runs it on a thread, never on the triggerer's event loop.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from video_pipeline.generation import Planned, collect
from video_pipeline.models import Stage, VideoSegment, utcnow
from video_pipeline.progress import record_completion
from video_pipeline.storage import Storage
from video_pipeline.submissions import clear_submission, load_submission, run_stop_reason
from video_pipeline.takes import merge_takes
from video_pipeline_airflow import metrics
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify

#: The segment's fields for when a stage started and finished it.
STAGE_TIMES: dict[Stage, tuple[str, str]] = {
    "images": ("image_started_at", "image_finished_at"),
    "clips": ("clip_started_at", "clip_finished_at"),
}


def finish_segment(
    storage: Storage,
    *,
    job_id: str,
    stage: Stage,
    result: VideoSegment,
    started: datetime,
    total: int,
    run_id: str,
    progress_round: int,
    log: logging.Logger | Any,
) -> dict[str, Any]:
    """Stamp, count and report one finished segment; returns its JSON (the task's XCom).

    :param storage: the job storage.
    :param job_id: the job.
    :param stage: ``images`` or ``clips``.
    :param result: the segment with its takes merged (take 1 picked).
    :param started: when the task started the segment (its first try's ``execute``).
    :param total: the stage's number of segments (progress milestones).
    :param run_id: the DAG run whose progress this counts in.
    :param progress_round: 1 for the stage itself; the gate round for a redo.
    :param log: where to log (the task's or the trigger's logger).
    """
    started_field, finished_field = STAGE_TIMES[stage]
    result = result.model_copy(update={started_field: started, finished_field: utcnow()})
    cached = result.image_cache_hit if stage == "images" else result.clip_cache_hit
    log.info("%s: %s done%s", result.label, stage, " (cache hit, no provider call)" if cached else "")
    metrics.segment_done(stage, from_cache=cached)
    for event in record_completion(
        storage, job_id, stage, result.index, total, run_id=run_id, round_=progress_round
    ):
        log.info("Progress: %s", event.message)
        notify(f"{job_id}: progress", event.message)
    return result.model_dump(mode="json")


@dataclass(frozen=True)
class Handoff:
    """What the trigger needs to finish the segment task after its last take's provider task succeeded.

    Travels in the trigger's serialized kwargs (JSON; re-created by a restarted triggerer): the segment and
    the plan made at submission, never a key or a signed URL.

    :param stage: ``images`` or ``clips``.
    :param job_id: the job.
    :param run_id: the DAG run of the task (its progress is counted there).
    :param segment: the segment (``VideoSegment`` JSON) as the task made it.
    :param plan: the last take's plan made at submission (``Planned.to_dict``): where its output is stored.
    :param record_id: the last take's provider-task record (only this one is settled here).
    :param started: when the task started the segment (ISO 8601).
    :param made: the earlier takes, stored (``VideoSegment`` JSON each).
    :param total: the stage's number of segments.
    :param progress_round: 1 for the stage itself; the gate round for a redo.
    """

    stage: Stage
    job_id: str
    run_id: str
    segment: dict[str, Any]
    plan: dict[str, Any]
    record_id: str | None
    started: str
    total: int
    made: list[dict[str, Any]] = field(default_factory=list)
    progress_round: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Handoff:
        return cls(**data)


@dataclass(frozen=True)
class Completed:
    """What :func:`complete_in_triggerer` did: ``xcom`` set: the segment is finished (end the task with it as
    its return value); only ``stored`` (the take's JSON) set: the take is stored but finishing failed (the
    worker finishes it from there); neither: it declined (``why``), and the worker decides as it always did."""

    stored: dict[str, Any] | None = None
    xcom: dict[str, Any] | None = None
    why: str = ""


def complete_in_triggerer(
    handoff: Handoff, provider: str, conn_id: str | None, task_id: str, log: logging.Logger | Any
) -> Completed:
    """Fetch, check and store the succeeded last take, clear its record and finish the segment (blocking).

    Raises whatever fetching or storing raises: the trigger then lets the worker resume the task.

    :param handoff: what the task handed over at its deferral.
    :param provider: the provider's registry name.
    :param conn_id: its connection (default: the provider's own).
    :param task_id: the provider task that succeeded.
    :param log: the trigger's logger.
    """
    storage = get_storage()
    if reason := run_stop_reason(storage, handoff.job_id, handoff.run_id):
        return Completed(why=f"the run was stopped ({reason})")
    planned = Planned.from_dict(handoff.plan)
    segment = VideoSegment.model_validate(handoff.segment)
    record = load_submission(storage, handoff.job_id, planned.kind, planned.digest)
    if record is not None and (record.record_id != handoff.record_id or record.state != "submitted"):
        return Completed(why="the record is another attempt's")
    if record is None and not storage.exists(planned.cache_key):
        return Completed(why="no record and nothing in the cache")
    with ProviderHook(provider, conn_id).get_client() as client:
        take = collect(storage, planned, segment, client, task_id)
    stored = take.model_dump(mode="json")
    if record is not None:
        if load_submission(storage, handoff.job_id, planned.kind, planned.digest) != record:
            # Settled meanwhile (a person's stop salvaged or cancelled it): the task is not ours to finish.
            return Completed(stored=stored, why="the record was settled meanwhile")
        clear_submission(storage, record)
    try:
        merged = merge_takes(handoff.stage, [VideoSegment.model_validate(m) for m in [*handoff.made, stored]])
        xcom = finish_segment(
            storage,
            job_id=handoff.job_id,
            stage=handoff.stage,
            result=merged,
            started=datetime.fromisoformat(handoff.started),
            total=handoff.total,
            run_id=handoff.run_id,
            progress_round=handoff.progress_round,
            log=log,
        )
    except Exception as exc:  # stored and cleared: the worker finishes from the stored take
        log.warning(
            "%s: take stored, but finishing it here failed (%s); a worker finishes it", segment.label, exc
        )
        return Completed(stored=stored, why=str(exc))
    return Completed(stored=stored, xcom=xcom)
