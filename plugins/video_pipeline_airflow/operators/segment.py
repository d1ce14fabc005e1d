"""Mapped per-segment operators: one image or one clip per task instance.

Local providers (storyboard) render inline. Runway is remote and paid: the task submits, records the provider
task id in storage before anything else, and defers to :class:`RunwayTaskTrigger` (no worker slot while the
provider works). A retry, a clear or a restarted worker finds the record and resumes the same provider task; a
cache hit costs no call at all. Provider failures follow the notes' policy: permanent ones (validation, auth,
safety, invalid asset, no credits) fail the segment without a retry; transient ones retry.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context, get_current_context
from airflow.sdk.exceptions import AirflowFailException
from tenacity import Retrying, before_sleep_log, stop_after_delay, wait_exponential

from video_pipeline.generation import (
    Planned,
    animate_segment,
    generate_image,
    plan_clip,
    plan_image,
    reuse,
    store,
)
from video_pipeline.layout import CacheKind
from video_pipeline.models import JobSettings, Stage, VideoSegment, utcnow
from video_pipeline.progress import record_completion
from video_pipeline.providers.base import ClipRequest, ImageRequest, LocalProvider
from video_pipeline.providers.registry import local_provider
from video_pipeline.providers.runway import (
    RunwayAmbiguousSubmit,
    RunwayBadOutput,
    RunwayClient,
    RunwayCreditsExhausted,
    RunwayOutputExpired,
    RunwayPermanentError,
    TaskStatus,
    estimate_clip_credits,
    estimate_image_credits,
)
from video_pipeline.storage import S3Storage, Storage
from video_pipeline.submissions import (
    BudgetExceeded,
    Submission,
    check_budget,
    clear_submission,
    load_submission,
    reseed,
    save_submission,
    stop_job,
    stop_reason,
)
from video_pipeline_airflow.hooks.runway import RunwayHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify
from video_pipeline_airflow.settings import RUNWAY_CONN_ID, runway_image_source, runway_poll_seconds
from video_pipeline_airflow.triggers.runway import RunwayTaskTrigger
from video_pipeline_airflow.triggers.settle import settle_deadline

#: Shows each mapped task as ``seg 007 – "a red fox at dawn"`` in the grid.
SEGMENT_MAP_INDEX_TEMPLATE = (
    "seg {{ '%03d' % task.segment['index'] }} – \"{{ task.segment['prompt'] | truncate(40, True, '…', 0) }}\""
)

Step = Callable[[Storage, JobSettings, VideoSegment, LocalProvider], VideoSegment]

#: Seconds to keep retrying the record of a paid submission while storage is unreachable: without the record
#: an Airflow retry would submit (and pay) again.
RECORD_PATIENCE_S = 120.0

log = logging.getLogger(__name__)


def record_paid_submission(storage: Storage, kind: CacheKind, submission: Submission) -> None:
    for attempt in Retrying(
        stop=stop_after_delay(RECORD_PATIENCE_S),
        wait=wait_exponential(multiplier=0.5, max=10),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    ):
        with attempt:
            save_submission(storage, kind, submission.digest, submission)


class SegmentOperator(BaseOperator):
    template_fields: Sequence[str] = ("job", "segment", "total")
    stage: ClassVar[Stage]
    started_field: ClassVar[str]
    finished_field: ClassVar[str]

    def __init__(
        self, *, job: Any, segment: Any, total: Any, runway_conn_id: str = RUNWAY_CONN_ID, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.segment = segment
        self.total = total
        self.runway_conn_id = runway_conn_id
        self._inflight: tuple[CacheKind, str, str] | None = None

    # -- what differs between images and clips ----------------------------------------------------------

    def local_step(self) -> Step:
        raise NotImplementedError

    def plan(self, storage: Storage, job: JobSettings, segment: VideoSegment) -> Planned:
        raise NotImplementedError

    def submit(self, client: RunwayClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        raise NotImplementedError

    # -- the flow -----------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        job = JobSettings.of(self.job)
        segment = VideoSegment.model_validate(self.segment)
        storage = get_storage()
        started = utcnow()
        if job.provider != "runway":
            result = self.local_step()(storage, job, segment, local_provider(job))
            return self._finish(storage, job, result, started)

        planned = self.plan(storage, job, segment)
        if (hit := reuse(storage, planned, segment)) is not None:
            return self._finish(storage, job, hit, started)
        submission = load_submission(storage, planned.kind, planned.digest)
        if submission is None:
            submission = self._submit(storage, job, segment, planned)
        else:
            self.log.info(
                "%s: resuming Runway task %s (no new submission)", segment.label, submission.provider_task_id
            )
        self.defer(
            trigger=RunwayTaskTrigger(
                provider_task_id=submission.provider_task_id,
                runway_conn_id=self.runway_conn_id,
                poll_interval=runway_poll_seconds(),
                settle_until=settle_deadline(),
            ),
            method_name="execute_complete",
            kwargs={"started": started.isoformat()},
        )
        raise AssertionError("unreachable: defer() raises")

    def _submit(
        self, storage: Storage, job: JobSettings, segment: VideoSegment, planned: Planned
    ) -> Submission:
        if reason := stop_reason(storage, job.job_id):
            raise AirflowFailException(f"{segment.label}: not submitted, the job was stopped: {reason}")
        request = planned.request
        credits = (
            estimate_clip_credits(request)
            if isinstance(request, ClipRequest)
            else estimate_image_credits(request)
        )
        try:
            check_budget(storage, job.job_id, job.budget_credits, credits)
        except BudgetExceeded as exc:
            raise AirflowFailException(f"{segment.label}: {exc}") from None
        seed = reseed(storage, planned.kind, planned.digest)
        if seed is not None:
            planned = Planned(
                planned.kind,
                request.model_copy(update={"seed": seed}),
                planned.provider,
                planned.digest,
                planned.cache_key,
                planned.target,
            )
        try:
            with RunwayHook(self.runway_conn_id).get_client() as client:
                task_id = self.submit(client, storage, planned, segment)
        except RunwayCreditsExhausted as exc:
            stop_job(storage, job.job_id, f"Runway has not enough credits ({exc})")
            raise AirflowFailException(f"{segment.label}: {exc}; the whole job stops") from None
        except RunwayAmbiguousSubmit as exc:
            raise AirflowFailException(
                f"{segment.label}: the connection broke after the request was sent, so Runway may have "
                f"accepted (and billed) it; not resubmitting automatically ({exc}). Check the Runway dashboard, "
                "then clear this task to submit again."
            ) from None
        except RunwayPermanentError as exc:
            raise AirflowFailException(f"{segment.label}: Runway refused the request: {exc}") from None
        submission = Submission(
            provider="runway",
            provider_task_id=task_id,
            job_id=job.job_id,
            index=segment.index,
            seed=planned.request.seed,
            credits=credits,
            digest=planned.digest,
        )
        try:
            record_paid_submission(storage, planned.kind, submission)
        except Exception:
            # Unrecorded, the task would be orphaned and paid again by the retry; stop it instead.
            with RunwayHook(self.runway_conn_id).get_client() as client:
                client.cancel_task(task_id)
            raise
        self._inflight = (planned.kind, planned.digest, task_id)
        self.log.info("%s: submitted Runway task %s (~%g credits)", segment.label, task_id, credits)
        return submission

    def execute_complete(self, context: Context, event: dict[str, Any], started: str) -> dict[str, Any]:
        job = JobSettings.of(self.job)
        segment = VideoSegment.model_validate(self.segment)
        storage = get_storage()
        planned = self.plan(storage, job, segment)
        if event.get("status") == "ERROR":  # polling itself failed; the record stays, a retry resumes it
            raise RuntimeError(
                f"{segment.label}: could not poll Runway task {event['provider_task_id']}: {event['error']}"
            )
        status = TaskStatus.model_validate(event)
        if status.status != "SUCCEEDED":
            self._provider_failed(storage, planned, segment, status)
        with (
            tempfile.TemporaryDirectory(prefix="vp-runway-") as tmp,
            RunwayHook(self.runway_conn_id).get_client() as client,
        ):
            suffix = ".png" if planned.kind == "images" else ".mp4"
            try:
                path = client.download(status.output[0], Path(tmp) / f"output{suffix}")
            except RunwayOutputExpired:
                clear_submission(storage, planned.kind, planned.digest)
                raise RuntimeError(
                    f"{segment.label}: Runway's output URL expired before download; resubmitting"
                ) from None
            result = store(storage, planned, segment, path, task_id=status.id)
        clear_submission(storage, planned.kind, planned.digest)
        return self._finish(storage, job, result, datetime.fromisoformat(started))

    def _provider_failed(
        self, storage: Storage, planned: Planned, segment: VideoSegment, status: TaskStatus
    ) -> None:
        error = status.error()
        clear_submission(storage, planned.kind, planned.digest)  # the next attempt submits anew
        if isinstance(error, RunwayBadOutput):
            reseed(storage, planned.kind, planned.digest, bump=True)
            raise RuntimeError(f"{segment.label}: {error}; retrying with a new seed")
        if isinstance(error, RunwayPermanentError):
            raise AirflowFailException(f"{segment.label}: {error} (not retried: it would fail the same way)")
        raise RuntimeError(f"{segment.label}: {error or status.status}; retrying with a new submission")

    def on_kill(self) -> None:
        """Killed by a user (marked failed/cleared while running): cancel the provider task it started."""
        if self._inflight is None:
            return
        kind, digest, task_id = self._inflight
        with RunwayHook(self.runway_conn_id).get_client() as client:
            client.cancel_task(task_id)
        clear_submission(get_storage(), kind, digest)
        self.log.warning("Killed: cancelled Runway task %s", task_id)

    def _finish(
        self, storage: Storage, job: JobSettings, result: VideoSegment, started: datetime
    ) -> dict[str, Any]:
        result = result.model_copy(update={self.started_field: started, self.finished_field: utcnow()})
        cached = result.image_cache_hit if self.stage == "images" else result.clip_cache_hit
        self.log.info(
            "%s: %s done%s", result.label, self.stage, " (cache hit, no provider call)" if cached else ""
        )
        for event in record_completion(
            storage,
            job.job_id,
            self.stage,
            result.index,
            int(self.total),
            run_id=get_current_context()["run_id"],
        ):
            self.log.info("Progress: %s", event.message)
            notify(f"{job.job_id}: progress", event.message)
        return result.model_dump(mode="json")


class GenerateImageOperator(SegmentOperator):
    """Generates (or reuses from the cache) one segment's image."""

    stage = "images"
    started_field = "image_started_at"
    finished_field = "image_finished_at"
    ui_color = "#e8f1fb"

    def local_step(self) -> Step:
        return generate_image

    def plan(self, storage: Storage, job: JobSettings, segment: VideoSegment) -> Planned:
        return plan_image(job, segment, job.provider)

    def submit(self, client: RunwayClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        assert isinstance(planned.request, ImageRequest)
        return client.text_to_image(planned.request)


class AnimateSegmentOperator(SegmentOperator):
    """Turns one approved image into a clip; fails clearly if the image object is missing."""

    stage = "clips"
    started_field = "clip_started_at"
    finished_field = "clip_finished_at"
    ui_color = "#fbeee8"

    def local_step(self) -> Step:
        return animate_segment

    def plan(self, storage: Storage, job: JobSettings, segment: VideoSegment) -> Planned:
        return plan_clip(storage, job, segment, job.provider)

    def submit(self, client: RunwayClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        assert isinstance(planned.request, ClipRequest) and segment.image_key
        if runway_image_source() == "presigned" and isinstance(storage, S3Storage):
            # Storage Runway can reach itself (S3 on the internet): hand it a short-lived https link.
            return client.image_to_video(planned.request, storage.url_for_preview(segment.image_key, 3600))
        with tempfile.TemporaryDirectory(prefix="vp-runway-") as tmp:
            image = storage.download_to(segment.image_key, Path(tmp) / "image.png")
            return client.image_to_video(planned.request, client.prompt_image_uri(image))
