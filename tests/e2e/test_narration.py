"""Narration on real Airflow: the demo job speaks (offline voice), a script job's segments follow their voice,
and the paid voices (OpenAI, ElevenLabs, against their fakes) run end to end and are never paid twice: a
re-run of the same job makes no request at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import DAG_ID, VOICE_CANARY_KEYS, decide_by_variable, manifest_of
from video_pipeline.narration import read_timing
from video_pipeline.storage import Storage
from video_pipeline_dev.fake_voices import FakeVoice
from video_pipeline_dev.local import REPO, LocalAirflow
from video_pipeline_dev.speech_checks import (
    audio_codec,
    check_av_sync,
    check_voice,
    expected_length,
    srt_cues,
)

pytestmark = pytest.mark.e2e

FRAME_S = 1 / 24
SCRIPT = (
    "The lighthouse has stood on the cliff for two hundred years. Every night its beam sweeps the black water. "
    "Martha climbs the steps at dusk. Tonight the storm comes early. The light holds."
)


def local_path(storage: Storage, key: str) -> Path:
    return Path(storage.url.removeprefix("file://")) / key


def test_the_demo_speaks_with_captions_on_its_words(airflow: LocalAirflow, local_storage: Storage) -> None:
    """``make demo``'s job: an AAC voice track, speech inside every narration's window and silence in every
    pad (silencedetect), captions inside the words' spans, picture and sound within a frame, each segment as
    long as its narration and pad."""
    spec = json.loads((REPO / "examples" / "jobs" / "demo.json").read_text())
    job_id = spec["job_id"] = "e2e-demo-voice"
    run_id = airflow.trigger(DAG_ID, spec)
    decide_by_variable(airflow, run_id, job_id, "images", "approve")
    decide_by_variable(airflow, run_id, job_id, "clips", "approve")
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"

    manifest = manifest_of(local_storage, job_id)
    final = manifest.final
    assert final is not None and final.subtitles_key
    path = local_path(local_storage, final.key)
    assert audio_codec(path) == "aac"
    assert len(final.narration) == len(spec["segments"])
    assert check_voice(path, final) == []
    assert check_av_sync(path) <= FRAME_S
    for index, (start, end) in final.spans.items():
        assert abs((end - start) - expected_length(manifest, index)) <= FRAME_S, index

    # Each caption lies within the words it shows: from one heard word's start to a later one's end.
    heard_words: list[tuple[float, float]] = []
    lead = manifest.job.voice.lead_s if manifest.job.voice else 0.0
    for segment in manifest.segments:
        assert segment.narration_timing_key
        timing = read_timing(local_storage, segment.narration_timing_key)
        shift = final.spans[segment.index][0] + lead - timing.speech_start_s
        heard_words += [
            (max(w.start_s, timing.speech_start_s) + shift, min(w.end_s, timing.speech_end_s) + shift)
            for w in timing.words
        ]
    cues = srt_cues(local_storage.get_bytes(final.subtitles_key).decode())
    assert len(cues) >= len(spec["segments"])
    for cue in cues:
        assert any(abs(cue.start_s - start) <= 0.002 for start, _ in heard_words), cue
        assert any(abs(cue.end_s - end) <= 0.002 for _, end in heard_words), cue
        assert any(
            start - 0.002 <= cue.start_s and cue.end_s <= end + 0.002
            for start, end in final.narration.values()
        )

    # Gate 1 knew each segment's spoken length and linked its audio.
    assert all(
        s.narration_s and s.narration_key and s.narration_key.endswith(".wav") for s in manifest.segments
    )
    assert {"narration", "images", "clips"} <= set(manifest.timings_s)


def test_a_script_job_follows_its_voice(airflow: LocalAirflow, local_storage: Storage) -> None:
    job_id = "e2e-script-voice"
    spec = {"job_id": job_id, "title": "Script, voiced", "script": SCRIPT, "approval": "none", "seed": 3}
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"
    manifest = manifest_of(local_storage, job_id)
    assert manifest.final is not None and len(manifest.segments) >= 3
    assert all(s.follows_voice for s in manifest.segments)
    for index, (start, end) in manifest.final.spans.items():
        assert abs((end - start) - expected_length(manifest, index)) <= FRAME_S, index
    assert check_voice(local_path(local_storage, manifest.final.key), manifest.final) == []


@pytest.mark.parametrize("voice", ["openai", "elevenlabs"])
def test_a_paid_voice_end_to_end_and_a_rerun_pays_nothing(
    airflow: LocalAirflow, local_storage: Storage, fake_voices: dict[str, FakeVoice], voice: str
) -> None:
    fake = fake_voices[voice]
    key = VOICE_CANARY_KEYS[voice]
    # Shed load once and rate-limit once: both prove nothing was spoken, so the client asks again.
    fake.reset(api_key=key, latency=0.3, faults=["429", "503-retry-after"])
    job_id = f"e2e-voice-{voice}"
    spec = {
        "job_id": job_id,
        "title": f"Voiced by {voice}",
        "script": SCRIPT,
        "approval": "none",
        "voice": {"provider": voice},
        "budget_credits": 100,
    }
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"
    manifest = manifest_of(local_storage, job_id)
    segments = len(manifest.segments)
    stats = fake.stats()
    assert stats["spoken"] == segments  # one billed request per segment, however the API answered
    assert stats["requests"] == segments + 2
    assert stats["chars_billed"] == sum(len(s.narration or "") for s in manifest.segments)
    assert manifest.final is not None and audio_codec(local_path(local_storage, manifest.final.key)) == "aac"
    assert all(s.narration_key and s.narration_key.endswith(".mp3") for s in manifest.segments)
    assert check_voice(local_path(local_storage, manifest.final.key), manifest.final) == []
    paid = [e for e in manifest.spend if e.stage == "narration" and e.event == "reserved"]
    assert len(paid) == segments and manifest.credits_spent > 0
    assert key not in local_storage.get_bytes(f"jobs/{job_id}/manifest.json").decode()

    fake.reset(api_key=key, latency=0.3)
    rerun = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, rerun, timeout=400) == "success"
    assert fake.stats()["requests"] == 0  # every narration came from the cache
    assert all(s.narration_cache_hit for s in manifest_of(local_storage, job_id).segments)
