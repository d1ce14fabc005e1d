from __future__ import annotations

import json

import pytest

from video_pipeline.providers import registry
from video_pipeline_airflow.pools import planned_pools, slots_for
from video_pipeline_airflow.settings import DEFAULT_POOL_SLOTS
from video_pipeline_dev.fake_runway import FakeRunway

#: The narration pool without a paid voice configured: as many as the offline voice runs at once (its CPUs).
OFFLINE_VOICE_SLOTS = registry.speech(registry.DEFAULT_SPEECH_PROVIDER).concurrency


def test_slots_are_concurrency_times_queue_depth() -> None:
    assert slots_for(3) == 6
    assert slots_for(0) == DEFAULT_POOL_SLOTS
    assert slots_for(None) == DEFAULT_POOL_SLOTS


def test_pools_from_the_account(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRunway(api_key="k-pools", concurrency={"gen4_image": 1, "gen4_turbo": 5}) as fake:
        monkeypatch.setenv(
            "AIRFLOW_CONN_RUNWAY_DEFAULT",
            json.dumps({"conn_type": "http", "host": fake.base_url, "password": "k-pools"}),
        )
        assert planned_pools() == {
            "video_narration": OFFLINE_VOICE_SLOTS,
            "video_images": 2,
            "video_clips": 10,
        }


def test_pools_without_runway(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_RUNWAY_DEFAULT", raising=False)
    assert planned_pools() == {
        "video_narration": OFFLINE_VOICE_SLOTS,
        "video_images": DEFAULT_POOL_SLOTS,
        "video_clips": DEFAULT_POOL_SLOTS,
    }
