"""One segment's narration: spoken by the job's voice, cached by content, stored next to the images, and the
segment fitted to it.

A narration is keyed by everything that determines its audio (voice provider, model, voice, language, speed,
text), so a re-run, or a redo that leaves the text alone, speaks nothing again. The cache holds two objects
per narration: the audio, in the voice's own format, and its timing (:class:`NarrationTiming`: where speech
starts and ends in the file, when each word is said). The timing is written last and read first: it is the
entry's completion mark. Both are copied to ``jobs/<id>/narration/NNN.*``.

A segment that follows its voice (``duration_s: "auto"``) is then *fitted*: it lasts the voice's lead, the
spoken narration and the voice's tail (at least the shortest segment, ``MIN_DURATION_S``), and asks the clip
models for the shortest clip at least that long that they all make (or their longest: its last frame is held),
which assembly trims or holds to exactly that length.

A paid voice answers one synchronous POST, so what keeps it from being paid twice is the provider-task record
and the spend ledger of ``submissions``, used as for images and clips: the record is created exclusively before
the POST and the credits are reserved against the budget; an answer that proves nothing was spoken gives them
back; anything else after the request went out is *ambiguous* and never retried blindly; once the audio is
stored the ledger says it was paid and the record is removed (it never reaches ``submitted``: there is no
provider task to poll, cancel or salvage).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from video_pipeline.layout import JobLayout, cache_key, content_hash
from video_pipeline.media.audio_track import track_duration
from video_pipeline.media.ffmpeg import FFmpegError
from video_pipeline.models import MIN_DURATION_S, JobSettings, VideoSegment, utcnow
from video_pipeline.outputs import OutputRejected
from video_pipeline.providers import registry
from video_pipeline.providers.port import Action, Endpoint, ProviderError, Speech, SpeechRequest
from video_pipeline.storage import ObjectNotFound, Storage
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
    reserve_credits,
    run_stop_reason,
    stop_job,
    update_submission,
)
from video_pipeline.words import WordTiming

log = logging.getLogger(__name__)

#: A ``submitting`` narration record older than this was left by an attempt that died mid-POST (one POST,
#: with its retries on 429, ends well within it).
SUBMITTING_PATIENCE_S = 15 * 60.0
#: A voice's file may be this much shorter than it said (encoders round the last frame).
DURATION_TOLERANCE_S = 0.1


class NarrationTiming(BaseModel):
    """A spoken narration's timing (``jobs/<id>/narration/NNN.json``): its audio object, the request it
    answers, where speech starts and ends in the file and when each word is said (seconds from the file's
    start), and where the word times come from."""

    model_config = ConfigDict(extra="ignore")

    provider: str
    request: SpeechRequest
    audio_suffix: str
    duration_s: float
    speech_start_s: float
    speech_end_s: float
    words: list[WordTiming]
    timings: Literal["provider", "engine", "estimated"]

    @property
    def spoken_s(self) -> float:
        return round(self.speech_end_s - self.speech_start_s, 3)


@dataclass(frozen=True)
class NarrationPlan:
    """What a segment's narration is, and where it is cached and stored."""

    provider: str
    request: SpeechRequest
    digest: str
    cache_timing: str

    def cache_audio(self, suffix: str) -> str:
        return cache_key("narration", self.request.cache_fields(self.provider), suffix)


