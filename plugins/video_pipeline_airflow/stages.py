"""The sequential steps of ``video_generation`` (validate, assemble, publish) and the ends of a run (failure,
rejection, a person's stop, the salvage sweep) as plain functions.

The DAG files wrap each in ``@task`` or a callback; keeping them here keeps the DAG files to the wiring alone.
A run claims its job in ``validate_job`` (one active run per job), settles what earlier stopped runs left at
the provider, and appends itself to the manifest's history; it releases the job when it publishes, is
rejected, fails or is stopped.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.sdk import Context, get_current_context
from airflow.sdk.exceptions import AirflowFailException
from pydantic import ValidationError

from video_pipeline.claims import Claim, JobClaimed, RunIsActive, claim_job, current_claim, release_claim
from video_pipeline.costs import check_affordable, stage_estimates
from video_pipeline.handoff import hand_off
from video_pipeline.manifest import begin_run, load_manifest, mark_run_ended, merge_segments, save_manifest
from video_pipeline.manifest import end_run as manifest_end_run
from video_pipeline.media.audio_track import check_stored_track
from video_pipeline.models import (
    FinalVideo,
    JobSpec,
    Manifest,
    RunStatus,
    VideoSegment,
    describe_validation_error,
)
from video_pipeline.policy import check_policy, is_nightly
from video_pipeline.progress import rebuild_progress
from video_pipeline.providers import registry
from video_pipeline.providers.port import RemoteClient
from video_pipeline.published import PublishedVideo, run_credits_by_stage
from video_pipeline.salvage import Settled, cancel_in_flight, salvage_all, salvage_job, settle
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import Storage
from video_pipeline.submissions import run_submissions
from video_pipeline_airflow import metrics
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify
from video_pipeline_airflow.runs import run_checker
from video_pipeline_airflow.settings import job_policy

log = logging.getLogger(__name__)


#: What ``validate_job`` hands on besides the segments it returns, as XCom keys (in this order): the validated
#: spec, its settings (the spec without its segments) and the segment count.
VALIDATED_PARTS = ("job", "settings", "total")

#: The conf key under which the OpenLineage provider passes a triggering task's ids to the run it triggers.
OPENLINEAGE_PARENT_KEY = "openlineage"


class InvalidJobSpec(AirflowFailException):
    """The job spec cannot run: fails the run at once (no retry), before any provider is called."""


def validate_job(context: Context) -> list[int]:
    """Validate the trigger conf as a JobSpec, hold it to the deployment's policy, check its audio track, split
    it into segments, and start the manifest. All of it before any provider call: a spec that cannot finish is
    refused before anything is spent, with the field named.

    Returns the segment numbers (what the first mapped stage maps over) and hands each segment off in
    storage for its task to read (:mod:`video_pipeline.handoff`: returning the segments themselves would make
    every mapped task read all N). The validated spec, its settings (what each segment's task needs) and the
    segment count go to the XCom keys ``job``, ``settings`` and ``total`` (Airflow maps only over a task's
    return value).
    """
    # The conf laid over the Params, whose defaults are the spec's own (params.py); None is a form field left
    # empty, which means the spec's default too.
    params = {k: v for k, v in dict(context["params"]).items() if v is not None}
    # A run another DAG triggered (the nightly and arrival batches) carries its parent's OpenLineage ids in
    # its conf when lineage is on: the provider's TriggerDagRunOperator adds them. Run metadata, not the spec.
    params.pop(OPENLINEAGE_PARENT_KEY, None)
    storage = get_storage()
    try:
        job = JobSpec.model_validate(params)
        segments = segments_for(job)
        check_affordable(job, segments)
        estimates = stage_estimates(job, segments)
        nightly = is_nightly(context["run_id"])
        check_policy(job, estimate_credits=sum(estimates.values()), nightly=nightly, policy=job_policy())
        if job.finishing.audio_key:
            check_stored_track(storage, job.finishing.audio_key)
        check_provider_ready(job)
    except ValidationError as exc:
        raise InvalidJobSpec(f"invalid job spec: {describe_validation_error(exc)}") from None
    except ValueError as exc:
        raise InvalidJobSpec(f"invalid job spec: {exc}") from None
    run_id = context["run_id"]
    is_active = run_checker(context)
    claim = claim_for_run(storage, job.job_id, run_id, context["ti"].dag_id, is_active)
    if claim.took_over_from:
        log.warning(
            "Took job %s over from run %s, which ended without releasing it", job.job_id, claim.took_over_from
        )
    salvage_before_run(storage, job.job_id, is_active)
    begin_run(storage, job, run_id, segments, credits_estimate=sum(estimates.values()))
    log.info(
        "Credit estimate: narration %g, images %g, clips %g",
        estimates["narration"],
        estimates["images"],
        estimates["clips"],
    )
    log.info(
        "Job %s: %d segments, %g s of video, storage %s",
        job.job_id,
        len(segments),
        sum(s.duration_s for s in segments),
        storage.url,
    )
    parts = {
        "job": job.model_dump(mode="json"),
        "settings": job.settings().model_dump(mode="json"),
        "total": len(segments),
    }
    for key in VALIDATED_PARTS:
        context["ti"].xcom_push(key=key, value=parts[key])
    return hand_off(storage, job.job_id, run_id, context["ti"].task_id, segments)


def check_provider_ready(job: JobSpec) -> None:
    """Every remote provider (and paid voice) the job may use has a key before anything runs (no point
    generating images that cannot be animated). A fallback counts: it is used exactly when the first choice
    cannot take the work."""
    if job.voice is not None and registry.speech(job.voice.provider).conn_id is not None:
        hook = ProviderHook(job.voice.provider)
        try:
            hook.endpoint()
        except Exception as exc:
            raise ValueError(
                f"voice.provider: {job.voice.provider} is not configured ({exc}); set the {hook.conn_id} connection"
            ) from None
    for stage in ("images", "clips"):
        choice = job.choice(stage)
        for option in (choice, choice.fallback):
            if option is None or not registry.is_remote(option.provider):
                continue
            hook = ProviderHook(option.provider)
            try:
                hook.endpoint()
            except Exception as exc:
                raise ValueError(
                    f"provider: {option.provider} is not configured ({exc}); set the {hook.conn_id} connection"
                ) from None


def claim_for_run(
    storage: Storage, job_id: str, run_id: str, dag_id: str | None, is_active: RunIsActive
) -> Claim:
    """One active run per job: refuse this run (before anything is spent) while another one holds the job."""
    try:
        return claim_job(storage, job_id, run_id, dag_id, is_active)
    except JobClaimed as exc:
        raise JobAlreadyRunning(str(exc)) from None


class JobAlreadyRunning(AirflowFailException):
    """Another run of the same job is active: fails this run at once (no retry), before any provider call."""


def salvage_before_run(storage: Storage, job_id: str, is_active: RunIsActive) -> None:
    """Settle what earlier, stopped runs of the job left with the provider (their finished outputs go to the
    cache, so this run reuses them for free). A failure here does not stop the run: its tasks resume any
    record left over instead of paying again, and the salvage sweep tries again."""
    try:
        settled = salvage_job(storage, job_id, is_active, provider_client)
    except Exception:
        log.exception("Salvage of job %s before the run failed; the salvage sweep will try again", job_id)
        return
    for result in settled:
        log.warning("Salvage before the run: %s", result.describe())


def provider_client(provider: str) -> RemoteClient:
    """A client of the named remote provider, with its connection's key (the salvage's client factory)."""
    return ProviderHook(provider).get_client()


def assemble(job: dict[str, Any], segments: list[dict[str, Any]]) -> dict[str, Any]:
    # Imported here: PyAV, Pillow and the finishing code cost every task process ~50 ms of DAG parsing.
    from video_pipeline.media.assemble import assemble_job

    spec = JobSpec.model_validate(job)
    final = assemble_job(get_storage(), spec, [VideoSegment.model_validate(s) for s in segments])
    log.info(
        "final.mp4: %.2f s, %dx%d %s, %d bytes, streams %s, assembled in %.1f s",
        final.duration_s,
        final.width,
        final.height,
        final.codec,
        final.size_bytes,
        final.streams,
        final.assembly_s or 0.0,
    )
    copied = len(segments) - len(final.reencoded)
    log.info("%d of %d segments stream-copied, %d transitions", copied, len(segments), final.transitions)
    for index, reasons in sorted(final.reencoded.items()):
        log.info("seg %03d re-encoded: %s", index, ", ".join(reasons))
    for label, key in (
        ("poster", final.poster_key),
        ("preview", final.preview_key),
        ("subtitles", final.subtitles_key),
    ):
        if key:
            log.info("%s: %s", label, key)
    return final.model_dump(mode="json")


def _window(starts: list[datetime | None], ends: list[datetime | None]) -> float | None:
    known_starts = [s for s in starts if s]
    known_ends = [e for e in ends if e]
    if not known_starts or not known_ends:
        return None
    return round((max(known_ends) - min(known_starts)).total_seconds(), 3)


def publish(job: dict[str, Any], segments: list[dict[str, Any]], final: dict[str, Any]) -> PublishedVideo:
    """Complete the manifest: every segment, decisions, credits, stage timings and the final video's probe;
    close the run's record and release the job for its next run. Returns what the run published (the asset
    event's ``extra``)."""
    spec = JobSpec.model_validate(job)
    storage = get_storage()
    run_id = get_current_context()["run_id"]
    manifest = load_manifest(storage, spec.job_id) or Manifest(job=spec)
    done = [VideoSegment.model_validate(s) for s in segments]
    merge_segments(manifest, done)
    manifest.final = FinalVideo.model_validate(final)
    manifest.status = "succeeded"
    for stage, start, end in (
        ("narration", "narration_started_at", "narration_finished_at"),
        ("images", "image_started_at", "image_finished_at"),
        ("clips", "clip_started_at", "clip_finished_at"),
    ):
        window = _window([getattr(s, start) for s in done], [getattr(s, end) for s in done])
        if window is not None:
            manifest.timings_s[stage] = window
    for decision in manifest.decisions:
        if decision.opened_at and decision.run_id == manifest.run_id:
            manifest.timings_s[f"{decision.stage}_gate_wait"] = round(
                (decision.at - decision.opened_at).total_seconds(), 3
            )
    mark_run_ended(manifest, run_id, "succeeded")
    save_manifest(storage, manifest)
    if release_claim(storage, spec.job_id, run_id):  # once, however often publish is retried
        metrics.run_ended("succeeded", run_credits_by_stage(manifest, run_id))
    rebuild_progress(storage, spec.job_id)
    published = PublishedVideo.of(storage, manifest, run_id)
    # The storage URI, not the presigned link: a log is kept and read for longer than a link may be used.
    log.info("Published %s (manifest %s)", published.final_uri, published.manifest_uri)
    url = storage.url_for_preview(manifest.final.key)
    notify(f"{spec.job_id}: finished", f"final.mp4 {manifest.final.duration_s:.1f} s at {url}")
    return published


