"""ElevenLabs text-to-speech behind the speech port: ``POST /v1/text-to-speech/{voice_id}/with-timestamps``
answers JSON with the audio (base64 MP3) and when each character is spoken, which gives the word timings
(``video_pipeline.words.from_characters``).

One billed POST per narration (``_speech.BilledPost``: sent again only when the answer proves nothing was
spoken). A ``quota_exceeded`` answer stops the job; an unknown voice or an invalid request fails the segment.
A voice id is the account's (its own voices and the library's), so it is checked for shape only.

Connection ``elevenlabs_default``: host = API base URL (default ``https://api.elevenlabs.io``), password = API
key (sent as ``xi-api-key``); extra: ``max_retries``, ``backoff_base``, ``backoff_cap``, ``timeout``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import httpx

from video_pipeline.providers._speech import BilledPost, error_message, sounding
from video_pipeline.providers.port import Action, Endpoint, ProviderError, Speech, SpeechRequest
from video_pipeline.words import from_characters, tightened

NAME = "elevenlabs"
DEFAULT_BASE_URL = "https://api.elevenlabs.io"
OUTPUT_FORMAT = "mp3_44100_128"
VOICE_ID = re.compile(r"^[A-Za-z0-9]{20}$")
#: List prices in credits (US cents) per character: about $0.10 per thousand characters for the multilingual
#: model, half that for Flash and Turbo (plans differ; set your own in ``PRICE_PER_CHAR``).
PRICE_PER_CHAR: dict[str, float] = {
    "eleven_multilingual_v2": 0.01,
    "eleven_flash_v2_5": 0.005,
    "eleven_turbo_v2_5": 0.005,
}
#: Models that take a ``language_code`` (ISO 639-1); the multilingual one detects the language itself.
LANGUAGE_CODE_MODELS = frozenset({"eleven_flash_v2_5", "eleven_turbo_v2_5"})
MAX_INPUT_CHARS = 5000
#: The JSON answer carries the audio in base64: a few MB for a long narration.
MAX_ANSWER_BYTES = 100_000_000


def classify(response: httpx.Response) -> ProviderError:
    """The error a refusal stands for: an exhausted quota stops the job; a busy system (429) is worth another
    try; any other refusal (unknown voice, invalid request, wrong key) fails the segment."""
    status = response.status_code
    code = None
    try:
        data = response.json()
        detail = data.get("detail") if isinstance(data, dict) else None
        if isinstance(detail, dict):
            code = str(detail.get("status") or detail.get("code") or "") or None
    except ValueError:
        pass
    text = f"POST text-to-speech: HTTP {status}: {error_message(response)}"
    if code in ("quota_exceeded", "payment_required") or status == 402:
        return ProviderError(text, action=Action.STOP_JOB, provider=NAME, status_code=status, code=code)
    if status == 429:
        return ProviderError(text, action=Action.UNAVAILABLE, provider=NAME, status_code=status, code=code)
    return ProviderError(text, action=Action.FAIL, provider=NAME, status_code=status, code=code)


class ElevenLabsVoice:
    """ElevenLabs' models with character timings; any voice of the account (default: "George")."""

    name = NAME
    conn_id = "elevenlabs_default"
    default_base_url = DEFAULT_BASE_URL
    models: ClassVar[Mapping[str, str]] = {
        "eleven_multilingual_v2": "about $0.10 per 1,000 characters (0.01 credits a character), 29 languages",
        "eleven_flash_v2_5": "about $0.05 per 1,000 characters (0.005 credits a character), low latency",
        "eleven_turbo_v2_5": "about $0.05 per 1,000 characters (0.005 credits a character)",
    }
    default_model = "eleven_multilingual_v2"
    default_voice = "JBFqnCBsd6RMkjVDRZzb"
    default_language = "en"
    speeds = (0.7, 1.2)
    concurrency = 2

    def check(self, request: SpeechRequest) -> None:
        if request.model not in self.models:
            raise ValueError(f"{NAME} has no model {request.model!r}; it has {', '.join(self.models)}")
        if not VOICE_ID.match(request.voice):
            raise ValueError(f"{NAME} voice ids are 20 letters and digits, not {request.voice!r}")
        low, high = self.speeds
        if not low <= request.speed <= high:
            raise ValueError(f"{NAME} speaks at speeds {low:g}–{high:g}, not {request.speed:g}")
        if len(request.text) > MAX_INPUT_CHARS:
            raise ValueError(f"{NAME} speaks at most {MAX_INPUT_CHARS} characters at once")

    def estimate(self, request: SpeechRequest) -> float:
        return round(PRICE_PER_CHAR[request.model] * len(request.text), 6)

    def synthesize(self, request: SpeechRequest, dest_dir: Path, endpoint: Endpoint | None) -> Speech:
        if endpoint is None:
            raise ValueError(f"{NAME} needs its connection ({self.conn_id})")
        self.check(request)
        post = BilledPost.of(NAME, endpoint, classify, MAX_ANSWER_BYTES)
        body: dict[str, Any] = {
            "text": request.text,
            "model_id": request.model,
            "voice_settings": {"speed": request.speed},
        }
        if request.model in LANGUAGE_CODE_MODELS:
            body["language_code"] = request.language.split("-")[0].lower()
        answer = dest_dir / "answer.json"
        path = f"/v1/text-to-speech/{request.voice}/with-timestamps?output_format={OUTPUT_FORMAT}"
        post.send(path, headers={"xi-api-key": endpoint.api_key}, body=body, sink=answer)
        dest = dest_dir / "speech.mp3"
        try:
            data = json.loads(answer.read_bytes())
            dest.write_bytes(base64.b64decode(data["audio_base64"], validate=True))
            alignment = data.get("alignment") or {}
            starts = [float(t) for t in alignment.get("character_start_times_seconds") or []]
            ends = [float(t) for t in alignment.get("character_end_times_seconds") or []]
            heard, duration = sounding(dest)
        except (ValueError, KeyError, TypeError, binascii.Error, OSError, IndexError) as exc:
            raise self._unreadable(exc) from None
        except Exception as exc:  # PyAV's errors: paid for, and not audio
            raise self._unreadable(exc) from None
        start, end = heard.bounds()
        if starts and len(starts) == len(ends) == len(request.text):
            words = tightened(from_characters(request.text, starts, ends, speech_end_s=end), heard)
            timings = "provider"
        else:  # an alignment that does not match the text: the offline engine's estimate instead
            from video_pipeline.providers._speech import estimated_words

            words, timings = estimated_words(request, heard), "estimated"
        return Speech(
            path=dest,
            duration_s=duration,
            speech_start_s=start,
            speech_end_s=end,
            words=words,
            timings=timings,
        )

    @staticmethod
    def _unreadable(exc: Exception) -> ProviderError:
        return ProviderError(
            f"POST text-to-speech: the answer holds no readable audio ({type(exc).__name__})",
            action=Action.AMBIGUOUS,
            provider=NAME,
        )


PROVIDER = ElevenLabsVoice()
