"""A stage's fallback: when its provider cannot take the work — unavailable through every retry, or its account
out of credits — the segment is made by the fallback, once, and says who made it. In-process, against the fake
Runway server (real HTTP) and real storage."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.support.fake_runway import FakeRunway, point_pipeline_at
from video_pipeline.models import JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import credits_spent, job_submissions, ledger, run_stop_reason
from video_pipeline_airflow.operators.segment import GenerateImageOperator

KEY = "rk_fallback_canary_93"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    # Short client waits from the connection's extra: "unavailable" is decided within a second.
    conn = {"conn_type": "http", "host": fake.base_url, "password": KEY}
    conn["extra"] = {"max_retries": 2, "backoff_base": 0.01, "backoff_cap": 0.05}  # type: ignore[assignment]
    monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))
    return LocalStorage(tmp_path)


def operator(images: dict[str, Any], job_id: str = "fb") -> GenerateImageOperator:
    spec = JobSpec.model_validate(
        {
            "job_id": job_id,
            "title": "t",
            "budget_credits": 100,
            "images": images,
            "segments": [{"prompt": "a harbour at dusk"}],
        }
    )
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.settings().model_dump(mode="json"),
        segment=segments_for(spec)[0].model_dump(mode="json"),
        total=1,
    )


def test_an_unavailable_provider_hands_the_segment_to_its_fallback(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    fake.reset(api_key=KEY, image_latency=0.2, rate_429=1.0, fault_paths=("/v1/text_to_image",))
    result = operator({"provider": "runway", "fallback": {"provider": "storyboard"}}).execute(
        {"run_id": "r1"}
    )
    assert (result["image_provider"], result["image_model"]) == ("storyboard", "card")
    assert storage.exists(result["image_key"])
    stats = fake.stats()
    assert (
        stats["posts"]["/v1/text_to_image"] == 3 and stats["tasks_created"] == {}
    )  # 1 + 2 retries, none made
    assert (
        job_submissions(storage, "fb") == [] and credits_spent(storage, "fb") == 0
    )  # reservation given back
    assert [e.event for e in ledger(storage, "fb")] == ["reserved", "released"]


def test_an_account_out_of_credits_falls_back_instead_of_stopping_the_job(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    fake.reset(api_key=KEY, image_latency=0.2, credits=0)
    result = operator({"provider": "runway", "fallback": {"provider": "storyboard"}}).execute(
        {"run_id": "r1"}
    )
    assert result["image_provider"] == "storyboard"
    assert run_stop_reason(storage, "fb", "r1") is None  # the job goes on


def test_without_a_fallback_unavailable_is_retried_and_no_credits_stops_the_job(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    fake.reset(api_key=KEY, image_latency=0.2, rate_429=1.0, fault_paths=("/v1/text_to_image",))
    with pytest.raises(RuntimeError, match="did not take the request"):
        operator({"provider": "runway"}).execute({"run_id": "r1"})
    fake.reset(api_key=KEY, image_latency=0.2, credits=0)
    with pytest.raises(AirflowFailException, match="the whole job stops"):
        operator({"provider": "runway"}, job_id="fb-stop").execute({"run_id": "r1"})
    assert run_stop_reason(storage, "fb-stop", "r1") is not None
