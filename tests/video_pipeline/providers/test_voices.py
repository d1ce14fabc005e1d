"""The paid voices' contracts against their fakes over real HTTP: the audio and its word timings, what an answer
means for billing (sent again only when nothing was spoken; ambiguous otherwise), quota, refusals, the key kept
out of every message, the estimate equal to what the fake bills, and latency."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from video_pipeline.media.audio_track import track_duration
from video_pipeline.models import Voice
from video_pipeline.providers import registry
from video_pipeline.providers.port import (
    Action,
    Endpoint,
    ProviderError,
    Speech,
    SpeechProvider,
    SpeechRequest,
)
from video_pipeline_dev.fake_voices import FakeVoice

KEY = "sk-CANARY-3f9a1c7e5b"
TEXT = "Dawn comes slowly to the meadow. The fox wakes."
FAST = {"max_retries": 2, "backoff_base": 0.01, "backoff_cap": 0.05}
VOICES = ["openai", "elevenlabs"]


@pytest.fixture(params=VOICES)
def fake(request: pytest.FixtureRequest) -> Iterator[FakeVoice]:
    with FakeVoice(request.param, api_key=KEY) as server:
        yield server


def speak(
    fake: FakeVoice, tmp_path: Path, text: str = TEXT, key: str = KEY, **voice: object
) -> tuple[Speech, SpeechProvider, SpeechRequest]:
    provider: SpeechProvider = registry.speech(fake.flavour)
    request = Voice.model_validate({"provider": fake.flavour, **voice}).request(text)
    return provider.synthesize(request, tmp_path, Endpoint(fake.base_url, key, FAST)), provider, request


def test_speaks_an_mp3_with_word_timings_and_bills_what_it_estimated(fake: FakeVoice, tmp_path: Path) -> None:
    speech, provider, request = speak(fake, tmp_path)
    assert speech.path.suffix == ".mp3" and abs(track_duration(speech.path) - speech.duration_s) < 0.1
    assert [w.text for w in speech.words] == TEXT.split()
    assert speech.timings == ("estimated" if fake.flavour == "openai" else "provider")
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts) and speech.speech_start_s <= starts[0] + 0.05
    assert speech.words[-1].end_s <= speech.speech_end_s + 0.01
    stats = fake.stats()
    assert (stats["requests"], stats["spoken"], stats["chars_billed"]) == (1, 1, len(TEXT))
    per_char = {"openai": 0.0015, "elevenlabs": 0.01}[fake.flavour]  # the list prices the README gives
    assert provider.estimate(request) == pytest.approx(per_char * stats["chars_billed"])


@pytest.mark.parametrize("fault", ["429", "503-retry-after"])
def test_an_answer_that_proves_nothing_was_spoken_is_asked_again(
    fake: FakeVoice, tmp_path: Path, fault: str
) -> None:
    fake.reset(api_key=KEY, faults=[fault])
    speak(fake, tmp_path)
    assert (fake.stats()["requests"], fake.stats()["spoken"]) == (2, 1)


def test_retries_used_up_is_unavailable_and_spoke_nothing(fake: FakeVoice, tmp_path: Path) -> None:
    fake.reset(api_key=KEY, faults=["429"] * 5)
    with pytest.raises(ProviderError) as raised:
        speak(fake, tmp_path)
    assert raised.value.action == Action.UNAVAILABLE
    assert (fake.stats()["requests"], fake.stats()["spoken"]) == (FAST["max_retries"] + 1, 0)


@pytest.mark.parametrize(("fault", "spoken"), [("500", 0), ("spoken-then-500", 1), ("spoken-then-reset", 1)])
def test_a_failure_after_sending_is_ambiguous_and_never_sent_again(
    fake: FakeVoice, tmp_path: Path, fault: str, spoken: int
) -> None:
    fake.reset(api_key=KEY, faults=[fault])
    with pytest.raises(ProviderError) as raised:
        speak(fake, tmp_path)
    assert raised.value.action == Action.AMBIGUOUS
    assert (fake.stats()["requests"], fake.stats()["spoken"]) == (1, spoken)


def test_an_exhausted_quota_stops_the_job(fake: FakeVoice, tmp_path: Path) -> None:
    fake.reset(api_key=KEY, quota_chars=10)
    with pytest.raises(ProviderError) as raised:
        speak(fake, tmp_path)
    assert raised.value.action == Action.STOP_JOB
    assert fake.stats()["requests"] == 1


def test_a_wrong_key_fails_and_no_message_holds_a_key(fake: FakeVoice, tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as raised:
        speak(fake, tmp_path, key="sk-WRONG-CANARY-000")
    assert raised.value.action == Action.FAIL
    assert "CANARY" not in str(raised.value) and "CANARY" not in repr(Endpoint(fake.base_url, KEY))


def test_latency_is_the_providers_and_little_more(tmp_path: Path) -> None:
    with FakeVoice("openai", api_key=KEY, latency=0.4) as fake:
        started = time.perf_counter()
        speak(fake, tmp_path)
        assert 0.4 <= time.perf_counter() - started < 3.0


def test_an_unknown_elevenlabs_voice_fails_and_what_a_voice_cannot_take_is_refused_first(
    tmp_path: Path,
) -> None:
    with FakeVoice("elevenlabs", api_key=KEY) as fake:
        with pytest.raises(ProviderError) as raised:
            speak(fake, tmp_path, voice="AAAAAAAAAAAAAAAAAAAA")
        assert raised.value.action == Action.FAIL and raised.value.status_code == 404
    for spec, message in (
        ({"provider": "openai", "voice": "nobody"}, "no voice"),
        ({"provider": "openai", "language": "xx"}, "language"),
        ({"provider": "elevenlabs", "voice": "too-short"}, "voice ids"),
        ({"provider": "elevenlabs", "speed": 2.0}, "speeds"),
        ({"provider": "nobody"}, "no voice provider"),
    ):
        with pytest.raises(ValueError, match=message):
            Voice.model_validate(spec)
