"""Takes: the spec's ``takes`` (bounds, types, the top-level shorthand), their seeds and keys, their cost, the
reviewer's picks (valid, out of range, defaults) and the manifest that keeps every take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from video_pipeline.costs import check_affordable, segment_estimate, stage_estimates, takes_estimate
from video_pipeline.generation import make_takes, plan_clip, plan_image
from video_pipeline.layout import JobLayout
from video_pipeline.manifest import load_manifest, save_manifest
from video_pipeline.models import Decision, JobSettings, JobSpec, Manifest, VideoSegment
from video_pipeline.outputs import verify_output
from video_pipeline.providers.base import ClipRequest
from video_pipeline.providers.storyboard import PROVIDER as STORYBOARD
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage, check_key
from video_pipeline.takes import (
    TAKE_SEED_STEP,
    apply_picks,
    merge_takes,
    pick_errors,
    take_seed,
)

FLUX = "fal-ai/flux/dev"


def spec(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "takes",
            "title": "t",
            "seed": 7,
            "segments": [{"prompt": "a fox", "duration_s": 5}, {"prompt": "a fox", "duration_s": 5}],
            **overrides,
        }
    )


# -- the spec ------------------------------------------------------------------------------------------------


def test_one_take_is_the_default() -> None:
    job = spec()
    assert (job.takes, job.stage_takes("images"), job.stage_takes("clips")) == (1, 1, 1)


@pytest.mark.parametrize("takes", [1, 2, 3, 4])
def test_a_stage_makes_one_to_four_takes(takes: int) -> None:
    job = spec(images={"provider": "storyboard", "takes": takes})
    assert (job.stage_takes("images"), job.stage_takes("clips")) == (takes, 1)
    assert job.choice("images").takes == takes


@pytest.mark.parametrize("takes", [0, 5, -1, 2.0, "2", True, None, [2]])
@pytest.mark.parametrize("where", ["images", "clips", "top"])
def test_takes_out_of_bounds_or_not_an_integer_is_refused_naming_the_field(takes: Any, where: str) -> None:
    overrides = {"takes": takes} if where == "top" else {where: {"provider": "storyboard", "takes": takes}}
    with pytest.raises(ValidationError) as caught:
        spec(**overrides)
    locs = {".".join(map(str, e["loc"])) for e in caught.value.errors()}
    assert locs == {"takes" if where == "top" else f"{where}.takes"}


def test_the_top_level_takes_applies_to_both_stages_and_a_stage_of_its_own_wins() -> None:
    shorthand = spec(takes=3)
    assert (shorthand.stage_takes("images"), shorthand.stage_takes("clips")) == (3, 3)
    assert shorthand.choice("clips").takes == 3
    mixed = spec(takes=3, images={"provider": "storyboard", "takes": 2}, clips={"provider": "storyboard"})
    assert (mixed.stage_takes("images"), mixed.stage_takes("clips")) == (2, 3)


def test_takes_read_back_the_same_from_the_settings_each_task_gets() -> None:
    """Each segment's task gets the settings as JSON: the resolved takes must survive the round trip."""
    job = spec(takes=3, images={"provider": "storyboard", "takes": 1}, clips={"provider": "storyboard"})
    again = JobSettings.of(job.settings().model_dump(mode="json"))
    assert (again.stage_takes("images"), again.stage_takes("clips")) == (1, 3)
    assert JobSpec.model_validate(job.model_dump(mode="json")) == job


# -- seeds and keys --------------------------------------------------------------------------------------------


def test_take_one_keeps_the_seed_and_each_other_take_gets_its_own() -> None:
    assert take_seed(7, 1) == 7
    seeds = [take_seed(7, t) for t in range(1, 5)]
    assert len(set(seeds)) == 4 and seeds[1] == 7 + TAKE_SEED_STEP
    assert take_seed(2**32 - 1, 2) == TAKE_SEED_STEP - 1  # stays in the spec's seed range
    with pytest.raises(ValueError, match="between 1 and 4"):
        take_seed(7, 5)


