"""The sequential steps of ``video_generation`` (validate, assemble, publish) as plain functions.

The DAG file wraps each in ``@task``; keeping them here keeps the DAG file to the wiring alone.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException
from pydantic import ValidationError

from video_pipeline.audio_mix import check_stored_track
from video_pipeline.costs import check_affordable, stage_estimates
from video_pipeline.manifest import load_manifest, merge_segments, save_manifest
from video_pipeline.models import FinalVideo, JobSpec, Manifest, VideoSegment, describe_validation_error
from video_pipeline.policy import check_policy, is_nightly
from video_pipeline.progress import rebuild_progress
from video_pipeline.segmentation import segments_for
from video_pipeline.submissions import clear_submission, pending_submissions
from video_pipeline_airflow.hooks.runway import RunwayHook
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.notify import notify
from video_pipeline_airflow.settings import job_policy

log = logging.getLogger(__name__)


class InvalidJobSpec(AirflowFailException):
    """The job spec cannot run: fails the run at once (no retry), before any provider is called."""


def validate_job(context: Context) -> list[dict[str, Any]]:
    """Validate the trigger conf as a JobSpec, hold it to the deployment's policy, check its audio track, split
    it into segments, and start the manifest. All of it before any provider call: a spec that cannot finish is
    refused before anything is spent, with the field named.

    Returns the segments (what the image stage maps over); the validated spec, its settings (what each
    segment's task needs) and the segment count go to the XCom keys ``job``, ``settings`` and ``total``
    (Airflow maps only over a task's return value).
    """
    # The conf laid over the Params, whose defaults are the spec's own (params.py); None is a form field left
    # empty, which means the spec's default too.
    params = {k: v for k, v in dict(context["params"]).items() if v is not None}
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
    manifest = Manifest(
        job=job, run_id=context["run_id"], segments=segments, credits_estimate=sum(estimates.values())
    )
    save_manifest(storage, manifest)
    log.info("Credit estimate: images %g, clips %g", estimates["images"], estimates["clips"])
    log.info(
        "Job %s: %d segments, %g s of video, storage %s",
        job.job_id,
        len(segments),
        sum(s.duration_s for s in segments),
        storage.url,
    )
    ti = context["ti"]
    ti.xcom_push(key="job", value=job.model_dump(mode="json"))
    ti.xcom_push(key="settings", value=job.settings().model_dump(mode="json"))
    ti.xcom_push(key="total", value=len(segments))
    return [s.model_dump(mode="json") for s in segments]


def check_provider_ready(job: JobSpec) -> None:
    """A Runway job needs a key before anything runs (no point generating images that cannot be animated)."""
    if job.provider != "runway":
        return
    try:
        RunwayHook().get_client().close()
    except Exception as exc:
        raise ValueError(
            f"provider: runway is not configured ({exc}); set the runway_default connection"
        ) from None


def assemble(job: dict[str, Any], segments: list[dict[str, Any]]) -> dict[str, Any]:
    # Imported here: PyAV, Pillow and the finishing code cost every task process ~50 ms of DAG parsing.
    from video_pipeline.final_video import assemble_job

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


def publish(job: dict[str, Any], segments: list[dict[str, Any]], final: dict[str, Any]) -> str:
    """Complete the manifest: every segment, decisions, credits, stage timings and the final video's probe."""
    spec = JobSpec.model_validate(job)
    storage = get_storage()
    manifest = load_manifest(storage, spec.job_id) or Manifest(job=spec)
    done = [VideoSegment.model_validate(s) for s in segments]
    merge_segments(manifest, done)
    manifest.final = FinalVideo.model_validate(final)
    manifest.status = "succeeded"
    for stage, start, end in (
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
    save_manifest(storage, manifest)
    rebuild_progress(storage, spec.job_id)
    url = storage.url_for_preview(manifest.final.key)
    log.info("Published %s (manifest %s)", url, spec.job_id)
    notify(f"{spec.job_id}: finished", f"final.mp4 {manifest.final.duration_s:.1f} s at {url}")
    return url


def cancel_in_flight(job_id: str) -> int:
    """Cancel the job's provider tasks that were paid for but whose output is not stored yet (DELETE)."""
    storage = get_storage()
    pending = pending_submissions(storage, job_id)
    if not pending:
        return 0
    with RunwayHook().get_client() as client:
        for kind, submission in pending:
            client.cancel_task(submission.provider_task_id)
            clear_submission(storage, kind, submission.digest)
            log.warning(
                "Cancelled Runway task %s (segment %d)", submission.provider_task_id, submission.index
            )
    return len(pending)


def on_run_failure(context: Context) -> None:
    """DAG callback: a failed run stops paying for work nobody will use."""
    job_id = (context["dag_run"].conf or {}).get("job_id")
    if job_id:
        cancel_in_flight(str(job_id))
        notify(f"{job_id}: run failed", f"run {context['dag_run'].run_id} failed; see the Airflow UI")