def end_run(job_id: str, run_id: str, status: RunStatus, reason: str) -> list[Settled]:
    """A run ends without its results (failed, rejected, stopped): it submits nothing more, its running
    provider tasks are cancelled (each recorded in the ledger), and — if it holds the job — its end goes into
    the manifest and the job is released for the next run. Finished outputs are left for the salvage sweep."""
    storage = get_storage()
    settled = cancel_in_flight(storage, job_id, run_id, provider_client, reason)
    for result in settled:
        log.warning("Run %s ended (%s): %s", run_id, status, result.describe())
    holder = current_claim(storage, job_id)
    if holder is not None and holder.run_id == run_id:
        manifest = manifest_end_run(storage, job_id, run_id, status, reason)
        if release_claim(storage, job_id, run_id) and manifest is not None:
            metrics.run_ended(status, run_credits_by_stage(manifest, run_id))
    elif holder is not None:
        log.info(
            "Run %s does not hold job %s (run %s does): its manifest is left alone",
            run_id,
            job_id,
            holder.run_id,
        )
    return settled


def on_run_failure(context: Context) -> None:
    """DAG callback: a failed run stops paying for work nobody will use, and releases its job."""
    job_id = (context["dag_run"].conf or {}).get("job_id")
    run_id = context["dag_run"].run_id
    if job_id:
        end_run(str(job_id), run_id, "failed", "the run failed")
        notify(f"{job_id}: run failed", f"run {run_id} failed; see the Airflow UI")


