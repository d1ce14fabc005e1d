"""Runway developer API client (version 2024-11-06), sync and async, over httpx.

The worker submits with :class:`RunwayClient`; the Airflow trigger polls with :class:`AsyncRunwayClient`. Both
are thin loops around one shared core (:class:`_Core`) that builds every request and interprets every
response and transport failure, so the two cannot drift apart.

What the client promises:

* Every API call sends ``Authorization: Bearer <key>`` and ``X-Runway-Version``. The key goes nowhere
  else: not to output URLs or upload targets (both presigned), not into exception messages, reprs or logs.
* Reads, cancels and uploads are retried on 429, 500, 502, 503, 504 and connection failures, with exponential
  backoff and full jitter, honouring ``Retry-After``; after ``max_retries`` retries :class:`RunwayTransientError`
  is raised.
* A POST that creates a billed task (``text_to_image``, ``image_to_video``) is retried only when the answer
  proves nothing was created: 429, 503 with a valid ``Retry-After``, or a connection that failed before the
  request was sent. Any other failure after sending — 500, 502, 504, 503 without ``Retry-After``, a read
  timeout, a reset — raises :class:`RunwayAmbiguousSubmit` (see there, and
  :func:`~video_pipeline.providers.http.proves_nothing_created`).
* Output downloads send no API headers, follow redirects only within the same scheme (or up to https) and
  never to an internal address other than the host the URL started on, stop at a size cap per kind
  (:data:`video_pipeline.outputs.MAX_OUTPUT_BYTES`), and never leave a partial file
  (:class:`RunwayOutputRejected`).
* Presigned URLs are logged without their query string (:func:`redact_url`); httpx's and httpcore's own loggers
  (whose INFO lines print full URLs, signatures included) are held at WARNING by every client.
* Everything else raises a :class:`RunwayError` subclass chosen in one place: :func:`error_for_status` for
  HTTP answers and :func:`classify_failure` for failed tasks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import mimetypes
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from video_pipeline.layout import CacheKind
from video_pipeline.outputs import MAX_OUTPUT_BYTES, OutputRejected, kind_for
from video_pipeline.providers import http
from video_pipeline.providers.base import ClipRequest, ImageRequest

# The shared rules, also under the names Runway's callers have always imported from here.
from video_pipeline.providers.http import MAX_OUTPUT_REDIRECTS as MAX_OUTPUT_REDIRECTS
from video_pipeline.providers.http import RETRY_AFTER_MAX_S as RETRY_AFTER_MAX_S
from video_pipeline.providers.http import data_uri_size as data_uri_size
from video_pipeline.providers.http import parse_retry_after as parse_retry_after
from video_pipeline.providers.http import part_path, quiet_http_loggers, retry_after
from video_pipeline.providers.http import redact_url as redact_url
from video_pipeline.providers.port import (
    Action,
    Endpoint,
    ModelSpec,
    ProviderError,
    RemoteStatus,
    SourceImage,
    Stage,
)
from video_pipeline.providers.port import TaskState as TaskState_

log = logging.getLogger(__name__)

#: The provider's name in the registry and in job specs.
NAME = "runway"
DEFAULT_BASE_URL = "https://api.dev.runwayml.com"
API_VERSION = "2024-11-06"
DEFAULT_IMAGE_MODEL = "gen4_image"
DEFAULT_VIDEO_MODEL = "gen4_turbo"
#: Runway accepts data URIs up to 5 MB (the size of the URI, not of the file). Decimal MB: the conservative
#: reading; a file just under the binary limit goes through an upload instead, which always works.
DATA_URI_MAX_BYTES = 5_000_000
#: HTTP answers that mean "try again later" for calls that create nothing billed (Runway's error table names
#: 429/502/503/504; 500 is treated the same way). Task-creating POSTs are stricter: see ``_Core.nothing_created``.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Ratios text_to_image accepts that a job can use, with Runway's price tier for each.
IMAGE_RATIOS: dict[str, Literal["720p", "1080p"]] = {
    "1920:1080": "1080p",
    "1080:1920": "1080p",
    "1024:1024": "1080p",  # Runway lists 1024:1024 with the 1080p ratios (720:720 is its 720p square)
    "1280:720": "720p",
    "720:1280": "720p",
}

#: The one pricing table (credits; 1 credit = $0.01). Video models per second of output; images per image
#: by resolution tier.
PRICING: dict[str, dict[str, float]] = {
    "gen4_turbo": {"per_second": 5},
    "gen4.5": {"per_second": 12},
    "gen4_image": {"720p": 5, "1080p": 8},
}

TaskState = Literal["PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
TERMINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


# --------------------------------------------------------------------------------------------------- errors


class RunwayError(ProviderError):
    """Base of every error this module raises. Messages never contain the API key or request headers.

    Each class carries the port's :class:`~video_pipeline.providers.port.Action`: what the pipeline does about it.
    """

    action = Action.RETRY

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        failure_code: str | None = None,
        task_id: str | None = None,
        issues: Sequence[Any] = (),
    ) -> None:
        super().__init__(message, provider=NAME, status_code=status_code, code=failure_code, task_id=task_id)
        self.failure_code = failure_code
        self.issues = list(issues)


class RunwayPermanentError(RunwayError):
    """Repeating the same request fails the same way: never retry unchanged."""

    action = Action.FAIL


class RunwayValidationError(RunwayPermanentError):
    """HTTP 400: the request was refused; ``issues`` lists what the API said about each field."""


class RunwayCreditsExhausted(RunwayPermanentError):
    """HTTP 400 "You do not have enough credits to run this task." — top up before trying again."""

    action = Action.STOP_JOB


class RunwayAuthError(RunwayPermanentError):
    """HTTP 401: the API key is missing, wrong or revoked."""


class RunwayNotFound(RunwayPermanentError):
    """HTTP 404: no such task (or it was deleted)."""


class RunwayOutputExpired(RunwayPermanentError):
    """An output URL answered 403/404/410: its presigned link expired; the output cannot be fetched again."""

    action = Action.RESUBMIT


class RunwayTaskCancelled(RunwayPermanentError):
    """The task was cancelled (by us or in Runway's dashboard): resubmitting would override that decision."""


class RunwayRetryableTaskFailure(RunwayError):
    """The task failed on Runway's side (``THIRD_PARTY.UNAVAILABLE``, ``INTERNAL``, no code): resubmit."""

    action = Action.RESUBMIT


class RunwayBadOutput(RunwayError):
    """``INTERNAL.BAD_OUTPUT.*``: the model produced an unusable output; resubmit with a new seed.

    A sibling of :class:`RunwayRetryableTaskFailure`, not a subclass: a handler for "resubmit unchanged" must
    not catch it by accident, since the same seed tends to reproduce the same bad output.
    """

    action = Action.RESEED


class RunwayTransientError(RunwayError):
    """The API kept answering 429/5xx (or kept failing to connect) through every retry: try again later.

    Raised for a creating POST only when no task can have been created, so resubmitting is safe.
    """


class RunwayAmbiguousSubmit(RunwayError):
    """A task-creating POST was sent, and what came back does not prove that no task was created.

    Either the connection broke after the request was sent (a reset, a read timeout), or the answer was a 5xx
    that a gateway can give after the backend already created — and billed — the task (500, 502, 504, or a
    503 without ``Retry-After``), or a 2xx without a task id. Runway has no idempotency key and no way to list
    tasks, so the client cannot find out; retrying blindly is how the official SDK creates duplicate billed
    tasks, so this client never does it: the caller decides (fail for a human to look at, or resubmit
    knowingly). What *is* retried: a connection that failed before the request was sent (nothing sent, or a
    write error: the request never fully arrived, so it could not be parsed), 429, and 503 with
    ``Retry-After`` (see ``_Core.nothing_created``).
    """

    action = Action.AMBIGUOUS


class RunwayOutputRejected(RunwayError, OutputRejected):
    """An output download was refused: a redirect out of bounds (https → http, or to an internal address), more
    bytes than the cap for its kind, or too many redirects. Nothing is kept; downloading the same URL again
    would be refused the same way, so the output is treated as bad (the caller resubmits or fails)."""


#: ``classify_failure`` table: code prefix → error class. A prefix matches the code itself and any
#: ``prefix.*`` below it; the first match wins (so ``INTERNAL.BAD_OUTPUT`` is checked before ``INTERNAL``).
_FAILURE_PREFIXES: tuple[tuple[str, type[RunwayError]], ...] = (
    ("SAFETY.INPUT", RunwayPermanentError),
    ("SAFETY.OUTPUT", RunwayPermanentError),
    ("INPUT_PREPROCESSING.SAFETY.TEXT", RunwayPermanentError),
    ("ASSET.INVALID", RunwayPermanentError),
    ("INTERNAL.BAD_OUTPUT", RunwayBadOutput),
    ("THIRD_PARTY.UNAVAILABLE", RunwayRetryableTaskFailure),
    ("INTERNAL", RunwayRetryableTaskFailure),
    ("INPUT_PREPROCESSING.INTERNAL", RunwayRetryableTaskFailure),
)


def classify_failure(code: str | None) -> type[RunwayError]:
    """The error class for a FAILED task's ``failureCode``.

    Safety and invalid-asset failures are permanent (retrying unchanged pays again for the same refusal);
    ``INTERNAL.BAD_OUTPUT.*`` wants a new seed; ``THIRD_PARTY.UNAVAILABLE``, ``INTERNAL`` and a missing code
    are Runway's own trouble and worth a resubmit. An unknown code is treated as permanent: a human looks at
    it once rather than the pipeline paying for it repeatedly.
    """
    if not code:
        return RunwayRetryableTaskFailure
    upper = code.upper()
    for prefix, cls in _FAILURE_PREFIXES:
        if upper == prefix or upper.startswith(prefix + "."):
            return cls
    return RunwayPermanentError


def error_for_status(status_code: int, message: str, issues: Sequence[Any] = ()) -> RunwayError:
    """The error for a non-success HTTP answer from the API (after retries, for the retryable ones)."""
    text = f"HTTP {status_code}: {message}"
    if status_code == 400:
        if "credit" in message.lower():
            return RunwayCreditsExhausted(text, status_code=status_code)
        return RunwayValidationError(text, status_code=status_code, issues=issues)
    if status_code == 401:
        return RunwayAuthError(text, status_code=status_code)
    if status_code == 404:
        return RunwayNotFound(text, status_code=status_code)
    if status_code in RETRY_STATUSES or status_code >= 500:
        return RunwayTransientError(text, status_code=status_code)
    return RunwayPermanentError(text, status_code=status_code)  # 403, 405, 409, 413, 422, …


# -------------------------------------------------------------------------------------------- task status


class TaskStatus(BaseModel):
    """``GET /v1/tasks/{id}``, as the pipeline needs it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    status: TaskState
    progress: float | None = None
    output: list[str] = Field(default_factory=list)
    failure: str | None = None
    failure_code: str | None = Field(default=None, alias="failureCode")
    created_at: datetime | None = Field(default=None, alias="createdAt")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATES

    def error(self) -> RunwayError | None:
        """The exception a FAILED or CANCELLED task stands for (``None`` otherwise)."""
        if self.status == "CANCELLED":
            return RunwayTaskCancelled(f"task {self.id} was cancelled", task_id=self.id)
        if self.status != "FAILED":
            return None
        cls = classify_failure(self.failure_code)
        code = self.failure_code or "no failure code"
        return cls(
            f"task {self.id} failed ({code}): {self.failure or ''}".rstrip(": "),
            failure_code=self.failure_code,
            task_id=self.id,
        )

    def raise_for_failure(self) -> None:
        err = self.error()
        if err is not None:
            raise err


# ----------------------------------------------------------------------------------- ratios, credits, uris


def _ratio_wh(ratio: str) -> tuple[int, int]:
    w, _, h = ratio.partition(":")
    return int(w), int(h)


def image_ratio_for(job_ratio: str) -> str:
    """The text_to_image ratio closest to a job ratio: nearest aspect ratio, then nearest resolution.

    Distances are taken on a log scale (|ln(a/b)|) so portrait and landscape are symmetric and "twice as
    wide" weighs the same as "half as wide". Exact ties in aspect (1280:720 vs 1920:1080) go to the pixel
    count closest to the job's, which also picks the cheaper image when the job is 720p. Results:
    1280:720→1280:720, 720:1280→720:1280, 960:960/1104:832/832:1104→1024:1024, 1584:672→1280:720.
    """
    jw, jh = _ratio_wh(job_ratio)

    def distance(candidate: str) -> tuple[float, float]:
        cw, ch = _ratio_wh(candidate)
        aspect = abs(math.log((cw / ch) / (jw / jh)))
        size = abs(math.log((cw * ch) / (jw * jh)))
        return round(aspect, 9), size

    return min(IMAGE_RATIOS, key=distance)


def image_resolution(ratio: str) -> Literal["720p", "1080p"]:
    """Runway's price tier for a text_to_image ratio (a job ratio is mapped first)."""
    return IMAGE_RATIOS[ratio if ratio in IMAGE_RATIOS else image_ratio_for(ratio)]


def estimate_credits(
    kind: Literal["image", "video"],
    model: str,
    duration_s: float | None = None,
    resolution: str | None = None,
) -> float:
    """Credits one generation costs, from :data:`PRICING`.

    ``video`` needs ``duration_s``; ``image`` needs ``resolution`` (``720p``, ``1080p`` or a ratio ``W:H``).
    Unknown models raise ``ValueError`` rather than guessing a price a budget would trust.
    """
    prices = PRICING.get(model)
    if prices is None:
        raise ValueError(f"no price known for model {model!r}")
    if kind == "video":
        if "per_second" not in prices or duration_s is None:
            raise ValueError(f"video pricing for {model!r} needs a video model and duration_s")
        return prices["per_second"] * duration_s
    if resolution is None:
        raise ValueError("image pricing needs a resolution (720p, 1080p or a ratio)")
    tier = resolution if resolution in ("720p", "1080p") else image_resolution(resolution)
    if tier not in prices:
        raise ValueError(f"image pricing for {model!r} has no tier {tier!r}")
    return prices[tier]


def estimate_image_credits(request: ImageRequest) -> float:
    return estimate_credits("image", request.model or DEFAULT_IMAGE_MODEL, resolution=request.ratio)


def estimate_clip_credits(request: ClipRequest) -> float:
    return estimate_credits("video", request.model or DEFAULT_VIDEO_MODEL, duration_s=request.duration_s)


def image_data_uri(path: str | os.PathLike[str], *, max_bytes: int = DATA_URI_MAX_BYTES) -> str | None:
    """The image as a data URI when the URI fits Runway's limit, else ``None`` (then upload it instead)."""
    return http.image_data_uri(path, max_bytes=max_bytes)


def poll_delay(min_interval: float = 5.0, jitter: float = 0.25, rng: random.Random | None = None) -> float:
    """Seconds until the next poll: never below ``min_interval`` (Runway asks for ≥ 5 s), plus jitter."""
    return min_interval * (1.0 + (rng or random).uniform(0.0, jitter))


# ------------------------------------------------------------------------------------------- shared core

_SUCCESS = frozenset(range(200, 300))


@dataclass(frozen=True)
class _Call:
    """One logical request, independent of sync/async."""

    method: str
    url: str
    target: Literal["api", "output", "upload"] = "api"
    json: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    file: tuple[str, Path, str] | None = None  # (filename, path, content type) for multipart uploads
    creates_task: bool = False  # a billed POST: never retried once it may have reached the server
    ok: frozenset[int] = _SUCCESS
    tolerated: frozenset[int] = frozenset()
    max_bytes: int | None = None  # output downloads: the most bytes accepted

    @property
    def what(self) -> str:
        path = httpx.URL(self.url).path if self.target == "api" else f"<{self.target} url>"
        return f"{self.method} {path}"


@dataclass
class _Core:
    """Request building, response parsing and the retry decisions shared by the sync and async clients."""

    base_url: str
    api_key: str = field(repr=False)
    max_retries: int
    backoff_base: float
    backoff_cap: float
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        http.check_api_key(self.api_key)
        self.base_url = self.base_url.rstrip("/")

    # -- requests

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def headers(self, call: _Call) -> dict[str, str]:
        if call.target != "api":
            return {}  # presigned targets: the key must not travel to them
        return {"Authorization": f"Bearer {self.api_key}", "X-Runway-Version": API_VERSION}

    def request_kwargs(self, call: _Call, stack: contextlib.ExitStack) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": call.method, "url": call.url, "headers": self.headers(call)}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.form is not None:
            kwargs["data"] = dict(call.form)
        if call.file is not None:
            name, path, ctype = call.file
            kwargs["files"] = {"file": (name, stack.enter_context(path.open("rb")), ctype)}
        return kwargs

    def text_to_image(
        self, request: ImageRequest, reference_images: Sequence[str | Mapping[str, str]] | None
    ) -> _Call:
        model = request.model or DEFAULT_IMAGE_MODEL
        body: dict[str, Any] = {
            "model": model,
            "promptText": request.prompt,
            "ratio": image_ratio_for(request.ratio),
            "seed": request.seed,
        }
        refs = [{"uri": r} if isinstance(r, str) else dict(r) for r in reference_images or ()]
        if refs:
            body["referenceImages"] = refs
        elif model == "gen4_image_turbo":
            raise ValueError("gen4_image_turbo requires reference_images")
        return _Call("POST", self.url("/v1/text_to_image"), json=body, creates_task=True)

    def image_to_video(self, request: ClipRequest, prompt_image_uri: str) -> _Call:
        model = request.model or DEFAULT_VIDEO_MODEL
        body: dict[str, Any] = {
            "model": model,
            "promptImage": prompt_image_uri,
            "ratio": request.ratio,
            "duration": request.duration_s,
            "seed": request.seed,
        }
        if request.prompt.strip():
            body["promptText"] = request.prompt
        elif model == "gen4.5":
            raise ValueError("gen4.5 requires a prompt (promptText)")
        return _Call("POST", self.url("/v1/image_to_video"), json=body, creates_task=True)

    def create_upload(self, filename: str) -> _Call:
        return _Call("POST", self.url("/v1/uploads"), json={"filename": filename, "type": "ephemeral"})

    def upload_target(self, upload_url: str, fields: Mapping[str, str], path: Path, filename: str) -> _Call:
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        return _Call("POST", upload_url, target="upload", form=fields, file=(filename, path, ctype))

    def get_task(self, task_id: str) -> _Call:
        return _Call("GET", self.url(f"/v1/tasks/{_path_id(task_id)}"))

    def cancel_task(self, task_id: str) -> _Call:
        return _Call("DELETE", self.url(f"/v1/tasks/{_path_id(task_id)}"), tolerated=frozenset({404}))

    def organization(self) -> _Call:
        return _Call("GET", self.url("/v1/organization"))

    def download(self, url: str, kind: CacheKind) -> _Call:
        return _Call("GET", url, target="output", ok=frozenset({200}), max_bytes=MAX_OUTPUT_BYTES[kind])

    # -- responses

    def parse_task_id(self, call: _Call, response: httpx.Response) -> str:
        try:
            task_id = response.json()["id"]
        except (ValueError, KeyError, TypeError):
            task_id = None
        if not isinstance(task_id, str) or not task_id:
            # The server said 2xx, so a task may well exist; without its id we cannot resume it.
            raise RunwayAmbiguousSubmit(f"{call.what}: HTTP {response.status_code} without a task id")
        return task_id

    def parse_task(self, response: httpx.Response) -> TaskStatus:
        try:
            return TaskStatus.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise RunwayError(f"unexpected task payload: {self.redact(str(exc))[:500]}") from None

    def parse_upload(self, response: httpx.Response) -> tuple[str, str, dict[str, str]]:
        try:
            data = response.json()
            fields = {str(k): str(v) for k, v in data["fields"].items()}
            return str(data["runwayUri"]), str(data["uploadUrl"]), fields
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RunwayError("unexpected upload payload (want runwayUri, uploadUrl, fields)") from None

    def parse_json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise RunwayError(f"HTTP {response.status_code}: not JSON") from None
        if not isinstance(data, dict):
            raise RunwayError(f"HTTP {response.status_code}: expected a JSON object")
        return data

    def redact(self, text: str) -> str:
        return text.replace(self.api_key, "[redacted]")

    def error_detail(self, response: httpx.Response) -> tuple[str, list[Any]]:
        """The API's ``{"error": …, "issues": […]}`` as one readable line (bodies only, never headers)."""
        issues: list[Any] = []
        try:
            data = response.json()
        except ValueError:
            data = None
        if isinstance(data, dict) and data.get("error"):
            message = str(data["error"])
            raw = data.get("issues")
            if isinstance(raw, list):
                issues = raw
                parts = []
                for issue in raw:
                    if isinstance(issue, dict):
                        loc = ".".join(str(p) for p in issue.get("path") or ()) or "body"
                        parts.append(f"{loc}: {issue.get('message', '')}")
                if parts:
                    message = f"{message} ({'; '.join(parts)})"
        else:
            message = response.text.strip().replace("\n", " ")[:300] or response.reason_phrase
        return self.redact(message)[:1000], issues

    def error_for(self, call: _Call, response: httpx.Response) -> RunwayError:
        message, issues = self.error_detail(response)
        status = response.status_code
        if call.target == "output" and status in (403, 404, 410):
            return RunwayOutputExpired(
                f"{call.what}: HTTP {status}: output URL expired or gone", status_code=status
            )
        if call.target == "upload" and status < 500 and status != 429:
            return RunwayPermanentError(
                f"{call.what}: HTTP {status}: upload refused: {message}", status_code=status
            )
        err = error_for_status(status, message, issues)
        err.args = (f"{call.what}: {err.args[0]}",)
        return err

    # -- retry decisions (each returns the delay before the next attempt, or raises)

    def after_response(self, call: _Call, response: httpx.Response, attempt: int) -> float | None:
        """``None`` when the answer is final and good; a delay to retry; raises for a final error."""
        status = response.status_code
        if status in call.ok or status in call.tolerated:
            return None
        if (
            call.creates_task
            and (status in RETRY_STATUSES or status >= 500)
            and not self.nothing_created(response)
        ):
            message, _ = self.error_detail(response)
            raise RunwayAmbiguousSubmit(
                f"{call.what}: HTTP {status} ({message}) after the request was sent; a gateway can answer this "
                "after Runway created the task, so a task may have been created (and billed)",
                status_code=status,
            )
        if status in RETRY_STATUSES:
            if attempt < self.max_retries:
                delay = self.backoff(attempt, retry_after(response))
                log.warning(
                    "runway %s: HTTP %s, retry %d/%d in %.2fs",
                    call.what,
                    status,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                return delay
            message, _ = self.error_detail(response)
            raise RunwayTransientError(
                f"{call.what}: HTTP {status} after {attempt + 1} attempts: {message}", status_code=status
            )
        raise self.error_for(call, response)

    @staticmethod
    def nothing_created(response: httpx.Response) -> bool:
        """Whether an error answer to a task-creating POST proves that no task was created: 429, or 503 with a
        valid ``Retry-After`` (Runway documents 503 as "shedding load"). The reasoning, for every provider:
        :func:`~video_pipeline.providers.http.proves_nothing_created`."""
        return http.proves_nothing_created(response)

    def after_transport_error(self, call: _Call, exc: httpx.RequestError, attempt: int) -> float:
        """Connection-level failures (and undecodable bodies): retry, or refuse to when a task-creating POST
        may have reached the server."""
        kind = type(exc).__name__
        if isinstance(exc, http.NEVER_RETRY):
            raise RunwayPermanentError(f"{call.what}: {kind}") from None
        if call.creates_task and not isinstance(exc, http.NOTHING_SENT):
            raise RunwayAmbiguousSubmit(
                f"{call.what}: {kind} after the request was sent; a task may have been created"
            ) from None
        if attempt < self.max_retries:
            delay = self.backoff(attempt, None)
            log.warning(
                "runway %s: %s, retry %d/%d in %.2fs", call.what, kind, attempt + 1, self.max_retries, delay
            )
            return delay
        raise RunwayTransientError(f"{call.what}: {kind} after {attempt + 1} attempts") from None

    def backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Full jitter, or a ``Retry-After`` waited out (clamped to ``backoff_cap``): :func:`http.backoff_delay`."""
        return http.backoff_delay(self.rng, attempt, retry_after_s, self.backoff_base, self.backoff_cap)

    # -- output downloads: where a redirect may lead, how much may arrive (rules: http.DownloadGuard)

    def guard(self, call: _Call) -> http.DownloadGuard:
        return http.DownloadGuard(call.url, call.what, call.max_bytes, RunwayOutputRejected, log, "runway")

    def check_redirect(self, call: _Call, current: httpx.URL, response: httpx.Response) -> httpx.URL:
        """The next hop of an output download's redirect, or :class:`RunwayOutputRejected`
        (:meth:`http.DownloadGuard.check_redirect`)."""
        return self.guard(call).check_redirect(current, response)


def _path_id(task_id: str) -> str:
    if not task_id or "/" in task_id or task_id in (".", ".."):
        raise ValueError("invalid task id")
    return task_id


# ------------------------------------------------------------------------------------------------ clients


class _ClientBase:
    _core: _Core

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:  # the key stays out of reprs (and so out of logs and tracebacks)
        return f"{type(self).__name__}(base_url={self._core.base_url!r}, api_key='***')"


class RunwayClient(_ClientBase):
    """Blocking client (the worker submits and downloads with it)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _Core(base_url, api_key, max_retries, backoff_base, backoff_cap)
        quiet_http_loggers()
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def __enter__(self) -> RunwayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call, sink: Path | None = None) -> httpx.Response:
        core = self._core

        def attempt() -> httpx.Response:
            with contextlib.ExitStack() as stack:
                kwargs = core.request_kwargs(call, stack)
                if sink is None:
                    return self._http.request(**kwargs)
                return http.stream_to_file(self._http, kwargs, sink, core.guard(call))

        return http.call_with_retries(
            attempt,
            lambda response, tries: core.after_response(call, response, tries),
            lambda exc, tries: core.after_transport_error(call, exc, tries),
        )

    def text_to_image(
        self, request: ImageRequest, reference_images: Sequence[str | Mapping[str, str]] | None = None
    ) -> str:
        """Submit a gen4_image generation; returns the task id (persist it before polling)."""
        call = self._core.text_to_image(request, reference_images)
        return self._core.parse_task_id(call, self._send(call))

    def image_to_video(self, request: ClipRequest, prompt_image_uri: str) -> str:
        """Submit a clip from an image (https URL, data URI or runway:// URI); returns the task id."""
        call = self._core.image_to_video(request, prompt_image_uri)
        return self._core.parse_task_id(call, self._send(call))

    def create_upload(self, filename: str) -> tuple[str, str, dict[str, str]]:
        """Start an ephemeral upload: ``(runway_uri, upload_url, fields)``."""
        return self._core.parse_upload(self._send(self._core.create_upload(filename)))

    def upload_file(self, path: str | os.PathLike[str], *, filename: str | None = None) -> str:
        """Upload a local file (create the upload, then the multipart POST); returns its ``runway://`` URI."""
        p = Path(path)
        name = filename or p.name
        runway_uri, upload_url, fields = self.create_upload(name)
        self._send(self._core.upload_target(upload_url, fields, p, name))
        return runway_uri

    def prompt_image_uri(self, path: str | os.PathLike[str]) -> str:
        """A URI Runway accepts for a local image: a data URI when small enough, else an upload."""
        return image_data_uri(path) or self.upload_file(path)

    def get_task(self, task_id: str) -> TaskStatus:
        return self._core.parse_task(self._send(self._core.get_task(task_id)))

    def cancel_task(self, task_id: str) -> bool:
        """Cancel (or delete) a task. ``False`` if Runway did not know it (already gone)."""
        return self._send(self._core.cancel_task(task_id)).status_code != 404

    def organization(self) -> dict[str, Any]:
        return self._core.parse_json(self._send(self._core.organization()))

    def download(self, url: str, dest_path: str | os.PathLike[str], *, kind: CacheKind | None = None) -> Path:
        """Stream an output URL into ``dest_path`` (temp file + rename: never a partial file at the
        destination). No API headers are sent: output URLs are presigned. ``kind`` (``images``/``clips``, by
        default from the destination's suffix) picks the size cap; redirects are checked hop by hop (see
        :meth:`_Core.check_redirect`). The content itself is checked by
        :func:`video_pipeline.outputs.verify_output` before anything is cached."""
        dest = Path(dest_path)
        call = self._core.download(url, kind or kind_for(dest))
        part = part_path(dest)
        try:
            self._send(call, sink=part)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest


class AsyncRunwayClient(_ClientBase):
    """Non-blocking client (the triggerer polls with it). Same methods as :class:`RunwayClient`, awaited."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _Core(base_url, api_key, max_retries, backoff_base, backoff_cap)
        quiet_http_loggers()
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def __aenter__(self) -> AsyncRunwayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call, sink: Path | None = None) -> httpx.Response:
        core = self._core

        async def attempt() -> httpx.Response:
            with contextlib.ExitStack() as stack:
                kwargs = core.request_kwargs(call, stack)
                if sink is None:
                    return await self._http.request(**kwargs)
                return await http.astream_to_file(self._http, kwargs, sink, core.guard(call))

        return await http.acall_with_retries(
            attempt,
            lambda response, tries: core.after_response(call, response, tries),
            lambda exc, tries: core.after_transport_error(call, exc, tries),
        )

    async def text_to_image(
        self, request: ImageRequest, reference_images: Sequence[str | Mapping[str, str]] | None = None
    ) -> str:
        call = self._core.text_to_image(request, reference_images)
        return self._core.parse_task_id(call, await self._send(call))

    async def image_to_video(self, request: ClipRequest, prompt_image_uri: str) -> str:
        call = self._core.image_to_video(request, prompt_image_uri)
        return self._core.parse_task_id(call, await self._send(call))

    async def create_upload(self, filename: str) -> tuple[str, str, dict[str, str]]:
        return self._core.parse_upload(await self._send(self._core.create_upload(filename)))

    async def upload_file(self, path: str | os.PathLike[str], *, filename: str | None = None) -> str:
        p = Path(path)
        name = filename or p.name
        runway_uri, upload_url, fields = await self.create_upload(name)
        await self._send(self._core.upload_target(upload_url, fields, p, name))
        return runway_uri

    async def prompt_image_uri(self, path: str | os.PathLike[str]) -> str:
        return image_data_uri(path) or await self.upload_file(path)

    async def get_task(self, task_id: str) -> TaskStatus:
        return self._core.parse_task(await self._send(self._core.get_task(task_id)))

    async def cancel_task(self, task_id: str) -> bool:
        return (await self._send(self._core.cancel_task(task_id))).status_code != 404

    async def organization(self) -> dict[str, Any]:
        return self._core.parse_json(await self._send(self._core.organization()))

    async def download(
        self, url: str, dest_path: str | os.PathLike[str], *, kind: CacheKind | None = None
    ) -> Path:
        dest = Path(dest_path)
        call = self._core.download(url, kind or kind_for(dest))
        part = part_path(dest)
        try:
            await self._send(call, sink=part)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest


# ------------------------------------------------------------------------------------------------- the port

_STATES: dict[str, TaskState_] = {
    "PENDING": TaskState_.QUEUED,
    "THROTTLED": TaskState_.QUEUED,
    "RUNNING": TaskState_.RUNNING,
    "SUCCEEDED": TaskState_.SUCCEEDED,
    "FAILED": TaskState_.FAILED,
    "CANCELLED": TaskState_.CANCELLED,
}


def remote_status(status: TaskStatus) -> RemoteStatus:
    """Runway's task status in the port's terms (without the output URLs)."""
    error = status.error()
    return RemoteStatus(
        provider=NAME,
        task_id=status.id,
        state=_STATES[status.status],
        detail=status.status,
        progress=status.progress,
        error=status.failure,
        code=status.failure_code,
        action=error.action if error is not None and status.status == "FAILED" else None,
    )


def _unavailable_if_nothing_created(exc: RunwayTransientError) -> RunwayTransientError:
    """A creating POST that kept answering 429/503 through every retry created nothing, and says Runway cannot
    take work now: the stage's fallback (if any) is used."""
    exc.action = Action.UNAVAILABLE
    return exc


class RunwayRemote:
    """:class:`RunwayClient` as the port's :class:`~video_pipeline.providers.port.RemoteClient`."""

    def __init__(self, client: RunwayClient) -> None:
        self._client = client

    def __enter__(self) -> RunwayRemote:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RunwayRemote({self._client!r})"

    def submit_image(self, request: ImageRequest) -> str:
        try:
            return self._client.text_to_image(request)
        except RunwayTransientError as exc:
            raise _unavailable_if_nothing_created(exc) from None

    def submit_clip(self, request: ClipRequest, image: SourceImage) -> str:
        uri = image.url or self._client.prompt_image_uri(image.path)
        try:
            return self._client.image_to_video(request, uri)
        except RunwayTransientError as exc:
            raise _unavailable_if_nothing_created(exc) from None

    def status(self, task_id: str) -> RemoteStatus:
        return remote_status(self._client.get_task(task_id))

    def outputs(self, task_id: str) -> list[str]:
        return list(self._client.get_task(task_id).output)

    def download(self, url: str, dest: Path, *, kind: CacheKind) -> Path:
        return self._client.download(url, dest, kind=kind)

    def cancel(self, task_id: str) -> bool:
        return self._client.cancel_task(task_id)

    def account_limits(self) -> dict[str, int]:
        """Concurrent generations the account's tier allows, per model (``GET /v1/organization``)."""
        organization = self._client.organization()
        limits: dict[str, int] = {}
        for model, spec in ((organization.get("tier") or {}).get("models") or {}).items():
            with contextlib.suppress(KeyError, TypeError, ValueError):
                limits[str(model)] = int(spec["maxConcurrentGenerations"])
        return limits


class AsyncRunwayRemote:
    """:class:`AsyncRunwayClient` as the port's :class:`~video_pipeline.providers.port.AsyncRemoteClient`."""

    def __init__(self, client: AsyncRunwayClient) -> None:
        self._client = client

    async def __aenter__(self) -> AsyncRunwayRemote:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def status(self, task_id: str) -> RemoteStatus:
        return remote_status(await self._client.get_task(task_id))

    async def cancel(self, task_id: str) -> bool:
        return await self._client.cancel_task(task_id)


#: Every job ratio (Runway's image_to_video ratios are the job ratios).
_DURATIONS = tuple(range(2, 11))


@dataclass(frozen=True)
class RunwayProvider:
    """Runway in the registry. Prices are :data:`PRICING`; concurrency defaults to tier 1's (1 task per model),
    and the account's own limits are read when a pool is sized (:meth:`RunwayRemote.account_limits`)."""

    name: str = NAME
    conn_id: str = "runway_default"
    default_base_url: str = DEFAULT_BASE_URL
    models: Mapping[str, ModelSpec] = field(
        default_factory=lambda: {
            "gen4_image": ModelSpec(
                "gen4_image", "images", notes="5 credits at 720p, 8 at 1080p (ratio mapped: image_ratio_for)"
            ),
            "gen4_turbo": ModelSpec("gen4_turbo", "clips", durations=_DURATIONS, notes="5 credits/s"),
            "gen4.5": ModelSpec("gen4.5", "clips", durations=_DURATIONS, notes="12 credits/s"),
        }
    )
    default_models: Mapping[Stage, str] = field(
        default_factory=lambda: {"images": DEFAULT_IMAGE_MODEL, "clips": DEFAULT_VIDEO_MODEL}
    )
    concurrency: Mapping[Stage, int] = field(default_factory=lambda: {"images": 1, "clips": 1})
    #: Runway asks clients to poll a task no more often than every 5 s.
    min_poll_s: float = 5.0

    def estimate(self, request: ImageRequest | ClipRequest) -> float:
        if isinstance(request, ClipRequest):
            return estimate_clip_credits(request)
        return estimate_image_credits(request)

    def client(self, endpoint: Endpoint) -> RunwayRemote:
        return RunwayRemote(
            RunwayClient(endpoint.base_url or DEFAULT_BASE_URL, endpoint.api_key, **_tuning(endpoint))
        )

    def async_client(self, endpoint: Endpoint) -> AsyncRunwayRemote:
        return AsyncRunwayRemote(
            AsyncRunwayClient(endpoint.base_url or DEFAULT_BASE_URL, endpoint.api_key, **_tuning(endpoint))
        )


def _tuning(endpoint: Endpoint) -> dict[str, Any]:
    """Client settings a connection's extra may set (``timeout``, ``max_retries``, ``backoff_base``,
    ``backoff_cap``): tests and slow networks tune them; unknown keys are ignored."""
    kinds = {"timeout": float, "max_retries": int, "backoff_base": float, "backoff_cap": float}
    return {k: kind(endpoint.extra[k]) for k, kind in kinds.items() if k in endpoint.extra}


PROVIDER = RunwayProvider()