class NotSpoken(RuntimeError):
    """The narration was not spoken: ``retry`` says whether trying again later can help (else a person must
    look: an ambiguous paid request, a refusal, the budget, a stopped job)."""

    def __init__(self, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


def plan_narration(job: JobSettings, segment: VideoSegment) -> NarrationPlan | None:
    """The segment's narration by the job's voice; ``None`` without narration text or without a voice."""
    if job.voice is None or not segment.narration:
        return None
    request: SpeechRequest = job.voice.request(segment.narration)
    fields = request.cache_fields(job.voice.provider)
    return NarrationPlan(
        job.voice.provider, request, content_hash(fields), cache_key("narration", fields, ".json")
    )


def fit(job: JobSettings, segment: VideoSegment, spoken_s: float) -> VideoSegment:
    """The segment with its narration's length, and — when it follows its voice — fitted to it: its exact
    length (lead + speech + tail, at least ``MIN_DURATION_S``) and the clip length the clip models make for it."""
    update: dict[str, object] = {"narration_s": round(spoken_s, 3)}
    if segment.follows_voice and job.voice is not None:
        exact = round(max(float(MIN_DURATION_S), job.voice.lead_s + spoken_s + job.voice.tail_s), 3)
        wanted = math.ceil(exact - 1e-9)
        longest = job.longest_clip()
        update["fitted_s"] = exact
        update["duration_s"] = job.clip_length(wanted) if wanted <= longest else longest
    return segment.model_copy(update=update)


def estimated_fit(job: JobSettings, segment: VideoSegment, estimated_spoken_s: float) -> VideoSegment:
    """Before the voice has spoken: the segment fitted to an estimate of its narration (prices, the form)."""
    return fit(job, segment, estimated_spoken_s).model_copy(update={"narration_s": None})


def read_timing(storage: Storage, key: str) -> NarrationTiming:
    return NarrationTiming.model_validate_json(storage.get_bytes(key))


def _done(
    job: JobSettings, plan: NarrationPlan, segment: VideoSegment, timing: NarrationTiming, *, hit: bool
) -> VideoSegment:
    layout = JobLayout(job.job_id)
    spoken = segment.model_copy(
        update={
            "narration_key": layout.narration(segment.index, timing.audio_suffix),
            "narration_timing_key": layout.narration_timing(segment.index),
            "narration_provider": plan.provider,
            "narration_cache_hit": hit,
        }
    )
    return fit(job, spoken, timing.spoken_s)


def reuse(
    storage: Storage, job: JobSettings, plan: NarrationPlan, segment: VideoSegment
) -> VideoSegment | None:
    """The cached narration copied into the job's layout, or None on a cache miss. Costs no request."""
    try:
        timing = read_timing(storage, plan.cache_timing)
    except ObjectNotFound:
        return None
    _copy_to_layout(storage, job, plan, segment, timing.audio_suffix)
    return _done(job, plan, segment, timing, hit=True)


def _copy_to_layout(
    storage: Storage, job: JobSettings, plan: NarrationPlan, segment: VideoSegment, suffix: str
) -> None:
    layout = JobLayout(job.job_id)
    storage.copy(plan.cache_audio(suffix), layout.narration(segment.index, suffix))
    storage.copy(plan.cache_timing, layout.narration_timing(segment.index))


def verify_speech(speech: Speech) -> None:
    """The audio decodes as audio of the length the voice said (``OutputRejected`` otherwise): nothing enters
    the cache unchecked."""
    try:
        seconds = track_duration(speech.path)
    except FFmpegError as exc:
        raise OutputRejected(f"the voice's audio is not readable audio: {exc}") from None
    if seconds + DURATION_TOLERANCE_S < speech.speech_end_s:
        raise OutputRejected(
            f"the voice's audio is {seconds:.2f} s, shorter than its speech ({speech.speech_end_s:.2f} s)"
        )
    if not speech.speech_end_s > speech.speech_start_s:
        raise OutputRejected("the voice's audio holds no speech")


def store(
    storage: Storage, job: JobSettings, plan: NarrationPlan, segment: VideoSegment, speech: Speech
) -> VideoSegment:
    """Check a freshly spoken narration, then put it into the cache (audio, then timing) and the job's layout."""
    verify_speech(speech)
    suffix = speech.path.suffix
    timing = NarrationTiming(
        provider=plan.provider,
        request=plan.request,
        audio_suffix=suffix,
        duration_s=speech.duration_s,
        speech_start_s=speech.speech_start_s,
        speech_end_s=speech.speech_end_s,
        words=speech.words,
        timings=speech.timings,
    )
    storage.put_file(plan.cache_audio(suffix), speech.path, content_type=_content_type(suffix))
    storage.put_bytes(plan.cache_timing, timing.model_dump_json().encode(), "application/json")
    _copy_to_layout(storage, job, plan, segment, suffix)
    return _done(job, plan, segment, timing, hit=False)


def _content_type(suffix: str) -> str:
    return {".wav": "audio/wav", ".mp3": "audio/mpeg"}.get(suffix, "application/octet-stream")


def narrate(
    storage: Storage,
    job: JobSettings,
    segment: VideoSegment,
    *,
    attempt: Attempt,
    endpoint: Endpoint | None = None,
    writer_alive: Callable[[Submission], bool] = lambda record: True,
) -> VideoSegment:
    """The segment with its narration spoken (or reused from the cache) and stored, and fitted to it.

    ``endpoint``: a paid voice's URL and key; ``writer_alive``: whether the attempt that wrote a ``submitting``
    record can still finish its POST (its run is active). Raises :class:`NotSpoken`.
    """
    started = utcnow()
    plan = plan_narration(job, segment)
    if plan is None:
        return segment
    done = reuse(storage, job, plan, segment)
    if done is None:
        provider = registry.speech(plan.provider)
        if provider.conn_id is None:
            done = _speak(storage, job, plan, segment, None)
        else:
            done = _speak_paid(storage, job, plan, segment, attempt, endpoint, writer_alive)
    return _timed(done, started)


def _timed(segment: VideoSegment, started: datetime) -> VideoSegment:
    return segment.model_copy(update={"narration_started_at": started, "narration_finished_at": utcnow()})


def _speak(
    storage: Storage, job: JobSettings, plan: NarrationPlan, segment: VideoSegment, endpoint: Endpoint | None
) -> VideoSegment:
    with tempfile.TemporaryDirectory(prefix="vp-narration-") as tmp:
        speech = registry.speech(plan.provider).synthesize(plan.request, Path(tmp), endpoint)
        return store(storage, job, plan, segment, speech)


def _speak_paid(
    storage: Storage,
    job: JobSettings,
    plan: NarrationPlan,
    segment: VideoSegment,
    attempt: Attempt,
    endpoint: Endpoint | None,
    writer_alive: Callable[[Submission], bool],
) -> VideoSegment:
    label = f"seg {segment.index:03d} narration"
    current = load_submission(storage, job.job_id, "narration", plan.digest)
    if current is not None and not replaceable(storage, current):
        _check_writer(storage, current, attempt, writer_alive, label)
        raise NotSpoken(f"{label}: run {current.run_id} is speaking it; retrying later", retry=True)
    draft = Submission(
        kind="narration",
        provider=plan.provider,
        job_id=job.job_id,
        run_id=attempt.run_id,
        dag_id=attempt.dag_id,
        task_id=attempt.task_id,
        map_index=attempt.map_index,
        try_number=attempt.try_number,
        index=segment.index,
        seed=0,
        credits=registry.speech(plan.provider).estimate(plan.request),
        digest=plan.digest,
        plan={"request": plan.request.model_dump(mode="json")},
        segment=segment.model_dump(mode="json"),
    )
    if current is not None:
        log.warning(
            "%s: speaking anew in place of the ambiguous request %s (reported earlier)",
            label,
            current.record_id,
        )
    won = (
        create_submission(storage, draft) if current is None else replace_submission(storage, current, draft)
    )
    if not won:
        raise NotSpoken(f"{label}: another attempt started speaking it first; retrying later", retry=True)
    record = _reserve(storage, job, draft, label)
    with tempfile.TemporaryDirectory(prefix="vp-narration-") as tmp:
        try:
            speech = registry.speech(plan.provider).synthesize(plan.request, Path(tmp), endpoint)
        except ProviderError as exc:
            _refused(storage, job, record, exc, label)
        except ValueError as exc:  # refused before sending (a voice's checks, a key that cannot be sent)
            _give_back(storage, record, f"not spoken: {exc}")
            raise NotSpoken(f"{label}: {exc}", retry=False) from None
        except Exception as exc:
            # After the request may have gone out: never spoken again blindly.
            update_submission(storage, record.model_copy(update={"state": "ambiguous"}))
            raise NotSpoken(
                f"{label}: {type(exc).__name__} while {plan.provider} was speaking it, so it may have been "
                "billed; not asking again automatically. Clear the task to speak it again.",
                retry=False,
            ) from exc
        try:
            result = store(storage, job, plan, segment, speech)
        except OutputRejected as exc:
            record_spend_event(storage, record, "lost", note=f"audio refused, not cached: {exc}")
            clear_submission(storage, record)
            raise NotSpoken(
                f"{label}: {plan.provider}'s audio was refused and not cached ({exc}); the retry speaks it "
                "again (paid again)",
                retry=True,
            ) from None
    # Paid and stored: the ledger says so (its reservation stands), and the record has nothing left to guard.
    record_spend_event(storage, record, "submitted", note=f"spoken by {plan.provider}")
    clear_submission(storage, record)
    log.info("%s: spoken by %s (~%g credits)", label, plan.provider, record.credits)
    return result


def _check_writer(
    storage: Storage,
    record: Submission,
    attempt: Attempt,
    writer_alive: Callable[[Submission], bool],
    label: str,
) -> None:
    """Fail as an ambiguous request when the record's writer can no longer finish its POST."""
    if record.same_task_instance(attempt.run_id, attempt.task_id, attempt.map_index):
        why = "an earlier try of this task died while it was being spoken"
    elif (utcnow() - record.created_at).total_seconds() > SUBMITTING_PATIENCE_S:
        why = f"run {record.run_id} started speaking it over {SUBMITTING_PATIENCE_S / 60:g} min ago"
    elif record.run_id and not writer_alive(record):
        why = f"run {record.run_id}, which was speaking it, has ended"
    else:
        return
    report_ambiguous(storage, record)
    raise NotSpoken(
        f"{label}: {why}, so {record.provider} may have spoken (and billed) it, or not; not asking again "
        f"automatically. Check the {record.provider} account, then clear this task to speak it again.",
        retry=False,
    )


def _reserve(storage: Storage, job: JobSettings, record: Submission, label: str) -> Submission:
    """Check for a stop, reserve the credits, check again (clearing the record when nothing is sent)."""
    try:
        if reason := run_stop_reason(storage, job.job_id, record.run_id):
            raise NotSpoken(f"{label}: not spoken, the job was stopped: {reason}", retry=False)
        try:
            reservation = reserve_credits(storage, job.job_id, job.budget_credits, record)
        except BudgetExceeded as exc:
            raise NotSpoken(f"{label}: {exc}", retry=False) from None
    except Exception:
        clear_submission(storage, record)
        raise
    record = record.model_copy(update={"reservation_seq": reservation.seq})
    if reason := run_stop_reason(storage, job.job_id, record.run_id):
        _give_back(storage, record, "stopped before speaking")
        raise NotSpoken(f"{label}: not spoken, the job was stopped: {reason}", retry=False)
    return record


def _give_back(storage: Storage, record: Submission, why: str) -> None:
    release_credits(storage, record, why)
    clear_submission(storage, record)


def _refused(storage: Storage, job: JobSettings, record: Submission, exc: ProviderError, label: str) -> None:
    """Act on a failed request (always raises)."""
    provider = record.provider
    if exc.action == Action.AMBIGUOUS:
        update_submission(storage, record.model_copy(update={"state": "ambiguous"}))
        raise NotSpoken(
            f"{label}: the request was sent and what came back does not prove that {provider} spoke nothing, so "
            f"it may have been billed; not asking again automatically ({exc}). Check the {provider} account, "
            "then clear this task to speak it again.",
            retry=False,
        ) from None
    _give_back(storage, record, f"not spoken: {exc.action.value} ({provider})")
    if exc.action == Action.STOP_JOB:
        stop_job(storage, job.job_id, f"{provider} cannot pay for more narration ({exc})")
        raise NotSpoken(f"{label}: {exc}; the whole job stops", retry=False) from None
    if exc.action == Action.FAIL:
        raise NotSpoken(f"{label}: {provider} refused the request: {exc}", retry=False) from None
    raise NotSpoken(f"{label}: {provider} did not take the request ({exc}); retrying", retry=True) from None
