"""Credit estimates come from each stage's own provider (1 credit = US$0.01); local providers are free."""

from __future__ import annotations

from typing import Any

import pytest

from video_pipeline.costs import check_affordable, segment_estimate, stage_estimates
from video_pipeline.models import JobSpec, ProviderChoice
from video_pipeline.segmentation import segments_for

FLUX = "fal-ai/flux/dev"
KLING = "fal-ai/kling-video/v2.1/standard/image-to-video"


def spec(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "costs",
            "title": "t",
            "segments": [{"prompt": "a", "duration_s": 4}, {"prompt": "b", "duration_s": 7}],
            **overrides,
        }
    )


def test_the_offline_provider_costs_nothing() -> None:
    job = spec()
    assert set(stage_estimates(job, segments_for(job)).values()) == {0.0}


def test_each_stage_is_priced_by_its_own_provider_and_model() -> None:
    job = spec(images={"provider": "fal", "model": FLUX}, clips={"provider": "runway", "model": "gen4.5"})
    segments = segments_for(job)
    # fal: 2.5 credits an image at 1280:720 (1 MP); Runway gen4.5: 12 credits a second (4 s and 7 s)
    estimates = stage_estimates(job, segments)
    assert (estimates["images"], estimates["clips"]) == (5.0, 12 * (4 + 7))


def test_clips_are_priced_at_the_length_the_model_makes() -> None:
    job = spec(clips={"provider": "fal", "model": KLING})
    segments = segments_for(job)
    assert [s.duration_s for s in segments] == [5, 10]  # Kling makes 5 and 10 s
    assert [segment_estimate(job, s, "clips") for s in segments] == [28.0, 56.0]


def test_a_fallback_is_priced_when_asked_for() -> None:
    job = spec(images={"provider": "runway", "fallback": {"provider": "fal", "model": FLUX}})
    segment = segments_for(job)[0]
    assert segment_estimate(job, segment, "images") == 5.0  # Runway gen4_image at 720p
    fallback = ProviderChoice(provider="fal", model=FLUX)
    assert segment_estimate(job, segment, "images", fallback) == 2.5


def test_a_job_over_its_budget_is_refused_before_any_spend() -> None:
    job = spec(provider="runway", budget_credits=50)
    with pytest.raises(ValueError, match="estimated at 65 credits, over its budget of 50"):
        check_affordable(job, segments_for(job))  # images 2 × 5, clips 11 s × 5
    check_affordable(spec(provider="runway", budget_credits=65), segments_for(job))
