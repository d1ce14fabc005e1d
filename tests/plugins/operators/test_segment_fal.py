"""The fal path of the segment operators, in-process against the fake fal queue and real storage: the pipeline's
estimate, its ledger and fal's bill agree; failures take the action fal's answer calls for.

The trigger's part is played by polling the provider's own client to a terminal status (what the trigger's
event carries), as in ``test_segment.py`` for Runway.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tests.support.fake_fal import FakeFal, point_pipeline_at
from tests.support.fake_runway import FakeRunway
from tests.support.fake_runway import point_pipeline_at as point_runway_at
from video_pipeline.models import JobSpec
from video_pipeline.outputs import verify_output
from video_pipeline.providers.fal import FLUX_DEV, KLING_21_STANDARD, PROVIDER
from video_pipeline.providers.port import Endpoint
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import credits_spent, job_submissions, ledger
from video_pipeline_airflow.operators.segment import AnimateSegmentOperator, GenerateImageOperator

KEY = "fal-op-canary:9d41c0e7b2"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeFal]:
    with FakeFal(api_key=KEY) as server:
        yield server


@pytest.fixture
def storage(fake: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.2, video_latency=0.3)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    return LocalStorage(tmp_path)


def job(prompt: str = "a lantern over dark water", **overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "falop", "title": "t", "provider": "fal", "segments": [{"prompt": prompt}], **overrides}
    )


def image_operator(spec: JobSpec) -> GenerateImageOperator:
    (segment,) = segments_for(spec)
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )


def deferred(op: GenerateImageOperator | AnimateSegmentOperator) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        op.execute({})
    return caught.value


def complete(op: GenerateImageOperator | AnimateSegmentOperator, fake: FakeFal, defer: TaskDeferred) -> Any:
    """Poll as the trigger does, then hand its terminal event to the task."""
    task_id = defer.trigger.provider_task_id
    deadline = time.monotonic() + 20
    with PROVIDER.client(Endpoint(fake.base_url, KEY)) as client:
        while not (status := client.status(task_id)).terminal and time.monotonic() < deadline:
            time.sleep(0.05)
    event = {"event": "done", **status.model_dump(mode="json")}
    return op.execute_complete({}, event, **(defer.kwargs or {}))


def test_an_image_and_its_clip_cost_what_fal_bills(storage: LocalStorage, fake: FakeFal) -> None:
    spec = job()
    image = complete(image_operator(spec), fake, deferred(image_operator(spec)))
    assert image["image_key"] == "jobs/falop/images/001.png"
    assert (image["image_provider"], image["image_model"]) == ("fal", FLUX_DEV)
    assert verify_output("images", storage.path_for(image["image_key"])).width == 1280

    segment = segments_for(spec)[0].model_copy(update={"image_key": image["image_key"]})
    animate = AnimateSegmentOperator(
        task_id="animate_segment",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )
    clip = complete(animate, fake, deferred(animate))
    assert (clip["clip_provider"], clip["clip_model"]) == ("fal", KLING_21_STANDARD)
    info = verify_output("clips", storage.path_for(clip["clip_key"]))
    assert (info.width, info.height) == (1280, 720)

    # The estimate the ledger reserved, what the ledger counts as spent, and what fal billed: one number.
    reserved = [e.credits for e in ledger(storage, "falop") if e.event == "reserved"]
    assert reserved == [2.5, 28.0]
    assert credits_spent(storage, "falop") == pytest.approx(30.5)
    assert fake.credits_spent == pytest.approx(30.5)
    assert sorted(fake.charges.values()) == reserved
    assert job_submissions(storage, "falop") == []
    (_, model, body) = list(fake.task_bodies())[1]
    assert model == KLING_21_STANDARD and body["image_url"].startswith("data:image/png;base64,")


def test_no_media_retries_with_a_new_seed(storage: LocalStorage, fake: FakeFal) -> None:
    spec = job("empty sky [fail-once:no_media_generated]")
    first = deferred(image_operator(spec))
    with pytest.raises(RuntimeError, match="new seed"):
        complete(image_operator(spec), fake, first)
    retry = deferred(image_operator(spec))
    assert retry.trigger.provider_task_id != first.trigger.provider_task_id
    complete(image_operator(spec), fake, retry)
    seeds = [body["seed"] for _, _, body in fake.task_bodies()]
    assert len(seeds) == 2 and seeds[0] != seeds[1]
    assert fake.duplicate_submissions == 0


def test_a_flagged_prompt_fails_without_retry(storage: LocalStorage, fake: FakeFal) -> None:
    spec = job("forbidden [fail:content_policy_violation]")
    defer = deferred(image_operator(spec))
    with pytest.raises(AirflowFailException, match="content_policy_violation"):
        complete(image_operator(spec), fake, defer)
    assert job_submissions(storage, "falop") == []
    assert fake.charges == {}


def test_a_locked_account_stops_the_whole_job(storage: LocalStorage, fake: FakeFal) -> None:
    fake.configure(credit_balance=0)
    with pytest.raises(AirflowFailException, match="whole job stops"):
        image_operator(job()).execute({})
    assert [e.event for e in ledger(storage, "falop")] == ["reserved", "released"]  # nothing was created
    assert fake.stats()["tasks_created"] == {}


def test_a_submit_that_may_have_been_queued_is_never_sent_again(storage: LocalStorage, fake: FakeFal) -> None:
    fake.fail_next("POST", f"/{FLUX_DEV}", "create-then-502")
    # Failed, not retried by Airflow: a person checks fal's dashboard before a clear submits anew.
    with pytest.raises(AirflowFailException, match="may have accepted"):
        image_operator(job()).execute({})
    assert fake.stats()["posts"] == {f"/{FLUX_DEV}": 1}
    assert fake.stats()["tasks_created"] == {FLUX_DEV: 1}
    (record,) = job_submissions(storage, "falop")
    assert record.state == "ambiguous"


def test_an_unavailable_fal_hands_the_stage_to_its_remote_fallback(
    storage: LocalStorage, fake: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.configure(refuse_creates=503, retry_after_on_503=True, retry_after=0.01)
    spec = job(images={"provider": "fal", "fallback": {"provider": "runway"}})
    with FakeRunway(api_key="rk_fallback_canary", image_latency=0.1) as runway:
        point_runway_at(runway, "rk_fallback_canary", tmp_path, monkeypatch)
        defer = deferred(image_operator(spec))
        assert defer.trigger.provider == "runway"
        assert runway.stats()["posts"] == {"/v1/text_to_image": 1}
    assert fake.stats()["tasks_created"] == {}  # fal refused every try: nothing was queued there
    assert fake.faults["refused-503"] == 4  # the first POST and the connection's three retries
    assert [e.event for e in ledger(storage, "falop")] == ["reserved", "released", "reserved", "submitted"]