def test_take_one_keeps_todays_key_and_the_others_get_their_own() -> None:
    layout = JobLayout("fox")
    assert layout.take_key("images", 3, 1) == layout.image(3) == "jobs/fox/images/003.png"
    assert layout.take_key("clips", 3, 1) == layout.clip(3) == "jobs/fox/clips/003.mp4"
    assert layout.take_key("images", 3, 2) == "jobs/fox/images/003.t2.png"
    assert layout.take_key("clips", 12, 4) == "jobs/fox/clips/012.t4.mp4"
    for take in range(1, 5):
        check_key(layout.take_key("clips", 1, take))
    with pytest.raises(ValueError, match="start at 1"):
        layout.take_key("images", 1, 0)


def test_a_take_is_its_own_output_and_never_a_neighbours() -> None:
    """Two segments with the same prompt on a provider whose cache ignores the position: take 2 of segment 1
    must not be segment 2's take 1 (the same seed would make them one cached output)."""
    job = spec(images={"provider": "fal", "model": FLUX, "takes": 2}, budget_credits=100)
    first, second = segments_for(job)
    plans = [plan_image(job, s, take=t) for s in (first, second) for t in (1, 2)]
    assert len({p.cache_key for p in plans}) == 4 and len({p.digest for p in plans}) == 4
    assert (
        plans[0].target == "jobs/takes/images/001.png" and plans[1].target == "jobs/takes/images/001.t2.png"
    )
    assert plans[1].request.seed == take_seed(first.seed, 2)


