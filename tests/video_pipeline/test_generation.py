"""One segment's output: planned under a content-addressed key that names who makes it, reused from the cache
(no provider call), checked before it is stored, and recorded with its provider and model."""

from __future__ import annotations

from pathlib import Path

import pytest

from video_pipeline.generation import Planned, generate_image, local_choice, plan_image, reuse, store
from video_pipeline.models import JobSpec, ProviderChoice
from video_pipeline.outputs import OutputRejected
from video_pipeline.providers.storyboard import PROVIDER as STORYBOARD
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import Storage


def job(**overrides: object) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "gen", "title": "t", "seed": 3, "segments": [{"prompt": "a quiet harbour"}], **overrides}
    )


def test_the_plan_names_provider_and_model_and_travels_as_json() -> None:
    spec = job(images={"provider": "runway"})
    planned = plan_image(spec, segments_for(spec)[0])
    assert (planned.provider, planned.request.model) == ("runway", "gen4_image")
    assert Planned.from_dict(planned.to_dict()) == planned
    other = plan_image(spec, segments_for(spec)[0], ProviderChoice(provider="fal", model="fal-ai/flux/dev"))
    assert other.digest != planned.digest and other.cache_key != planned.cache_key  # who makes it matters
    assert other.target == planned.target  # but it lands in the same place in the job


def test_a_new_seed_keeps_the_output_slot() -> None:
    spec = job(provider="runway")
    planned = plan_image(spec, segments_for(spec)[0])
    reseeded = planned.with_seed(99)
    assert reseeded.request.seed == 99 and (reseeded.digest, reseeded.cache_key) == (
        planned.digest,
        planned.cache_key,
    )


def test_a_local_render_is_cached_and_reused_with_who_made_it(storage: Storage) -> None:
    spec = job()
    segment = segments_for(spec)[0]
    made = generate_image(storage, spec, segment, STORYBOARD)
    assert (made.image_provider, made.image_model, made.image_cache_hit) == ("storyboard", "card", False)
    again = generate_image(storage, spec, segment, STORYBOARD)
    assert again.image_cache_hit and storage.get_bytes(again.image_key or "") == storage.get_bytes(
        made.image_key or ""
    )


def test_a_local_fallback_renders_under_its_own_choice() -> None:
    spec = job(images={"provider": "runway", "fallback": {"provider": "storyboard"}})
    assert local_choice(spec, "images", STORYBOARD) == ProviderChoice(provider="storyboard", model="card")


def test_nothing_unchecked_enters_the_cache(storage: Storage, tmp_path: Path) -> None:
    spec = job(provider="runway")
    segment = segments_for(spec)[0]
    planned = plan_image(spec, segment)
    bogus = tmp_path / "output.png"
    bogus.write_bytes(b"<html>not an image</html>")
    with pytest.raises(OutputRejected):
        store(storage, planned, segment, bogus, task_id="t-1")
    assert not storage.exists(planned.cache_key) and reuse(storage, planned, segment) is None
