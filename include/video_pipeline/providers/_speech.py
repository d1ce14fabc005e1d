"""What the paid voices share: their one billed POST, sent under the never-pay-twice rules, the audio it returns
read for where speech is, and word timings for a voice that reports none.

The POST (:func:`post_billed`) creates — and bills — speech, and a voice API has no idempotency key, so it is
sent again only when the answer proves nothing was spoken (``http.proves_nothing_created``: 429, or 503 with a
valid ``Retry-After``; or a connection that failed before the request was sent). Every other failure after
sending — a 5xx, a read timeout, a reset, a body cut short — is ``Action.AMBIGUOUS``: the caller fails the segment
for a person to look at instead of paying again. When the retries of a "nothing spoken" answer are used up
the error is ``Action.UNAVAILABLE``. A refusal (4xx) is classified by the voice's own rules (``classify``).
"""

from __future__ import annotations

import array
import logging
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from video_pipeline.providers.http import (
    CHUNK,
    ERROR_BODY_MAX,
    NEVER_RETRY,
    NOTHING_SENT,
    backoff_delay,
    call_with_retries,
    check_api_key,
    detached,
    proves_nothing_created,
    quiet_http_loggers,
    retry_after,
)
from video_pipeline.providers.port import Action, Endpoint, ProviderError, SpeechRequest
from video_pipeline.words import Sounding, WordTiming, scaled, sounding_frames, tightened

log = logging.getLogger(__name__)

#: Samples quieter than this (of 32767) are silence when finding where a voice's speech is (about -50 dBFS).
SILENCE_LEVEL = 100
#: The rate audio is decoded at to find its speech (enough for 10-ms frames).
ANALYSIS_RATE = 16000


@dataclass
class BilledPost:
    """How one voice's client sends its billed POST.

    :param provider: the voice's registry name (messages, errors).
    :param endpoint: its base URL and key.
    :param classify: the error for a refusal the voice answered (4xx other than a bare 429).
    :param max_bytes: the largest answer accepted (audio or JSON).
    """

    provider: str
    endpoint: Endpoint
    classify: Callable[[httpx.Response], ProviderError]
    max_bytes: int
    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    timeout_s: float = 120.0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @classmethod
    def of(
        cls,
        provider: str,
        endpoint: Endpoint,
        classify: Callable[[httpx.Response], ProviderError],
        max_bytes: int,
    ) -> BilledPost:
        """Settings from the connection's extra (``max_retries``, ``backoff_base``, ``backoff_cap``, ``timeout``)."""
        check_api_key(endpoint.api_key)
        extra = endpoint.extra
        return cls(
            provider,
            endpoint,
            classify,
            max_bytes,
            max_retries=int(extra.get("max_retries", 3)),
            backoff_base=float(extra.get("backoff_base", 0.5)),
            backoff_cap=float(extra.get("backoff_cap", 30.0)),
            timeout_s=float(extra.get("timeout", 120.0)),
        )

    def send(
        self, path: str, *, headers: Mapping[str, str], body: Mapping[str, Any], sink: Path
    ) -> httpx.Response:
        """POST ``body`` to ``path`` once (again only when nothing was spoken) and stream a 200's body into
        ``sink``, at most ``max_bytes``. Returns the 200 answer (its body in ``sink``)."""
        quiet_http_loggers()
        url = f"{(self.endpoint.base_url or '').rstrip('/')}{path}"
        what = f"POST {httpx.URL(url).path}"
        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as http:

            def attempt() -> httpx.Response:
                return self._stream(
                    http, {"method": "POST", "url": url, "headers": dict(headers), "json": body}, sink, what
                )

            return call_with_retries(
                attempt,
                lambda response, tries: self._after_response(what, response, tries),
                lambda exc, tries: self._after_transport_error(what, exc, tries),
            )

    def _stream(self, http: httpx.Client, request: dict[str, Any], sink: Path, what: str) -> httpx.Response:
        with http.stream(**request) as response:
            if response.status_code != 200:
                body = b""
                for chunk in response.iter_bytes(CHUNK):
                    body += chunk
                    if len(body) >= ERROR_BODY_MAX:
                        break
                return detached(response, body[:ERROR_BODY_MAX])
            received = 0
            with sink.open("wb") as out:
                for chunk in response.iter_bytes(CHUNK):
                    received += len(chunk)
                    if received > self.max_bytes:
                        raise self._ambiguous(
                            f"{what}: more than the {self.max_bytes} bytes allowed in the answer"
                        )
                    out.write(chunk)
            return response

    def _ambiguous(self, message: str, status: int | None = None) -> ProviderError:
        return ProviderError(message, action=Action.AMBIGUOUS, provider=self.provider, status_code=status)

    def _after_response(self, what: str, response: httpx.Response, tries: int) -> float | None:
        status = response.status_code
        if status == 200:
            return None
        if proves_nothing_created(response):
            refusal = self.classify(response) if status == 429 else None
            if refusal is not None and refusal.action == Action.STOP_JOB:
                raise refusal  # out of quota: asking again cannot help
            if tries < self.max_retries:
                delay = backoff_delay(
                    self.rng, tries, retry_after(response), self.backoff_base, self.backoff_cap
                )
                log.warning(
                    "%s %s: HTTP %s, retry %d/%d in %.2fs",
                    self.provider,
                    what,
                    status,
                    tries + 1,
                    self.max_retries,
                    delay,
                )
                return delay
            raise ProviderError(
                f"{what}: HTTP {status} after {tries + 1} attempts (nothing was spoken)",
                action=Action.UNAVAILABLE,
                provider=self.provider,
                status_code=status,
            )
        if status >= 500 or status == 408:
            raise self._ambiguous(
                f"{what}: HTTP {status} after the request was sent; the voice may have spoken (and billed) it",
                status,
            )
        raise self.classify(response)

    def _after_transport_error(self, what: str, exc: httpx.RequestError, tries: int) -> float:
        kind = type(exc).__name__
        if isinstance(exc, NEVER_RETRY):
            raise ProviderError(f"{what}: {kind}", action=Action.FAIL, provider=self.provider) from None
        if not isinstance(exc, NOTHING_SENT):
            raise self._ambiguous(
                f"{what}: {kind} after the request was sent; it may have been spoken (and billed)"
            )
        if tries < self.max_retries:
            return backoff_delay(self.rng, tries, None, self.backoff_base, self.backoff_cap)
        raise ProviderError(
            f"{what}: {kind} after {tries + 1} attempts (nothing was sent)",
            action=Action.UNAVAILABLE,
            provider=self.provider,
        ) from None


