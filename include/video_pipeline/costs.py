"""Credit estimates per segment and per stage, from the provider's pricing table (one place: runway.PRICING)."""

from __future__ import annotations

from video_pipeline.models import JobSpec, Stage, VideoSegment
from video_pipeline.providers.runway import estimate_credits


def segment_estimate(job: JobSpec, segment: VideoSegment, stage: Stage) -> float:
    if job.provider != "runway":
        return 0.0
    if stage == "images":
        return estimate_credits("image", job.image_model, resolution=job.ratio)
    return estimate_credits("video", job.video_model, duration_s=segment.duration_s)


def stage_estimates(job: JobSpec, segments: list[VideoSegment]) -> dict[Stage, float]:
    return {stage: sum(segment_estimate(job, s, stage) for s in segments) for stage in ("images", "clips")}


def check_affordable(job: JobSpec, segments: list[VideoSegment]) -> None:
    """Refuse a job whose estimate exceeds its budget before anything is spent."""
    if job.budget_credits is None:
        return
    total = sum(stage_estimates(job, segments).values())
    if total > job.budget_credits:
        raise ValueError(
            f"budget_credits: the job is estimated at {total:g} credits, over its budget of {job.budget_credits}"
        )
