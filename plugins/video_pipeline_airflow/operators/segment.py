"""Mapped per-segment operators: one image or one clip per task instance, on any provider.

Each stage's provider and model come from the job spec (``JobSettings.choice``); the provider registry says
whether it renders locally (inline) or is remote and paid. Before anything is paid for, the task creates the
output's provider-task record exclusively (``submitting``), reserves the credits in the job's spend ledger
against ``budget_credits``, and checks that neither the job nor the run was stopped; then it submits through the
provider port, records the provider task id (``submitted``) and defers to :class:`ProviderTaskTrigger` (no
worker slot while the provider works). Two attempts racing on one output make one submission: the loser resumes
the winner's task. A retry, a clear or a restarted worker finds the record and resumes the same provider task;
a cache hit costs no call at all. The output is stored under the plan made at submission (carried through the
deferral), never a re-plan of inputs that may have changed meanwhile. For the segment's last take the trigger
fetches and stores it and ends the task itself (``segment_completion``): one worker hand-off per segment.
``execute_complete`` does it on a worker for earlier takes, a gate's redo, and whenever the trigger hands the
task back (any failure), deciding as it always did.

Provider errors arrive classified (``video_pipeline.providers.port.Action``): ``fail`` fails the segment
without a retry; ``retry`` lets Airflow retry; ``resubmit``/``reseed`` submit anew (with a new seed); ``stop_job``
stops the whole job; ``ambiguous`` fails for a person to look at (never paid twice blindly). ``unavailable`` and
``stop_job`` at submission switch to the stage's fallback provider when the spec gives one; the segment records
which provider made it. A task past its deadline is cancelled and fails the segment.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from airflow.sdk import Context, get_current_context
from airflow.sdk.exceptions import AirflowFailException
from tenacity import Retrying, before_sleep_log, stop_after_delay, wait_exponential

from video_pipeline.generation import (
    Planned,
    animate_segment,
    collect,
    generate_image,
    plan_clip,
    plan_image,
    reuse,
)
from video_pipeline.models import JobSettings, ProviderChoice, SpendEventKind, Stage, VideoSegment, utcnow
from video_pipeline.outputs import OutputRejected
from video_pipeline.providers import registry
from video_pipeline.providers.base import ClipRequest, ImageRequest, LocalProvider
from video_pipeline.providers.port import (
    FALLBACK_ACTIONS,
    Action,
    ProviderError,
    RemoteClient,
    RemoteStatus,
    SourceImage,
    TaskState,
)
from video_pipeline.storage import S3Storage, Storage
from video_pipeline.submissions import (
    Attempt,
    BudgetExceeded,
    Submission,
    clear_submission,
    create_submission,
    load_submission,
    record_spend_event,
    release_credits,
    replace_submission,
    replaceable,
    report_ambiguous,
    reseed,
    reserve_credits,
    run_stop_reason,
    stop_job,
    update_submission,
)
from video_pipeline.takes import merge_takes
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.operators.mapped_segment import MappedSegmentOperator
from video_pipeline_airflow.runs import run_checker
from video_pipeline_airflow.segment_completion import Handoff, finish_segment
from video_pipeline_airflow.settings import (
    PROVIDER_TIMEOUT_VARIABLE,
    image_source,
    poll_seconds,
    provider_timeout_seconds,
)
from video_pipeline_airflow.triggers.provider import ProviderTaskTrigger
from video_pipeline_airflow.triggers.settle import settle_deadline

Step = Callable[[Storage, JobSettings, VideoSegment, LocalProvider, int], VideoSegment]

#: Seconds to keep retrying the record of a paid submission while storage is unreachable: without the record
#: an Airflow retry would submit (and pay) again.
RECORD_PATIENCE_S = 120.0
#: Seconds to wait for another attempt that is submitting the same output before retrying later.
SUBMITTING_WAIT_S = 30.0
#: A ``submitting`` record older than this was left by an attempt that died mid-POST (a POST, with the
#: client's retries on 429/503, ends well within it).
SUBMITTING_PATIENCE_S = 15 * 60.0

log = logging.getLogger(__name__)


def record_paid_submission(storage: Storage, submission: Submission) -> None:
    """The provider task id into the record and the ledger, patiently: storage may be briefly unreachable."""
    for write in (
        lambda: update_submission(storage, submission),
        lambda: record_spend_event(storage, submission, "submitted"),
    ):
        for attempt in Retrying(
            stop=stop_after_delay(RECORD_PATIENCE_S),
            wait=wait_exponential(multiplier=0.5, max=10),
            before_sleep=before_sleep_log(log, logging.WARNING),
            reraise=True,
        ):
            with attempt:
                write()


class UseFallback(Exception):
    """The stage's provider cannot take the work now (unavailable, or out of quota): its fallback takes over."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(str(error))
        self.error = error


