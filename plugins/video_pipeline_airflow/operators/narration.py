"""The mapped narration operator: one segment's narration spoken by the job's voice per task instance.

The work is ``video_pipeline.narration.narrate``: the cache first (a re-run speaks nothing), the offline voice
in-process, a paid voice with one POST under a provider-task record and a credit reservation (never paid
twice). This adapter gives it the task instance's identity, the voice's connection and whether the run that
left a ``submitting`` record is still active, and turns :class:`NotSpoken` into a retry or a failure.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Context, get_current_context
from airflow.sdk.exceptions import AirflowFailException

from video_pipeline.models import JobSettings, JobSpec, VideoSegment
from video_pipeline.narration import NotSpoken, narrate
from video_pipeline.progress import record_completion
from video_pipeline.providers import registry
from video_pipeline.storage import Storage
from video_pipeline.submissions import Attempt, Submission
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify
from video_pipeline_airflow.operators.mapped_segment import MappedSegmentOperator
from video_pipeline_airflow.runs import run_checker


class NarrateSegmentOperator(MappedSegmentOperator):
    """Speaks (or reuses from the cache) one segment's narration and fits the segment to it.

    :param job: the job's settings (``JobSettings`` as JSON; templated).
    :param segment: the segment (``VideoSegment`` as JSON), or its number when ``segment_from`` handed it off
        (templated, mapped over).
    :param total: the number of segments (progress milestones; templated).
    :param segment_from: the task id of the step that handed the segments off, when ``segment`` is a number.
    :param conn_ids: connection id per voice provider name, where not the provider's own (``<provider>_default``).
    """

    ui_color = "#eef8e8"

    def execute(self, context: Context) -> dict[str, Any]:
        job = JobSettings.of(self.job)
        segment = self.read_segment(context.get("run_id"))
        storage = get_storage()
        endpoint = None
        if job.voice is not None and segment.narration:
            provider = job.voice.provider
            if registry.speech(provider).conn_id is not None:
                endpoint = ProviderHook(provider, self.conn_ids.get(provider)).endpoint()
        is_active = run_checker(context)

        def writer_alive(record: Submission) -> bool:
            return bool(record.run_id) and is_active(record.dag_id, str(record.run_id))

        try:
            result = narrate(
                storage,
                job,
                segment,
                attempt=Attempt.of(context, self.task_id),
                endpoint=endpoint,
                writer_alive=writer_alive,
            )
        except NotSpoken as exc:
            if exc.retry:
                raise RuntimeError(str(exc)) from None
            raise AirflowFailException(str(exc)) from None
        if result.narration_key:
            self.log.info(
                "%s: narration spoken for %.2f s by %s%s; the segment lasts %s s",
                result.label,
                result.narration_s or 0.0,
                result.narration_provider,
                " (cache hit, no request)" if result.narration_cache_hit else "",
                f"{result.fitted_s:g}" if result.fitted_s is not None else result.duration_s,
            )
        for event in record_completion(
            storage,
            job.job_id,
            "narration",
            result.index,
            int(self.total),
            run_id=get_current_context()["run_id"],
        ):
            self.log.info("Progress: %s", event.message)
            notify(f"{job.job_id}: progress", event.message)
        return result.model_dump(mode="json")


def respeak(
    context: Context,
    storage: Storage,
    job: JobSpec,
    segments: list[VideoSegment],
    narrations: dict[int, str],
    task_id: str,
) -> dict[int, VideoSegment]:
    """A redo's new narrations: each listed segment with its new text, spoken (only those segments) and fitted
    to it, by the same rules as the mapped task (a paid voice is never paid twice). Raises ``NotSpoken``."""
    settings = job.settings()
    done = {}
    for segment in segments:
        if segment.index not in narrations:
            continue
        changed = segment.model_copy(update={"narration": narrations[segment.index]})
        voice = settings.voice
        endpoint = None
        if voice is not None and registry.speech(voice.provider).conn_id is not None:
            endpoint = ProviderHook(voice.provider).endpoint()
        done[segment.index] = narrate(
            storage,
            settings,
            changed,
            attempt=Attempt.of(context, task_id),
            endpoint=endpoint,
        )
    return done