def on_task_stopped(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    job_id: str,
    reason: str,
    details: dict[str, Any] | None = None,
) -> list[Settled]:
    """A person ended one segment task without its result (``stop_handlers``): its provider task is cancelled
    and recorded (a finished one is left for the salvage sweep). The run goes on. ``details`` from the task's
    trigger name the exact record; otherwise the records this task instance submitted are settled."""
    storage = get_storage()
    record_id = (details or {}).get("record_id")
    # Only submitted provider tasks can be cancelled; a record still submitting (e.g. a voice's one POST) is
    # settled by the task's next attempt.
    records = [
        r
        for r in run_submissions(storage, job_id, run_id)
        if r.state == "submitted"
        and (r.record_id == record_id if record_id else r.same_task_instance(run_id, task_id, map_index))
    ]
    if not records:
        return []
    settled = []
    for record in records:
        with provider_client(record.provider) as client:
            settled.append(settle(storage, record, client, fetch=False))
    for result in settled:
        log.warning("Task %s[%s] stopped (%s): %s", task_id, map_index, reason, result.describe())
    return settled


def salvage_sweep(context: Context) -> dict[str, list[str]]:
    """The salvage DAG's task: settle every recorded provider task whose run is no longer active."""
    report = salvage_all(get_storage(), run_checker(context), provider_client)
    summary = {job_id: [r.describe() for r in results] for job_id, results in report.items()}
    for job_id, lines in summary.items():
        for line in lines:
            log.info("%s: %s", job_id, line)
    log.info("Salvage sweep: %d job(s) with recorded provider tasks", len(summary))
    return summary
