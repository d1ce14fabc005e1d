"""The offline voice: espeak-ng, from the ``espeakng-loader`` wheel (the library and its voice data), run in the
worker's own process. No key, no network, nothing downloaded at run time; about 10–25 ms per segment.

A request's ``language`` picks the espeak-ng voice (``en-us``, ``en-gb``, ``es``, ``de``, ``cmn`` …: one of the
languages its voice files declare) and ``voice`` one of its variants (``default``, ``f1``–``f5``, ``m1``–``m8``,
``klatt``, ``whisper`` …: the files under ``espeak-ng-data/voices/!v``); both are checked against what the wheel
ships, because the library itself speaks another voice for a name it does not know. ``speed`` scales the normal
pace of 175 words a minute (the library takes 80–450).

Word timings are the engine's word events (docs/notes/offline-voice.md: within ~50 ms of the audio, never
late), one per spoken word, mapped onto the written words (``video_pipeline.words.from_events``). The audio is a
22.05 kHz mono 16-bit WAV.

espeak-ng is GPL-3.0-or-later and this loads it in-process (README: Narration, licence).
"""

from __future__ import annotations

import functools
import os
import wave
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from video_pipeline.providers import _espeak_library as engine
from video_pipeline.providers.port import Action, Endpoint, ProviderError, Speech, SpeechRequest
from video_pipeline.words import from_events, sounding_frames, tightened

NAME = "espeak"
DEFAULT_VARIANT = "default"
#: Samples quieter than this (of 32767) are silence when finding where speech starts and ends (about -50 dBFS).
SILENCE_LEVEL = 100


@functools.cache
def _voices_by_language() -> dict[str, str]:
    """Language code → the voice file that speaks it (the first voice declaring it, preferring one that lists it
    first)."""
    found: dict[str, str] = {}
    voices = engine.voices()
    for rank in range(4):
        for voice in voices:
            if len(voice.languages) > rank:
                found.setdefault(voice.languages[rank].lower(), voice.identifier)
    return found


@functools.cache
def variants() -> frozenset[str]:
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return frozenset({DEFAULT_VARIANT, *(p.name for p in folder.iterdir() if p.is_file())})


def languages() -> list[str]:
    return sorted(_voices_by_language())


class EspeakVoice:
    """espeak-ng in-process: free, every language its data ships, word timings from its events."""

    name = NAME
    conn_id: str | None = None
    default_base_url: str | None = None
    models: ClassVar[Mapping[str, str]] = {
        "espeak-ng": "espeak-ng 1.52 formant synthesis, 100+ languages; free, offline, word timings from its events"
    }
    default_model = "espeak-ng"
    default_voice = DEFAULT_VARIANT
    default_language = "en-us"
    speeds = (engine.MIN_RATE_WPM / engine.NORMAL_RATE_WPM, engine.MAX_RATE_WPM / engine.NORMAL_RATE_WPM)
    concurrency = os.cpu_count() or 2

    def check(self, request: SpeechRequest) -> None:
        if request.model not in self.models:
            raise ValueError(f"{NAME} has no model {request.model!r}; it has {', '.join(self.models)}")
        if request.language.lower() not in _voices_by_language():
            raise ValueError(
                f"{NAME} has no voice for language {request.language!r} (e.g. en-us, en-gb, es, de)"
            )
        if request.voice not in variants():
            raise ValueError(
                f"{NAME} has no voice variant {request.voice!r}; it has {', '.join(sorted(variants())[:12])}, …"
            )
        low, high = self.speeds
        if not low <= request.speed <= high:
            raise ValueError(f"{NAME} speaks at speeds {low:.2f}–{high:.2f}, not {request.speed:g}")

    def estimate(self, request: SpeechRequest) -> float:
        return 0.0

    def synthesize(self, request: SpeechRequest, dest_dir: Path, endpoint: Endpoint | None) -> Speech:
        self.check(request)
        identifier = _voices_by_language()[request.language.lower()]
        voice = identifier if request.voice == DEFAULT_VARIANT else f"{identifier}+{request.voice}"
        rate = round(engine.NORMAL_RATE_WPM * request.speed)
        try:
            rendered = engine.render(request.text, voice=voice, language=request.language, rate_wpm=rate)
        except engine.EngineError as exc:
            raise ProviderError(str(exc), action=Action.FAIL, provider=NAME) from None
        dest = dest_dir / "speech.wav"
        with wave.open(str(dest), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(rendered.sample_rate)
            out.writeframes(rendered.samples.tobytes())
        duration = round(len(rendered.samples) / rendered.sample_rate, 3)
        frames = sounding_frames(rendered.samples, rendered.sample_rate, level=SILENCE_LEVEL)
        start, end = frames.bounds()
        words = from_events(request.text, rendered.word_events, speech_start_s=start, speech_end_s=end)
        words = tightened(words, frames)
        return Speech(
            path=dest,
            duration_s=duration,
            speech_start_s=start,
            speech_end_s=end,
            words=words,
            timings="engine",
        )


PROVIDER = EspeakVoice()
