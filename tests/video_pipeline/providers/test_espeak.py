"""The offline voice: espeak-ng in-process from its wheel, with word timings, no key, no network."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from video_pipeline.media.audio_track import track_duration
from video_pipeline.providers import registry
from video_pipeline.providers.espeak import PROVIDER, languages, variants
from video_pipeline.providers.port import SpeechProvider, SpeechRequest

TEXT = "Dawn comes slowly to the meadow. It was 10:30, and 3.5 foxes ran."


def request(**changes: object) -> SpeechRequest:
    fields: dict[str, object] = {
        "text": TEXT,
        "model": "espeak-ng",
        "voice": "default",
        "language": "en-us",
        "speed": 1.0,
        **changes,
    }
    return SpeechRequest.model_validate(fields)


def test_it_is_a_voice_of_the_registry_and_not_an_image_or_clip_provider() -> None:
    assert isinstance(PROVIDER, SpeechProvider)
    assert "espeak" in registry.speech_names() and "espeak" not in registry.names()
    assert registry.DEFAULT_SPEECH_PROVIDER == "espeak"
    assert registry.speech("espeak") is PROVIDER
    with pytest.raises(registry.ProviderUnavailable):
        registry.get("espeak")
    with pytest.raises(registry.ProviderUnavailable):
        registry.speech("storyboard")
    assert PROVIDER.conn_id is None and PROVIDER.estimate(request()) == 0.0


def test_it_speaks_a_wav_with_a_time_for_every_written_word(tmp_path: Path) -> None:
    speech = PROVIDER.synthesize(request(), tmp_path, None)
    with wave.open(str(speech.path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 22050)
    assert abs(track_duration(speech.path) - speech.duration_s) < 0.01
    assert speech.timings == "engine"
    assert [w.text for w in speech.words] == TEXT.split()
    starts = [w.start_s for w in speech.words]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert 0 <= speech.speech_start_s < 0.1 and speech.speech_end_s <= speech.duration_s
    assert 3.0 < speech.spoken_s < 8.0
    # A word before the sentence's pause ends before the next sentence starts.
    meadow, it = speech.words[5], speech.words[6]
    assert meadow.end_s < it.start_s - 0.1


def test_speed_language_and_variant_change_the_speech(tmp_path: Path) -> None:
    normal = PROVIDER.synthesize(request(), tmp_path, None)
    fast = PROVIDER.synthesize(request(speed=2.0), tmp_path, None)
    assert fast.spoken_s < 0.7 * normal.spoken_s
    spanish = PROVIDER.synthesize(request(text="Hola, mundo.", language="es"), tmp_path, None)
    assert [w.text for w in spanish.words] == ["Hola,", "mundo."]
    assert "f3" in variants() and {"en-us", "en-gb", "es", "de", "cmn"} <= set(languages())
    assert PROVIDER.synthesize(request(voice="f3"), tmp_path, None).spoken_s > 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"language": "xx-nope"}, "no voice for language"),
        ({"voice": "nobody"}, "no voice variant"),
        ({"speed": 3.0}, "speeds"),
        ({"model": "other"}, "no model"),
    ],
)
def test_what_it_cannot_speak_is_refused_before_speaking(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PROVIDER.check(request(**change))
