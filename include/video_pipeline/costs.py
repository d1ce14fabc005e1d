"""Credit estimates per segment and per stage, from each stage's provider (1 credit = US$0.01; a provider's
prices live with it, ``video_pipeline.providers.<name>``). Local providers cost nothing."""

from __future__ import annotations

from video_pipeline.generation import clip_request, image_request
from video_pipeline.models import JobSettings, ProviderChoice, SpendStage, VideoSegment
from video_pipeline.providers import registry
from video_pipeline.providers.port import RemoteProvider

#: Stands in for the image's digest in a clip estimate made before the image exists (prices do not depend on it).
_UNKNOWN_IMAGE = "0" * 64


def narration_estimate(job: JobSettings, segment: VideoSegment) -> float:
    """Credits speaking one segment's narration costs with the job's voice (0 without narration or voice)."""
    if job.voice is None or not segment.narration:
        return 0.0
    return registry.speech(job.voice.provider).estimate(job.voice.request(segment.narration))


def segment_estimate(
    job: JobSettings, segment: VideoSegment, stage: SpendStage, choice: ProviderChoice | None = None
) -> float:
    """Credits one segment's output costs at a stage, by the stage's provider (or ``choice``)."""
    if stage == "narration":
        return narration_estimate(job, segment)
    choice = choice or job.choice(stage)
    provider = registry.get(choice.provider)
    if not isinstance(provider, RemoteProvider):
        return 0.0
    if stage == "images":
        return provider.estimate(image_request(job, segment, choice))
    return provider.estimate(clip_request(job, segment, _UNKNOWN_IMAGE, choice))


def takes_estimate(job: JobSettings, segment: VideoSegment, stage: SpendStage) -> float:
    """Credits one segment costs at a stage with all its takes (each take is one paid output; a narration
    is spoken once)."""
    takes = 1 if stage == "narration" else job.stage_takes(stage)
    return segment_estimate(job, segment, stage) * takes


def stage_estimates(job: JobSettings, segments: list[VideoSegment]) -> dict[SpendStage, float]:
    """Credits per stage for ``segments``, every take counted (only the picked image is animated: the clips
    cost their own takes, not the images' times the clips')."""
    return {
        stage: sum(takes_estimate(job, s, stage) for s in segments)
        for stage in ("narration", "images", "clips")
    }


def check_affordable(job: JobSettings, segments: list[VideoSegment]) -> None:
    """Refuse a job whose estimate exceeds its budget before anything is spent."""
    if job.budget_credits is None:
        return
    total = sum(stage_estimates(job, segments).values())
    if total > job.budget_credits:
        raise ValueError(
            f"budget_credits: the job is estimated at {total:g} credits, over its budget of {job.budget_credits}"
        )
