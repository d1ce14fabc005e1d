"""The narration stage in the domain: spoken once and cached by content, stored next to the images, the segment
fitted to its voice; a paid voice under a provider-task record and a credit reservation, never paid twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.narration import NotSpoken, fit, narrate, plan_narration, read_timing
from video_pipeline.providers.port import Endpoint
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import Storage
from video_pipeline.submissions import (
    Attempt,
    Submission,
    create_submission,
    credits_spent,
    job_submissions,
    ledger,
    stop_run,
)
from video_pipeline_dev.fake_voices import FakeVoice

KEY = "sk-narration-test"
ATTEMPT = Attempt(dag_id="d", run_id="run-1", task_id="narrate_segment", map_index=0, try_number=1)


def job(**changes: Any) -> JobSpec:
    spec: dict[str, Any] = {
        "job_id": "voiced",
        "title": "Voiced",
        "segments": [
            {"prompt": "a fox", "narration": "Dawn comes slowly to the meadow.", "duration_s": "auto"},
            {"prompt": "a stream", "narration": "The fox stretches.", "duration_s": 3},
            {"prompt": "silence"},
        ],
        **changes,
    }
    return JobSpec.model_validate(spec)


def test_the_offline_voice_speaks_once_and_fits_the_segment(storage: Storage) -> None:
    spec = job()
    first, fixed, silent = segments_for(spec)
    assert first.follows_voice and not fixed.follows_voice and not silent.follows_voice
    spoken = narrate(storage, spec.settings(), first, attempt=ATTEMPT)
    assert spoken.narration_key == "jobs/voiced/narration/001.wav"
    assert spoken.narration_timing_key == "jobs/voiced/narration/001.json"
    assert storage.exists(spoken.narration_key) and not spoken.narration_cache_hit
    timing = read_timing(storage, spoken.narration_timing_key)
    assert spoken.narration_s == timing.spoken_s and timing.timings == "engine"
    voice = spec.voice
    assert voice is not None
    assert spoken.fitted_s == pytest.approx(max(2.0, voice.lead_s + timing.spoken_s + voice.tail_s), abs=1e-3)
    assert (
        spoken.fitted_s is not None and spoken.duration_s >= spoken.fitted_s
    )  # the clip is made at least as long, then trimmed
    assert spoken.narration_started_at and spoken.narration_finished_at

    again = narrate(storage, spec.settings(), first, attempt=ATTEMPT)
    assert again.narration_cache_hit and again.fitted_s == spoken.fitted_s

    kept = narrate(storage, spec.settings(), fixed, attempt=ATTEMPT)
    assert kept.duration_s == 3 and kept.fitted_s is None and kept.narration_s
    assert narrate(storage, spec.settings(), silent, attempt=ATTEMPT).narration_key is None


def test_no_voice_means_no_narration_stage_and_auto_follows_the_estimate(storage: Storage) -> None:
    spec = job(voice=None)
    first = segments_for(spec)[0]
    assert not first.follows_voice and first.fitted_s is None and 2 <= first.duration_s <= 10
    assert plan_narration(spec.settings(), first) is None
    assert narrate(storage, spec.settings(), first, attempt=ATTEMPT) == first


def test_a_long_narration_gets_the_longest_clip_and_its_tail_held() -> None:
    spec = job()
    segment = segments_for(spec)[0]
    long = fit(spec.settings(), segment, 14.0)
    assert long.fitted_s == pytest.approx(14.75) and long.duration_s == 10
    short = fit(spec.settings(), segment, 0.4)
    assert short.fitted_s == 2.0 and short.duration_s == 2


@pytest.fixture
def openai() -> Iterator[FakeVoice]:
    with FakeVoice("openai", api_key=KEY) as fake:
        yield fake


def paid_job() -> JobSpec:
    return job(voice={"provider": "openai"}, budget_credits=5)


def endpoint(fake: FakeVoice) -> Endpoint:
    return Endpoint(fake.base_url, KEY, {"max_retries": 1, "backoff_base": 0.01, "backoff_cap": 0.02})


def test_a_paid_voice_is_reserved_recorded_and_paid_once(storage: Storage, openai: FakeVoice) -> None:
    spec = paid_job()
    segment = segments_for(spec)[0]
    spoken = narrate(storage, spec.settings(), segment, attempt=ATTEMPT, endpoint=endpoint(openai))
    assert spoken.narration_key and spoken.narration_key.endswith(".mp3")
    assert [e.event for e in ledger(storage, "voiced")] == ["reserved", "submitted"]
    assert ledger(storage, "voiced")[0].stage == "narration"
    assert credits_spent(storage, "voiced") == pytest.approx(0.0015 * len(segment.narration or ""))
    assert job_submissions(storage, "voiced") == []  # the record is gone once the audio is stored
    again = narrate(storage, spec.settings(), segment, attempt=ATTEMPT, endpoint=endpoint(openai))
    assert again.narration_cache_hit and openai.stats()["requests"] == 1


def test_an_ambiguous_answer_fails_for_a_person_and_the_next_attempt_speaks_knowingly(
    storage: Storage, openai: FakeVoice
) -> None:
    spec = paid_job()
    segment = segments_for(spec)[0]
    openai.reset(api_key=KEY, faults=["spoken-then-500"])
    with pytest.raises(NotSpoken) as raised:
        narrate(storage, spec.settings(), segment, attempt=ATTEMPT, endpoint=endpoint(openai))
    assert not raised.value.retry and "may have been billed" in str(raised.value)
    (record,) = job_submissions(storage, "voiced")
    assert record.state == "ambiguous" and record.kind == "narration"
    assert [e.event for e in ledger(storage, "voiced")] == ["reserved"]  # its credits stay counted
    # A person cleared the task: the next attempt replaces the record and speaks anew.
    narrate(storage, spec.settings(), segment, attempt=ATTEMPT, endpoint=endpoint(openai))
    assert openai.stats()["spoken"] == 2 and job_submissions(storage, "voiced") == []


def test_nothing_spoken_gives_the_reservation_back_and_retries(storage: Storage, openai: FakeVoice) -> None:
    spec = paid_job()
    openai.reset(api_key=KEY, faults=["429"] * 3)
    with pytest.raises(NotSpoken) as raised:
        narrate(storage, spec.settings(), segments_for(spec)[0], attempt=ATTEMPT, endpoint=endpoint(openai))
    assert raised.value.retry
    assert [e.event for e in ledger(storage, "voiced")] == ["reserved", "released"]
    assert credits_spent(storage, "voiced") == 0 and job_submissions(storage, "voiced") == []


def test_budget_and_stop_are_checked_before_anything_is_sent(storage: Storage, openai: FakeVoice) -> None:
    spec = job(voice={"provider": "openai"}, budget_credits=0)
    with pytest.raises(NotSpoken, match="budget_credits") as raised:
        narrate(storage, spec.settings(), segments_for(spec)[0], attempt=ATTEMPT, endpoint=endpoint(openai))
    assert not raised.value.retry
    spec = paid_job()
    stop_run(storage, "voiced", "run-1", "stopped by a person")
    with pytest.raises(NotSpoken, match="stopped"):
        narrate(storage, spec.settings(), segments_for(spec)[0], attempt=ATTEMPT, endpoint=endpoint(openai))
    assert openai.stats()["requests"] == 0 and job_submissions(storage, "voiced") == []


def test_a_request_left_by_a_dead_run_is_reported_not_repeated(storage: Storage, openai: FakeVoice) -> None:
    spec = paid_job()
    segment: VideoSegment = segments_for(spec)[0]
    plan = plan_narration(spec.settings(), segment)
    assert plan is not None
    create_submission(
        storage,
        Submission(
            kind="narration",
            provider="openai",
            job_id="voiced",
            run_id="run-0",
            task_id="narrate_segment",
            index=1,
            seed=0,
            credits=0.05,
            digest=plan.digest,
        ),
    )
    alive = narrate  # the writer's run is active: wait for it
    with pytest.raises(NotSpoken) as waiting:
        alive(storage, spec.settings(), segment, attempt=ATTEMPT, endpoint=endpoint(openai))
    assert waiting.value.retry
    with pytest.raises(NotSpoken) as dead:
        narrate(
            storage,
            spec.settings(),
            segment,
            attempt=ATTEMPT,
            endpoint=endpoint(openai),
            writer_alive=lambda record: False,
        )
    assert not dead.value.retry and "has ended" in str(dead.value)
    assert openai.stats()["requests"] == 0
