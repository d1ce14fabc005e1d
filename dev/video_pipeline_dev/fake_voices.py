"""Fake paid voices over real HTTP on loopback: OpenAI's ``POST /v1/audio/speech`` and ElevenLabs'
``POST /v1/text-to-speech/{voice_id}/with-timestamps``, for tests and benchmarks.

They speak for real: the offline engine renders the text (at the request's speed) and the fake answers an MP3
(OpenAI) or JSON with a base64 MP3 and per-character timings taken from the engine's word events (ElevenLabs),
so the clients' audio checks and timing code run on actual speech. Each request takes ``latency`` seconds.

What a test can make them do (``fake.config`` or :meth:`FakeVoice.reset`): refuse with 429 (``Retry-After``) or
503 with ``Retry-After`` (nothing spoken), run out of quota after ``quota_chars`` billed characters
(OpenAI: 429 ``insufficient_quota``; ElevenLabs: 401 ``quota_exceeded``), and *speak and bill and then* answer
500 or drop the connection (``spoken-then-500``, ``spoken-then-reset``), or answer 500 without speaking
(``500``: the client cannot tell the two apart): what a gateway in front of a real
backend can do, and what a client must never repeat. ``faults`` is a script consumed one per request.

Counters (:meth:`FakeVoice.stats`): requests received, requests spoken (billed), characters billed, answers by
status, and the most requests in flight at once.

    with FakeVoice("openai", api_key="k", latency=0.2) as fake:
        ...  # fake.base_url
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from video_pipeline.media.ffmpeg import ffmpeg_exe
from video_pipeline.providers._espeak_library import NORMAL_RATE_WPM, render
from video_pipeline.words import text_words
from video_pipeline_dev.fake_http import Dropped, LoopbackServer, keep_raw_channels

Flavour = Literal["openai", "elevenlabs"]
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "nova",
    "onyx",
    "sage",
    "shimmer",
    "verse",
)
ELEVEN_MODELS = ("eleven_multilingual_v2", "eleven_flash_v2_5", "eleven_turbo_v2_5")
#: Voice ids the fake ElevenLabs account has (its default "George" among them).
ELEVEN_VOICES = ("JBFqnCBsd6RMkjVDRZzb", "21m00Tcm4TlvDq8ikWAM")
FAULTS = ("429", "503-retry-after", "500", "spoken-then-500", "spoken-then-reset")


@dataclass
class FakeVoiceConfig:
    api_key: str = "test-key"
    latency: float = 0.0
    #: Characters billed before the account is out of quota (None: no limit).
    quota_chars: int | None = None
    #: Faults answered to the next requests, one each, in order (see ``FAULTS``).
    faults: list[str] = field(default_factory=list)


@functools.lru_cache(maxsize=256)
def spoken(text: str, speed: float) -> tuple[bytes, tuple[float, ...], tuple[float, ...]]:
    """The text spoken by the offline engine as MP3, and each character's start and end (s): a word's characters
    share its span evenly; spaces between words take the gap."""
    rendered = render(text, voice=None, language="en-us", rate_wpm=round(NORMAL_RATE_WPM * speed))
    seconds = len(rendered.samples) / rendered.sample_rate
    with tempfile.TemporaryDirectory(prefix="fake-voice-") as tmp:
        raw = Path(tmp) / "speech.raw"
        raw.write_bytes(rendered.samples.tobytes())
        mp3 = Path(tmp) / "speech.mp3"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-y",
                "-f",
                "s16le",
                "-ar",
                str(rendered.sample_rate),
                "-ac",
                "1",
                "-i",
                str(raw),
                "-c:a",
                "libmp3lame",
                "-b:a",
                "64k",
                str(mp3),
            ],
            check=True,
        )
        audio = mp3.read_bytes()
    words = text_words(text)
    events = sorted(rendered.word_events)
    starts = [0.0] * len(text)
    ends = [0.0] * len(text)
    for n, word in enumerate(words):
        at = next((t for offset, t in events if word.start <= offset < word.end), None)
        begin = at if at is not None else (starts[word.start - 1] if word.start else 0.0)
        following = next((t for offset, t in events if offset >= word.end), seconds)
        step = (following - begin) / max(1, word.end - word.start)
        for k, index in enumerate(range(word.start, word.end)):
            starts[index] = begin + k * step
            ends[index] = begin + (k + 1) * step
        gap_end = words[n + 1].start if n + 1 < len(words) else len(text)
        for index in range(word.end, gap_end):
            starts[index] = ends[index] = following
    return audio, tuple(round(t, 3) for t in starts), tuple(round(t, 3) for t in ends)


class _State:
    def __init__(self, flavour: Flavour, config: FakeVoiceConfig) -> None:
        self.flavour = flavour
        self.config = config
        self.lock = threading.Lock()
        self.reset_counters()

    def reset_counters(self) -> None:
        self.requests = 0
        self.spoken = 0
        self.chars_billed = 0
        self.answers: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "requests": self.requests,
                "spoken": self.spoken,
                "chars_billed": self.chars_billed,
                "answers": dict(self.answers),
                "max_in_flight": self.max_in_flight,
            }


def _error(
    flavour: Flavour, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    if flavour == "openai":
        body: dict[str, Any] = {"error": {"message": message, "type": code, "code": code, "param": None}}
    else:
        body = {"detail": {"status": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def build_app(state: _State) -> Any:
    async def speak(request: Request) -> Response:
        with state.lock:
            state.requests += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            fault = state.config.faults.pop(0) if state.config.faults else None
        try:
            response = await _answer(state, request, fault)
        finally:
            with state.lock:
                state.in_flight -= 1
        with state.lock:
            state.answers[response.status_code] += 1
        return response

    async def _answer(state: _State, request: Request, fault: str | None) -> Response:
        flavour = state.flavour
        config = state.config
        if flavour == "openai":
            if request.headers.get("authorization") != f"Bearer {config.api_key}":
                return _error(flavour, 401, "invalid_api_key", "Incorrect API key provided.")
        elif request.headers.get("xi-api-key") != config.api_key:
            return _error(flavour, 401, "invalid_api_key", "Invalid API key")
        if fault == "429":
            return _error(flavour, 429, "rate_limit_exceeded", "Rate limit reached", {"retry-after": "0"})
        if fault == "503-retry-after":
            return _error(flavour, 503, "service_unavailable", "Shedding load", {"retry-after": "0"})
        if fault == "500":  # nothing spoken, but the client cannot know that
            return _error(
                flavour, 500, "server_error", "The server had an error while processing your request."
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(flavour, 400, "invalid_request_error", "body is not JSON")
        text, speed, problem = _check(flavour, request, body)
        if problem is not None:
            return problem
        with state.lock:
            if config.quota_chars is not None and state.chars_billed + len(text) > config.quota_chars:
                if flavour == "openai":
                    return _error(flavour, 429, "insufficient_quota", "You exceeded your current quota.")
                return _error(flavour, 401, "quota_exceeded", "This request exceeds your quota.")
        await asyncio.sleep(config.latency)
        audio, starts, ends = await asyncio.to_thread(spoken, text, speed)
        with state.lock:
            state.spoken += 1
            state.chars_billed += len(text)
        if fault == "spoken-then-500":
            return _error(
                flavour, 500, "server_error", "The server had an error while processing your request."
            )
        if fault == "spoken-then-reset":
            return Dropped()
        if flavour == "openai":
            return Response(audio, media_type="audio/mpeg")
        alignment = {
            "characters": list(text),
            "character_start_times_seconds": list(starts),
            "character_end_times_seconds": list(ends),
        }
        return JSONResponse(
            {
                "audio_base64": base64.b64encode(audio).decode(),
                "alignment": alignment,
                "normalized_alignment": alignment,
            }
        )

    async def stats(request: Request) -> Response:
        return JSONResponse(state.stats())

    path = (
        "/v1/audio/speech" if state.flavour == "openai" else "/v1/text-to-speech/{voice_id}/with-timestamps"
    )
    routes = [Route(path, speak, methods=["POST"]), Route("/_fake/stats", stats)]
    return keep_raw_channels(Starlette(routes=routes))


def _check(flavour: Flavour, request: Request, body: Any) -> tuple[str, float, Response | None]:
    """The text and speed of a valid request, or the API's refusal."""
    if not isinstance(body, dict):
        return "", 1.0, _error(flavour, 400, "invalid_request_error", "body must be an object")
    if flavour == "openai":
        text, model, voice = body.get("input"), body.get("model"), body.get("voice")
        speed = body.get("speed", 1.0)
        if model not in OPENAI_MODELS:
            return "", 1.0, _error(flavour, 404, "model_not_found", f"The model {model} does not exist")
        if voice not in OPENAI_VOICES:
            return "", 1.0, _error(flavour, 400, "invalid_request_error", f"Invalid voice {voice}")
        if not isinstance(text, str) or not text or len(text) > 4096:
            return "", 1.0, _error(flavour, 400, "invalid_request_error", "input must be 1-4096 characters")
        if not isinstance(speed, int | float) or not 0.25 <= speed <= 4.0:
            return "", 1.0, _error(flavour, 400, "invalid_request_error", "speed must be 0.25-4.0")
        return text, float(speed), None
    voice_id = request.path_params["voice_id"]
    if voice_id not in ELEVEN_VOICES:
        return (
            "",
            1.0,
            _error(flavour, 404, "voice_not_found", f"A voice with the voice_id {voice_id} was not found."),
        )
    text, model = body.get("text"), body.get("model_id")
    speed = (body.get("voice_settings") or {}).get("speed", 1.0)
    if model not in ELEVEN_MODELS:
        return "", 1.0, _error(flavour, 400, "model_not_found", f"Model {model} not found")
    if not isinstance(text, str) or not text.strip():
        return "", 1.0, _error(flavour, 422, "invalid_text", "text must not be empty")
    if not isinstance(speed, int | float) or not 0.7 <= speed <= 1.2:
        return "", 1.0, _error(flavour, 400, "invalid_voice_settings", "speed must be 0.7-1.2")
    return text, float(speed), None


class FakeVoice(LoopbackServer):
    """A fake OpenAI (``"openai"``) or ElevenLabs (``"elevenlabs"``) speech API on a loopback port."""

    def __init__(self, flavour: Flavour, **config: Any) -> None:
        self.flavour = flavour
        self._shared = _State(flavour, FakeVoiceConfig(**config))
        super().__init__(lambda: build_app(self._shared), name=f"fake-{flavour}")

    @property
    def config(self) -> FakeVoiceConfig:
        return self._shared.config

    def reset(self, **config: Any) -> None:
        """New configuration (unnamed fields back to their defaults) and zeroed counters."""
        with self._shared.lock:
            self._shared.config = FakeVoiceConfig(**config)
            self._shared.reset_counters()

    def stats(self) -> dict[str, Any]:
        return self._shared.stats()

    def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._shared.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)
