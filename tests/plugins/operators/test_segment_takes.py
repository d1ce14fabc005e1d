"""Takes through the segment operators, in-process against the fake Runway server (real HTTP) and real storage:
each take is its own submission (one POST, one record, one reservation), made after the one before is stored;
a task killed while waiting for take 2 resumes it without a POST; the offline provider makes its takes inline.

As in ``test_segment.py``, a "crash" is the operator deferring (the provider task id is already persisted) and
a new operator instance, the retry, running ``execute`` again.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.outputs import verify_output
from video_pipeline.providers.runway import RunwayClient, remote_status
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import credits_spent, job_submissions, ledger
from video_pipeline.takes import TAKE_SEED_STEP, apply_picks
from video_pipeline_airflow.operators.segment import (
    AnimateSegmentOperator,
    GenerateImageOperator,
    SegmentOperator,
)
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at

KEY = "rk_takes_canary_5c1e"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.2, video_latency=0.3)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    return LocalStorage(tmp_path)


def job(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "takes-op",
            "title": "t",
            "seed": 11,
            "provider": "runway",
            "budget_credits": 500,
            "segments": [{"prompt": "a lantern over dark water", "duration_s": 5}],
            **overrides,
        }
    )


def image_op(spec: JobSpec) -> GenerateImageOperator:
    (segment,) = segments_for(spec)
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )


def clip_op(spec: JobSpec, segment: VideoSegment) -> AnimateSegmentOperator:
    return AnimateSegmentOperator(
        task_id="animate_segment",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )


def deferred(op: SegmentOperator) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        op.execute({})
    return caught.value


def event_of(fake: FakeRunway, defer: TaskDeferred) -> dict[str, Any]:
    """The trigger's part: poll the provider task to its end."""
    task_id = defer.trigger.provider_task_id
    deadline = time.monotonic() + 20
    with RunwayClient(fake.base_url, KEY) as client:
        while not (status := client.get_task(task_id)).terminal and time.monotonic() < deadline:
            time.sleep(0.05)
    return {"event": "done", **remote_status(status).model_dump(mode="json")}


def complete(op: SegmentOperator, fake: FakeRunway, defer: TaskDeferred) -> Any:
    return op.execute_complete({}, event_of(fake, defer), **(defer.kwargs or {}))


def next_take(op: SegmentOperator, fake: FakeRunway, defer: TaskDeferred) -> TaskDeferred:
    """Complete one take: the task stores it and defers again on the next take's submission."""
    with pytest.raises(TaskDeferred) as caught:
        complete(op, fake, defer)
    return caught.value


def test_each_take_is_one_submission_made_after_the_one_before_is_stored(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job(images={"provider": "runway", "takes": 2})
    first = deferred(image_op(spec))
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}  # take 2 waits for take 1
    assert [r.seed for r in job_submissions(storage, "takes-op")] == [12]
    assert first.kwargs is not None and first.kwargs["take"] == 1

    second = next_take(image_op(spec), fake, first)
    assert storage.exists("jobs/takes-op/images/001.png")  # take 1 stored before take 2 was submitted
    assert fake.stats()["tasks_created"] == {"gen4_image": 2}
    assert second.kwargs is not None and second.kwargs["take"] == 2 and len(second.kwargs["made"]) == 1
    assert [r.seed for r in job_submissions(storage, "takes-op")] == [12 + TAKE_SEED_STEP]

    result = VideoSegment.model_validate(complete(image_op(spec), fake, second))
    assert result.image_takes == ["jobs/takes-op/images/001.png", "jobs/takes-op/images/001.t2.png"]
    assert (result.image_key, result.image_pick, result.seed) == ("jobs/takes-op/images/001.png", 1, 12)
    for key in result.image_takes:
        verify_output("images", storage.path_for(key))
    seeds = [body["seed"] for _, body in fake.task_bodies()]
    assert seeds == [12, 12 + TAKE_SEED_STEP]
    # one reservation and one submission per take; both paid, once each
    events = [(e.event, e.index) for e in ledger(storage, "takes-op")]
    assert events == [("reserved", 1), ("submitted", 1), ("reserved", 1), ("submitted", 1)]
    assert credits_spent(storage, "takes-op") == fake.stats()["credits_spent"] == 10
    assert job_submissions(storage, "takes-op") == [] and fake.duplicate_submissions == 0


