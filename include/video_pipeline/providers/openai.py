"""OpenAI text-to-speech behind the speech port: ``POST /v1/audio/speech`` answers the audio itself (MP3).

One billed POST per narration (``_speech.BilledPost``: sent again only when the answer proves nothing was
spoken; ``insufficient_quota`` stops the job). OpenAI reports no word timings, so they are the offline engine's
word events for the same text stretched onto where this audio holds speech (``_speech.estimated_words``): the
request's ``language`` must be one the offline engine speaks.

Connection ``openai_default``: host = API base URL (default ``https://api.openai.com``), password = API key;
extra: ``max_retries``, ``backoff_base``, ``backoff_cap``, ``timeout``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import httpx

from video_pipeline.providers._speech import (
    BilledPost,
    check_language,
    error_message,
    estimated_words,
    sounding,
)
from video_pipeline.providers.port import Action, Endpoint, ProviderError, Speech, SpeechRequest

NAME = "openai"
DEFAULT_BASE_URL = "https://api.openai.com"
SPEECH_PATH = "/v1/audio/speech"
VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"}
)
#: List prices in credits (US cents) per character of input: tts-1 $15 and tts-1-hd $30 per million characters;
#: gpt-4o-mini-tts bills tokens, about $0.015 a minute of speech (~$17 per million characters).
PRICE_PER_CHAR: dict[str, float] = {"tts-1": 0.0015, "tts-1-hd": 0.003, "gpt-4o-mini-tts": 0.0017}
MAX_INPUT_CHARS = 4096
MAX_AUDIO_BYTES = 50_000_000


def classify(response: httpx.Response) -> ProviderError:
    """The error a refusal stands for: ``insufficient_quota`` (a 429 that retrying cannot cure) stops the job;
    a 429 rate limit is worth another try; any other 4xx fails the segment."""
    message = error_message(response)
    status = response.status_code
    code = None
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code") or error.get("type") or "") or None
    except ValueError:
        pass
    text = f"POST {SPEECH_PATH}: HTTP {status}: {message}"
    if code == "insufficient_quota" or "quota" in message.lower():
        return ProviderError(text, action=Action.STOP_JOB, provider=NAME, status_code=status, code=code)
    if status == 429:
        return ProviderError(text, action=Action.UNAVAILABLE, provider=NAME, status_code=status, code=code)
    return ProviderError(text, action=Action.FAIL, provider=NAME, status_code=status, code=code)


class OpenAIVoice:
    """OpenAI's speech models: 11 voices, any language the model speaks (timed by the offline engine)."""

    name = NAME
    conn_id = "openai_default"
    default_base_url = DEFAULT_BASE_URL
    models: ClassVar[Mapping[str, str]] = {
        "tts-1": "$15 per million characters (0.0015 credits a character)",
        "tts-1-hd": "$30 per million characters (0.003 credits a character)",
        "gpt-4o-mini-tts": "about $0.015 a minute of speech (0.0017 credits a character)",
    }
    default_model = "tts-1"
    default_voice = "alloy"
    default_language = "en-us"
    speeds = (0.25, 4.0)
    concurrency = 4

    def check(self, request: SpeechRequest) -> None:
        if request.model not in self.models:
            raise ValueError(f"{NAME} has no model {request.model!r}; it has {', '.join(self.models)}")
        if request.voice not in VOICES:
            raise ValueError(f"{NAME} has no voice {request.voice!r}; it has {', '.join(sorted(VOICES))}")
        low, high = self.speeds
        if not low <= request.speed <= high:
            raise ValueError(f"{NAME} speaks at speeds {low:g}–{high:g}, not {request.speed:g}")
        if len(request.text) > MAX_INPUT_CHARS:
            raise ValueError(f"{NAME} speaks at most {MAX_INPUT_CHARS} characters at once")
        check_language(NAME, request.language)

    def estimate(self, request: SpeechRequest) -> float:
        return round(PRICE_PER_CHAR[request.model] * len(request.text), 6)

    def synthesize(self, request: SpeechRequest, dest_dir: Path, endpoint: Endpoint | None) -> Speech:
        if endpoint is None:
            raise ValueError(f"{NAME} needs its connection ({self.conn_id})")
        self.check(request)
        post = BilledPost.of(NAME, endpoint, classify, MAX_AUDIO_BYTES)
        dest = dest_dir / "speech.mp3"
        body = {
            "model": request.model,
            "input": request.text,
            "voice": request.voice,
            "response_format": "mp3",
            "speed": request.speed,
        }
        post.send(SPEECH_PATH, headers={"Authorization": f"Bearer {endpoint.api_key}"}, body=body, sink=dest)
        try:
            heard, duration = sounding(dest)
        except Exception as exc:  # paid for, and not audio
            raise ProviderError(
                f"POST {SPEECH_PATH}: the answer is not readable audio ({type(exc).__name__})",
                action=Action.AMBIGUOUS,
                provider=NAME,
            ) from None
        start, end = heard.bounds()
        return Speech(
            path=dest,
            duration_s=duration,
            speech_start_s=start,
            speech_end_s=end,
            words=estimated_words(request, heard),
            timings="estimated",
        )


PROVIDER = OpenAIVoice()