class SegmentOperator(MappedSegmentOperator):
    """One segment's image or clip: from the cache, rendered locally, or made by a paid remote provider.

    :param job: the job's settings (``JobSettings`` as JSON; templated).
    :param segment: the segment (``VideoSegment`` as JSON), or its number when ``segment_from`` handed it off
        (templated, mapped over).
    :param total: the number of segments (progress milestones; templated).
    :param segment_from: the task id of the step that handed the segments off, when ``segment`` is a number.
    :param conn_ids: connection id per provider name, where not the provider's own (``<provider>_default``).
    """

    stage: ClassVar[Stage]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The gate round whose redo this task makes (progress is counted per round); 1: the stage itself.
        self.progress_round = 1
        #: Whether the trigger may finish the task after the last take (a gate running this operator for a
        #: redo must get the trigger's ordinary event back: the gate goes on, not the segment task).
        self.finish_in_trigger = True
        self._inflight: Submission | None = None

    # -- what differs between images and clips ----------------------------------------------------------

    def local_step(self) -> Step:
        raise NotImplementedError

    def plan(
        self,
        storage: Storage,
        job: JobSettings,
        segment: VideoSegment,
        choice: ProviderChoice | None = None,
        take: int = 1,
    ) -> Planned:
        """What take ``take`` of the segment's output is, by the stage's provider (or ``choice``)."""
        if self.stage == "images":
            return plan_image(job, segment, choice, take)
        return plan_clip(storage, job, segment, choice, take)

    def submit(self, client: RemoteClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        raise NotImplementedError

    # -- the flow -----------------------------------------------------------------------------------------

    def hook(self, provider: str) -> ProviderHook:
        return ProviderHook(provider, self.conn_ids.get(provider))

    def execute(self, context: Context) -> dict[str, Any]:
        job = JobSettings.of(self.job)
        segment = self.read_segment(context.get("run_id"))
        return self._takes_from(context, get_storage(), job, segment, utcnow(), take=1, made=[])

    def _takes_from(
        self,
        context: Context,
        storage: Storage,
        job: JobSettings,
        segment: VideoSegment,
        started: datetime,
        take: int,
        made: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Make takes ``take``…k of the segment in order, then finish with take 1 picked.

        One take at a time, each stored before the next is submitted: every take is its own submission (its own
        record and reservation: never paid twice, resumed after a worker is lost), and the task holds one pool
        slot, so the pool still bounds how many outputs the provider makes at once. ``made`` (the stored takes,
        as JSON) travels through each deferral."""
        for number in range(take, job.stage_takes(self.stage) + 1):
            result = self._take(context, storage, job, segment, number, started, made)
            made = [*made, result.model_dump(mode="json")]
        merged = merge_takes(self.stage, [VideoSegment.model_validate(m) for m in made])
        return self._finish(storage, job, merged, started)

    def _take(
        self,
        context: Context,
        storage: Storage,
        job: JobSettings,
        segment: VideoSegment,
        take: int,
        started: datetime,
        made: list[dict[str, Any]],
    ) -> VideoSegment:
        """One take: from the cache, rendered locally, or submitted (or resumed) and deferred on."""
        choice = job.choice(self.stage)
        if not registry.is_remote(choice.provider):
            return self.local_step()(storage, job, segment, registry.local(choice.provider), take)

        options = [choice, *([choice.fallback] if choice.fallback else [])]
        plans = [self.plan(storage, job, segment, option, take) for option in options]
        for planned in plans:  # made already (by either provider), or under way after an earlier try
            if (hit := reuse(storage, planned, segment)) is not None:
                return hit
        resumable = [p for p in plans if self._submitted(storage, job, p)]
        for planned in resumable[:1] or plans:
            try:
                record = self._resume_or_submit(context, storage, job, segment, planned)
            except UseFallback as unavailable:
                if planned is plans[-1]:
                    raise AssertionError("the last option never falls back") from None
                fallback = options[plans.index(planned) + 1]
                self.log.warning(
                    "%s: %s cannot take it (%s); using the fallback %s %s",
                    segment.label,
                    planned.provider,
                    unavailable.error,
                    fallback.provider,
                    fallback.model,
                )
                # A local fallback (e.g. free camera moves for an animatic) renders here and now.
                if not registry.is_remote(fallback.provider):
                    return self.local_step()(storage, job, segment, registry.local(fallback.provider), take)
                continue
            self._defer(job, segment, record, planned, started, take, made)
        raise AssertionError("unreachable: every option either defers or raises")

    def _submitted(self, storage: Storage, job: JobSettings, planned: Planned) -> bool:
        record = load_submission(storage, job.job_id, planned.kind, planned.digest)
        return record is not None and record.state == "submitted"

    def _defer(
        self,
        job: JobSettings,
        segment: VideoSegment,
        record: Submission,
        planned: Planned,
        started: datetime,
        take: int = 1,
        made: list[dict[str, Any]] | None = None,
    ) -> None:
        # The plan made at submission travels with the deferral: completion stores under *its* cache key,
        # even if the inputs changed meanwhile (e.g. the approved image was replaced).
        carried = Planned.from_dict(record.plan) if record.plan else planned
        provider = registry.remote(record.provider)
        conn_id = self.conn_ids.get(record.provider)
        self.defer(
            trigger=ProviderTaskTrigger(
                provider=record.provider,
                provider_task_id=str(record.provider_task_id),
                conn_id=conn_id,
                poll_interval=poll_seconds(provider, conn_id),
                settle_until=settle_deadline(),
                deadline=(record.submitted_at or record.created_at).timestamp() + provider_timeout_seconds(),
                job_id=job.job_id,
                run_id=record.run_id,
                kind=record.kind,
                digest=record.digest,
                record_id=record.record_id,
                handoff=self._handoff(job, segment, record, carried, started, take, made),
            ),
            method_name="execute_complete",
            kwargs={
                "started": started.isoformat(),
                "plan": carried.to_dict(),
                "record_id": record.record_id,
                "take": take,
                "made": list(made or []),
            },
        )

    def _handoff(
        self,
        job: JobSettings,
        segment: VideoSegment,
        record: Submission,
        carried: Planned,
        started: datetime,
        take: int,
        made: list[dict[str, Any]] | None,
    ) -> dict[str, Any] | None:
        """What the trigger needs to end the task itself: only after the segment's last take."""
        if not self.finish_in_trigger or take < job.stage_takes(self.stage):
            return None
        return Handoff(
            stage=self.stage,
            job_id=job.job_id,
            # This task's run: the record names it since this attempt submitted or took it on.
            run_id=record.run_id or get_current_context()["run_id"],
            segment=segment.model_dump(mode="json"),
            plan=carried.to_dict(),
            record_id=record.record_id,
            started=started.isoformat(),
            total=int(self.total),
            made=list(made or []),
            progress_round=self.progress_round,
        ).to_dict()

    def _resume_or_submit(
        self, context: Context, storage: Storage, job: JobSettings, segment: VideoSegment, planned: Planned
    ) -> Submission:
        """The provider task for this output: resumed from its record, or submitted under a record this
        attempt created exclusively (so two attempts racing on one output make one submission)."""
        attempt = Attempt.of(context, self.task_id)
        waited_until = time.monotonic() + SUBMITTING_WAIT_S
        while True:
            current = load_submission(storage, job.job_id, planned.kind, planned.digest)
            if current is not None and current.state == "submitted":
                return self._resume(storage, current, attempt, segment)
            if current is not None and not replaceable(storage, current):
                # "submitting": another attempt's submission is under way — or its writer died mid-POST.
                self._check_submitter_alive(context, storage, current, attempt, segment)
                if time.monotonic() > waited_until:
                    raise RuntimeError(
                        f"{segment.label}: run {current.run_id} is still submitting this output; retrying later"
                    )
                time.sleep(1.0)
                continue
            draft = self._draft(storage, job, segment, planned, attempt)
            if current is None:
                won = create_submission(storage, draft)
            else:
                self.log.warning(
                    "%s: submitting anew in place of the ambiguous submission %s (reported earlier)",
                    segment.label,
                    current.record_id,
                )
                won = replace_submission(storage, current, draft)
            if won:
                return self._submit(storage, job, segment, draft)
            # Another attempt created (or replaced) the record first: look again, and resume its task.

    def _resume(
        self, storage: Storage, record: Submission, attempt: Attempt, segment: VideoSegment
    ) -> Submission:
        if attempt.run_id and record.run_id != attempt.run_id:
            # Submitted by an earlier run of this job that ended: this run takes the task (and its record) on,
            # so stopping this run cancels it.
            record = record.model_copy(
                update={
                    "run_id": attempt.run_id,
                    "dag_id": attempt.dag_id,
                    "task_id": attempt.task_id,
                    "map_index": attempt.map_index,
                }
            )
            update_submission(storage, record)
        self.log.info(
            "%s: resuming %s task %s (no new submission)",
            segment.label,
            record.provider,
            record.provider_task_id,
        )
        return record

    def _check_submitter_alive(
        self, context: Context, storage: Storage, record: Submission, attempt: Attempt, segment: VideoSegment
    ) -> None:
        """Fail as an ambiguous submission when the record's writer can no longer finish its POST."""
        if record.same_task_instance(attempt.run_id, attempt.task_id, attempt.map_index):
            why = "an earlier try of this task died while submitting it"
        elif (utcnow() - record.created_at).total_seconds() > SUBMITTING_PATIENCE_S:
            why = f"run {record.run_id} started submitting it over {SUBMITTING_PATIENCE_S / 60:g} min ago"
        elif record.run_id and not run_checker(context)(record.dag_id, record.run_id):
            why = f"run {record.run_id}, which was submitting it, has ended"
        else:
            return
        report_ambiguous(storage, record)
        raise AirflowFailException(
            f"{segment.label}: {why}, so {record.provider} may have accepted (and billed) that request, or not; "
            f"not resubmitting automatically. Check the {record.provider} dashboard, then clear this task (or "
            "re-run the job) to submit again."
        )

    def _draft(
        self, storage: Storage, job: JobSettings, segment: VideoSegment, planned: Planned, attempt: Attempt
    ) -> Submission:
        seed = reseed(storage, job.job_id, planned.kind, planned.digest)
        asked = planned.with_seed(seed) if seed is not None else planned
        return Submission(
            kind=planned.kind,
            provider=planned.provider,
            job_id=job.job_id,
            run_id=attempt.run_id,
            dag_id=attempt.dag_id,
            task_id=attempt.task_id,
            map_index=attempt.map_index,
            try_number=attempt.try_number,
            index=segment.index,
            seed=asked.request.seed,
            credits=registry.remote(planned.provider).estimate(planned.request),
            digest=planned.digest,
            plan=asked.to_dict(),
            segment=segment.model_dump(mode="json"),
        )

    def _submit(
        self, storage: Storage, job: JobSettings, segment: VideoSegment, record: Submission
    ) -> Submission:
        """Reserve the credits, check for a stop, submit, record the task id — in that order."""
        try:
            if reason := run_stop_reason(storage, job.job_id, record.run_id):
                raise AirflowFailException(f"{segment.label}: not submitted, the job was stopped: {reason}")
            try:
                reservation = reserve_credits(storage, job.job_id, job.budget_credits, record)
            except BudgetExceeded as exc:
                raise AirflowFailException(f"{segment.label}: {exc}") from None
        except Exception:
            clear_submission(storage, record)
            raise
        record = record.model_copy(update={"reservation_seq": reservation.seq})
        if reason := run_stop_reason(storage, job.job_id, record.run_id):  # stopped while reserving
            self._give_back(storage, record, "stopped before submitting")
            raise AirflowFailException(f"{segment.label}: not submitted, the job was stopped: {reason}")
        provider = record.provider
        try:
            with self.hook(provider).get_client() as client:
                task_id = self.submit(client, storage, Planned.from_dict(record.plan), segment)
        except ProviderError as exc:
            self._submission_failed(storage, job, segment, record, exc)
        except Exception as exc:  # nothing was created: before the request, or a local error
            self._give_back(storage, record, f"not submitted ({type(exc).__name__})")
            raise
        submitted = record.model_copy(
            update={"state": "submitted", "provider_task_id": task_id, "submitted_at": utcnow()}
        )
        try:
            record_paid_submission(storage, submitted)
        except Exception:
            # Unrecorded, the task would be orphaned and paid again by the retry; stop it instead.
            with self.hook(provider).get_client() as client:
                client.cancel(task_id)
            raise
        self._inflight = submitted
        self.log.info(
            "%s: submitted %s task %s (~%g credits)", segment.label, provider, task_id, record.credits
        )
        if reason := run_stop_reason(storage, job.job_id, record.run_id):  # stopped during the POST
            self._cancel(storage, submitted, f"the run was stopped while submitting: {reason}")
            raise AirflowFailException(
                f"{segment.label}: cancelled {provider} task {task_id}, the job was stopped"
            )
        return submitted

    def _submission_failed(
        self,
        storage: Storage,
        job: JobSettings,
        segment: VideoSegment,
        record: Submission,
        exc: ProviderError,
    ) -> None:
        """Act on a refused or failed submission (always raises)."""
        provider = record.provider
        if exc.action == Action.AMBIGUOUS:
            update_submission(storage, record.model_copy(update={"state": "ambiguous"}))
            raise AirflowFailException(
                f"{segment.label}: the request was sent and what came back does not prove that {provider} "
                f"created nothing, so it may have accepted (and billed) it; not resubmitting automatically "
                f"({exc}). Check the {provider} dashboard, then clear this task to submit again."
            ) from None
        self._give_back(storage, record, f"not submitted: {exc.action.value} ({provider})")
        choice = JobSettings.of(self.job).choice(self.stage)
        if exc.action in FALLBACK_ACTIONS and choice.fallback and provider == choice.provider:
            raise UseFallback(exc) from None
        if exc.action == Action.STOP_JOB:
            stop_job(storage, job.job_id, f"{provider} cannot pay for more work ({exc})")
            raise AirflowFailException(f"{segment.label}: {exc}; the whole job stops") from None
        if exc.action == Action.FAIL:
            raise AirflowFailException(f"{segment.label}: {provider} refused the request: {exc}") from None
        raise RuntimeError(
            f"{segment.label}: {provider} did not take the request ({exc}); retrying"
        ) from None

    def _give_back(self, storage: Storage, record: Submission, why: str) -> None:
        release_credits(storage, record, why)
        clear_submission(storage, record)

    def _cancel(self, storage: Storage, record: Submission, why: str) -> None:
        with self.hook(record.provider).get_client() as client:
            client.cancel(str(record.provider_task_id))
        record_spend_event(storage, record, "cancelled", note=f"{why}; refund unknown", refund="unknown")
        clear_submission(storage, record)
        self._inflight = None

    def execute_complete(
        self,
        context: Context,
        event: dict[str, Any],
        started: str,
        plan: dict[str, Any] | None = None,
        record_id: str | None = None,
        take: int = 1,
        made: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Take ``take``'s provider task ended: store its output, then go on with the next take (``made``: the
        takes stored before it). A deferral made before takes existed carries neither: one take."""
        job = JobSettings.of(self.job)
        segment = self.read_segment(context.get("run_id"))
        storage = get_storage()
        # The plan made at submission (re-planning would hash the image as it is *now*). A deferral made
        # before plans travelled with it has none: re-plan then.
        planned = Planned.from_dict(plan) if plan else self.plan(storage, job, segment, take=take)
        record = load_submission(storage, job.job_id, planned.kind, planned.digest)
        if record is not None and record_id is not None and record.record_id != record_id:
            record = None  # a newer attempt's record: not ours to settle
        kind = event.get("event")
        if kind == "error":  # polling itself failed; the record stays, a retry resumes it
            raise RuntimeError(
                f"{segment.label}: could not poll {planned.provider} task {event.get('provider_task_id')}: "
                f"{event.get('error')}"
            )
        if kind == "timeout":
            self._timed_out(storage, planned, segment, event, record)
        status = RemoteStatus.model_validate(event)
        if status.state != TaskState.SUCCEEDED:
            self._provider_failed(storage, planned, segment, status, record)
        if event.get("stored") is not None:  # the trigger stored it, then handed the task back to finish
            result = VideoSegment.model_validate(event["stored"])
        else:
            result = self._download(storage, planned, segment, status, record)
        if record is not None:
            clear_submission(storage, record)
        self.log.info("%s: take %d of %d stored", segment.label, take, job.stage_takes(self.stage))
        stored = [*(made or []), result.model_dump(mode="json")]
        return self._takes_from(
            context, storage, job, segment, datetime.fromisoformat(started), take + 1, stored
        )

    def _download(
        self,
        storage: Storage,
        planned: Planned,
        segment: VideoSegment,
        status: RemoteStatus,
        record: Submission | None,
    ) -> VideoSegment:
        """The succeeded task's output: from the cache when the salvage sweep fetched it meanwhile (e.g. while
        this task's triggerer was down), else fetched at once (its URL expires), checked and stored."""
        label = f"{planned.provider} task {status.task_id}"
        with self.hook(planned.provider).get_client() as client:
            try:
                return collect(storage, planned, segment, client, status.task_id)
            except OutputRejected as exc:  # refused download or failed content check: nothing was cached
                if record is not None:
                    record_spend_event(storage, record, "lost", note=f"output refused, not cached: {exc}")
                    clear_submission(storage, record)
                raise RuntimeError(
                    f"{segment.label}: the output of {label} was refused and not cached ({exc}); the submission "
                    "record is cleared, so the retry submits again (a new paid generation)"
                ) from None
            except ProviderError as exc:
                if exc.action != Action.RESUBMIT:
                    raise
                if record is not None:
                    record_spend_event(storage, record, "lost", note="output URL expired before download")
                    clear_submission(storage, record)
                raise RuntimeError(
                    f"{segment.label}: the output URL of {label} expired before download (recorded as lost "
                    "spend); resubmitting"
                ) from None

    def _timed_out(
        self,
        storage: Storage,
        planned: Planned,
        segment: VideoSegment,
        event: dict[str, Any],
        record: Submission | None,
    ) -> None:
        task = f"{planned.provider} task {event.get('provider_task_id')}"
        limit = f"{provider_timeout_seconds() / 3600:g} h ({PROVIDER_TIMEOUT_VARIABLE})"
        if not event.get("cancelled"):
            # Not cancelled (the provider unreachable): the record stays, so the salvage sweep settles it later.
            raise AirflowFailException(
                f"{segment.label}: {task} did not finish within {limit} (still {event.get('last_status')}) and "
                f"could not be cancelled ({event.get('error')}); it stays recorded for the salvage sweep"
            )
        if record is not None:
            record_spend_event(
                storage,
                record,
                "timed_out",
                note=f"still {event.get('last_status')} after {limit}; cancelled, refund unknown",
                refund="unknown",
            )
            clear_submission(storage, record)
        raise AirflowFailException(
            f"{segment.label}: {task} did not finish within {limit} (still {event.get('last_status')}); it was "
            "cancelled (refund unknown). Clear this task to submit again."
        )

    def _provider_failed(
        self,
        storage: Storage,
        planned: Planned,
        segment: VideoSegment,
        status: RemoteStatus,
        record: Submission | None,
    ) -> None:
        error = status.failure()
        if record is not None:  # the next attempt submits anew
            event: SpendEventKind = "cancelled" if status.state == TaskState.CANCELLED else "failed"
            record_spend_event(storage, record, event, note=str(error or status.state), refund="unknown")
            clear_submission(storage, record)
        if error is None:
            raise RuntimeError(
                f"{segment.label}: {planned.provider} task {status.task_id} ended {status.state}"
            )
        if error.action == Action.RESEED:
            reseed(storage, JobSettings.of(self.job).job_id, planned.kind, planned.digest, bump=True)
            raise RuntimeError(f"{segment.label}: {error}; retrying with a new seed")
        if error.action in (Action.FAIL, Action.STOP_JOB):
            raise AirflowFailException(f"{segment.label}: {error} (not retried: it would fail the same way)")
        raise RuntimeError(f"{segment.label}: {error}; retrying with a new submission")

    def on_kill(self) -> None:
        """SIGTERM from the task's supervisor: a person marked or cleared the task while it ran, or the worker
        is shutting down. The provider task it started is *not* cancelled here: this cannot tell those apart
        (docs/notes/airflow-stop-actions.md), and after a clear or a worker restart the next try resumes the
        recorded task — cancelling it would make that try pay again. A person's mark reaches the stop handler
        through the api-server's listener, which cancels it (``stop_handlers``)."""
        if self._inflight is not None:
            self.log.warning(
                "Killed with %s task %s recorded: a retry or clear resumes it; a stop cancels it",
                self._inflight.provider,
                self._inflight.provider_task_id,
            )

    def _finish(
        self, storage: Storage, job: JobSettings, result: VideoSegment, started: datetime
    ) -> dict[str, Any]:
        return finish_segment(
            storage,
            job_id=job.job_id,
            stage=self.stage,
            result=result,
            started=started,
            total=int(self.total),
            run_id=get_current_context()["run_id"],
            progress_round=self.progress_round,
            log=self.log,
        )


class GenerateImageOperator(SegmentOperator):
    """Generates (or reuses from the cache) one segment's image.

    :param job: the job's settings (``JobSettings`` as JSON; templated).
    :param segment: the segment (``VideoSegment`` as JSON), or its number when ``segment_from`` handed it off
        (templated, mapped over).
    :param total: the number of segments (progress milestones; templated).
    :param segment_from: the task id of the step that handed the segments off, when ``segment`` is a number.
    :param conn_ids: connection id per provider name, where not the provider's own.
    """

    stage = "images"
    ui_color = "#e8f1fb"

    def local_step(self) -> Step:
        return generate_image

    def submit(self, client: RemoteClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        assert isinstance(planned.request, ImageRequest)
        return client.submit_image(planned.request)


class AnimateSegmentOperator(SegmentOperator):
    """Turns one approved image into a clip; fails clearly if the image object is missing.

    :param job: the job's settings (``JobSettings`` as JSON; templated).
    :param segment: the segment (``VideoSegment`` as JSON), or its number when ``segment_from`` handed it off
        (templated, mapped over).
    :param total: the number of segments (progress milestones; templated).
    :param segment_from: the task id of the step that handed the segments off, when ``segment`` is a number.
    :param conn_ids: connection id per provider name, where not the provider's own.
    """

    stage = "clips"
    ui_color = "#fbeee8"

    def local_step(self) -> Step:
        return animate_segment

    def submit(self, client: RemoteClient, storage: Storage, planned: Planned, segment: VideoSegment) -> str:
        assert isinstance(planned.request, ClipRequest) and segment.image_key
        with tempfile.TemporaryDirectory(prefix="vp-source-") as tmp:
            image = storage.download_to(segment.image_key, Path(tmp) / "image.png")
            url = None
            if image_source() == "presigned" and isinstance(storage, S3Storage):
                # Storage the provider can reach itself (S3 on the internet): hand it a short-lived https link.
                url = storage.url_for_preview(segment.image_key, 3600)
            return client.submit_clip(planned.request, SourceImage(image, url))