def test_a_task_killed_while_waiting_for_take_two_resumes_it_without_paying_again(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job(images={"provider": "runway", "takes": 3})
    second = next_take(image_op(spec), fake, deferred(image_op(spec)))
    # the worker dies while the task waits on take 2; its retry runs execute from the start
    retry = deferred(image_op(spec))
    assert retry.trigger.provider_task_id == second.trigger.provider_task_id  # resumed, not resubmitted
    assert retry.kwargs is not None and retry.kwargs["take"] == 2
    assert fake.stats()["tasks_created"] == {"gen4_image": 2}
    third = next_take(image_op(spec), fake, retry)
    result = VideoSegment.model_validate(complete(image_op(spec), fake, third))
    assert len(result.image_takes) == 3 and len(set(map(storage.get_bytes, result.image_takes))) == 3
    assert fake.stats()["tasks_created"] == {"gen4_image": 3}
    assert fake.duplicate_submissions == 0 and credits_spent(storage, "takes-op") == 15

    # a re-run of the stored takes is served from the cache: no POST at all
    again = VideoSegment.model_validate(image_op(spec).execute({}))
    assert again.image_takes == result.image_takes and again.image_cache_hit
    assert fake.stats()["tasks_created"] == {"gen4_image": 3}


def test_clip_takes_are_made_from_the_picked_image(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job(images={"provider": "runway", "takes": 2}, clips={"provider": "runway", "takes": 2})
    images = VideoSegment.model_validate(
        complete(image_op(spec), fake, next_take(image_op(spec), fake, deferred(image_op(spec))))
    )
    (picked,) = apply_picks([images], "images", {1: 2})
    assert picked.image_key == "jobs/takes-op/images/001.t2.png"

    first = deferred(clip_op(spec, picked))
    clip = VideoSegment.model_validate(
        complete(clip_op(spec, picked), fake, next_take(clip_op(spec, picked), fake, first))
    )
    assert clip.clip_takes == ["jobs/takes-op/clips/001.mp4", "jobs/takes-op/clips/001.t2.mp4"]
    assert (clip.image_key, clip.image_pick, clip.image_takes) == (picked.image_key, 2, images.image_takes)
    for key in clip.clip_takes:
        verify_output("clips", storage.path_for(key))
    # both clip takes were asked of the picked image (take 2), not take 1
    sent = [body["promptImage"] for _, body in fake.task_bodies() if "promptImage" in body]
    assert [base64.b64decode(uri.split(",", 1)[1]) for uri in sent] == [
        storage.get_bytes(picked.image_key or "")
    ] * 2
    assert storage.get_bytes(picked.image_key or "") != storage.get_bytes(images.image_key or "")
    assert fake.stats()["tasks_created"] == {"gen4_image": 2, "gen4_turbo": 2}
    assert credits_spent(storage, "takes-op") == fake.stats()["credits_spent"] == 2 * 5 + 2 * 25


def test_the_offline_provider_makes_its_takes_inline(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job(provider="storyboard", budget_credits=None, takes=3)
    result = VideoSegment.model_validate(image_op(spec).execute({}))
    assert result.image_takes == [f"jobs/takes-op/images/001{s}.png" for s in ("", ".t2", ".t3")]
    assert len(set(map(storage.get_bytes, result.image_takes))) == 3
    clip = VideoSegment.model_validate(clip_op(spec, apply_picks([result], "images", {1: 3})[0]).execute({}))
    assert clip.clip_takes == [f"jobs/takes-op/clips/001{s}.mp4" for s in ("", ".t2", ".t3")]
    assert fake.stats()["requests"] == 0