def test_every_take_of_a_storyboard_segment_differs_and_is_stored_at_its_key(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec(takes=2)
    segment = segments_for(job)[0]
    image = make_takes(storage, job, segment, STORYBOARD, "images")
    assert image.image_takes == ["jobs/takes/images/001.png", "jobs/takes/images/001.t2.png"]
    assert (image.image_key, image.image_pick) == ("jobs/takes/images/001.png", 1)
    first, second = (storage.get_bytes(k) for k in image.image_takes)
    assert first != second
    for key in image.image_takes:
        verify_output("images", storage.path_for(key))
    clip = make_takes(storage, job, image, STORYBOARD, "clips")
    assert clip.clip_takes == ["jobs/takes/clips/001.mp4", "jobs/takes/clips/001.t2.mp4"]
    assert clip.image_takes == image.image_takes  # the image's takes stay with the segment
    assert storage.get_bytes(clip.clip_takes[0]) != storage.get_bytes(clip.clip_takes[1])
    # the clips are made from the picked image: picking take 2 plans the clips from it
    picked = apply_picks([image], "images", {1: 2})[0]
    from_pick, from_first = plan_clip(storage, job, picked).request, plan_clip(storage, job, image).request
    assert isinstance(from_pick, ClipRequest) and isinstance(from_first, ClipRequest)
    assert from_pick.image_sha256 != from_first.image_sha256


def test_one_take_lists_no_takes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec()
    image = make_takes(storage, job, segments_for(job)[0], STORYBOARD, "images")
    assert (image.image_key, image.image_takes, image.image_pick) == ("jobs/takes/images/001.png", [], 1)
    assert image.takes("images") == ["jobs/takes/images/001.png"]


# -- cost ------------------------------------------------------------------------------------------------------


def test_the_estimate_counts_every_take_and_the_clips_only_the_picked_image() -> None:
    one = spec(images={"provider": "fal", "model": FLUX}, clips={"provider": "runway"})
    three = spec(
        images={"provider": "fal", "model": FLUX, "takes": 3}, clips={"provider": "runway", "takes": 2}
    )
    segments = segments_for(one)
    base, more = stage_estimates(one, segments), stage_estimates(three, segments)
    assert (more["images"], more["clips"]) == (3 * base["images"], 2 * base["clips"])
    assert more["images"] == 3 * 2 * 2.5 and more["clips"] == 2 * 2 * 5 * 5  # Runway: 5 credits a second
    segment = segments[0]
    assert takes_estimate(three, segment, "images") == 3 * segment_estimate(three, segment, "images")
    assert takes_estimate(three, segment, "narration") == segment_estimate(three, segment, "narration")


def test_a_budget_that_covers_one_take_but_not_all_is_refused_before_any_spend() -> None:
    cost_one = sum(stage_estimates(spec(provider="runway"), segments_for(spec(provider="runway"))).values())
    enough_for_one = int(cost_one)
    check_affordable(spec(provider="runway", budget_credits=enough_for_one), segments_for(spec()))
    job = spec(provider="runway", takes=2, budget_credits=enough_for_one)
    with pytest.raises(ValueError, match=f"estimated at {2 * cost_one:g} credits"):
        check_affordable(job, segments_for(job))


# -- picks -----------------------------------------------------------------------------------------------------


def with_takes(index: int, images: int, clips: int = 1) -> VideoSegment:
    layout = JobLayout("takes")
    segment = VideoSegment(index=index, prompt="p", duration_s=5, seed=index)
    image_results = [
        segment.model_copy(update={"image_key": layout.take_key("images", index, t)})
        for t in range(1, images + 1)
    ]
    merged = merge_takes("images", image_results)
    clip_results = [
        merged.model_copy(update={"clip_key": layout.take_key("clips", index, t)})
        for t in range(1, clips + 1)
    ]
    return merge_takes("clips", clip_results)


def test_a_pick_puts_the_picked_take_forward_and_keeps_every_key() -> None:
    segments = [with_takes(1, 3), with_takes(2, 3), with_takes(3, 1)]
    assert pick_errors({1: 3, 2: 1, 3: 1}, segments, "images") == []
    picked = apply_picks(segments, "images", {1: 3, 3: 1})
    assert (picked[0].image_key, picked[0].image_pick) == ("jobs/takes/images/001.t3.png", 3)
    assert picked[0].image_takes == segments[0].image_takes  # the others' keys stay
    assert picked[1] == segments[1] and picked[2] == segments[2]  # left out: as they were (take 1)
    again = apply_picks(picked, "images", {1: 1})
    assert (again[0].image_key, again[0].image_pick) == ("jobs/takes/images/001.png", 1)
    assert apply_picks(picked, "images", {1: 3}) == picked  # absolute: applying twice changes nothing


def test_picks_leave_segments_being_redone_and_the_other_stage_alone() -> None:
    segments = [with_takes(1, 2, clips=2), with_takes(2, 2, clips=2)]
    picked = apply_picks(segments, "clips", {1: 2, 2: 2}, skip=[2])
    assert (picked[0].clip_key, picked[0].clip_pick) == ("jobs/takes/clips/001.t2.mp4", 2)
    assert picked[0].image_key == segments[0].image_key and picked[0].image_pick == 1
    assert picked[1] == segments[1]


@pytest.mark.parametrize(
    ("picks", "problem"),
    [
        ({4: 1}, "segment 4 is not in this job"),
        ({1: 3}, "segment 1 has 2 takes (pick 1–2), not 3"),
        ({3: 2}, "segment 3 has 1 take (pick 1–1), not 2"),
        ({1: 0}, "segment 1 has 2 takes (pick 1–2), not 0"),
    ],
)
def test_a_pick_the_segments_do_not_have_is_named(picks: dict[int, int], problem: str) -> None:
    segments = [with_takes(1, 2), with_takes(2, 2), with_takes(3, 1)]
    assert pick_errors(picks, segments, "images") == [problem]


# -- the manifest ----------------------------------------------------------------------------------------------


def test_the_manifest_keeps_every_take_and_the_picks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    job = spec(takes=2)
    segments = apply_picks([with_takes(1, 2, clips=2), with_takes(2, 2, clips=2)], "clips", {2: 2})
    decision = Decision(stage="clips", decision="approve", picks={2: 2}, via="ui", by="ana")
    manifest = Manifest(job=job, run_id="r", segments=segments, decisions=[decision])
    save_manifest(storage, manifest)
    loaded = load_manifest(storage, "takes")
    assert loaded is not None
    assert loaded.segments == segments and loaded.decisions[0].picks == {2: 2}
    assert loaded.segments[1].clip_takes == ["jobs/takes/clips/002.mp4", "jobs/takes/clips/002.t2.mp4"]
    assert (loaded.segments[1].clip_key, loaded.segments[1].clip_pick) == ("jobs/takes/clips/002.t2.mp4", 2)


def test_a_manifest_written_before_takes_reads_as_one_take() -> None:
    segment = VideoSegment.model_validate(
        {"index": 1, "prompt": "p", "duration_s": 5, "seed": 1, "image_key": "jobs/a/images/001.png"}
    )
    assert (segment.image_takes, segment.image_pick, segment.takes("images")) == (
        [],
        1,
        ["jobs/a/images/001.png"],
    )
    assert segment.takes("clips") == []
    assert Decision.model_validate({"stage": "images", "decision": "approve", "via": "ui"}).picks == {}