def error_message(response: httpx.Response) -> str:
    """An API's error answer as one short line (its body only, never headers)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        detail = data.get("error") or data.get("detail") or data
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("status") or detail
        return str(detail)[:300]
    return response.text.strip().replace("\n", " ")[:300] or response.reason_phrase


def sounding(path: Path) -> tuple[Sounding, float]:
    """Where an audio file (the voice's MP3 or WAV) holds sound, and its length in seconds."""
    import av

    samples: array.array[int] = array.array("h")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=ANALYSIS_RATE)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
        for out in resampler.resample(None):
            samples.frombytes(bytes(out.planes[0])[: out.samples * 2])
    return sounding_frames(samples, ANALYSIS_RATE, level=SILENCE_LEVEL), round(
        len(samples) / ANALYSIS_RATE, 3
    )


def estimated_words(request: SpeechRequest, heard: Sounding) -> list[WordTiming]:
    """Word timings for a voice that reports none: the offline engine speaks the same text in the request's
    language, and its word events are stretched onto where this audio holds speech, then each word ends where
    its sound does."""
    from video_pipeline.providers import espeak  # the offline engine is the reference for every voice

    reference = request.model_copy(
        update={"model": espeak.PROVIDER.default_model, "voice": espeak.DEFAULT_VARIANT, "speed": 1.0}
    )
    with tempfile.TemporaryDirectory(prefix="vp-reference-") as tmp:
        spoken = espeak.PROVIDER.synthesize(reference, Path(tmp), None)
    stretched = scaled(spoken.words, (spoken.speech_start_s, spoken.speech_end_s), heard.bounds())
    return tightened(stretched, heard)


def check_language(provider: str, language: str) -> None:
    """A voice that reports no timings needs a language the offline engine speaks (its reference)."""
    from video_pipeline.providers import espeak

    if language.lower() not in espeak.languages():
        raise ValueError(
            f"{provider}: language {language!r} is not one the offline engine can time words in (e.g. en-us, es, de)"
        )
