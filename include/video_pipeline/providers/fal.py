"""fal.ai behind the provider port: FLUX images, and clips from Kling 2.1, MiniMax Hailuo-02 and Luma Ray 2, over
fal's queue API (sync and async clients, httpx). The facts this module relies on, with their sources and what
could not be verified: ``docs/notes/fal-queue-api.md``.

The worker submits, fetches outputs and cancels with :class:`FalClient`; the triggerer polls with
:class:`AsyncFalClient`. Both are thin loops around one shared core (:class:`_Core`) that builds every request
and interprets every answer and transport failure, so the two cannot drift apart. The registry holds
:data:`PROVIDER`.

What the clients promise (the same rules as the Runway client; the mechanics live in
:mod:`video_pipeline.providers.http`):

* Queue and storage calls send ``Authorization: Key <key>``; nothing else does: not output downloads, not the
  presigned upload. The key never appears in exception messages, reprs or logs.
* A submit (a POST that creates a billed request) is sent again only when the answer proves nothing was created —
  429, 503 with a valid ``Retry-After``, or a connection that failed before the request was sent. fal has no
  idempotency key, so any other failure after sending — 500, 502, 504, a bare 503, a read timeout, a reset, a
  2xx without a request id — is ``Action.AMBIGUOUS``: never resubmitted blindly. When every retry of a
  "nothing created" answer is used up the error is ``Action.UNAVAILABLE`` (the stage's fallback takes over).
* Reads and cancels are retried on 429/5xx and connection failures; used up, they are ``Action.RETRY`` (the
  request is still recorded and resumable).
* A locked account (``403 User is locked``: exhausted balance, or an admin lock) is ``Action.STOP_JOB``; a
  wrong key (401), a forbidden model (403) and an invalid request (4xx) are ``Action.FAIL``.
* A request that completed with an error is classified by fal's error type (:func:`classify_failure`).
* Output downloads: no key, redirects checked hop by hop, a size cap per kind, never a partial file; an output
  URL that answers 403/404/410 is gone: ``Action.RESUBMIT``.
"""

from __future__ import annotations

import logging
import math
import mimetypes
import os
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import httpx

from video_pipeline.layout import CacheKind
from video_pipeline.models import RATIOS
from video_pipeline.outputs import MAX_OUTPUT_BYTES, OutputRejected
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.http import (
    NEVER_RETRY,
    NOTHING_SENT,
    DownloadGuard,
    acall_with_retries,
    acapped_request,
    backoff_delay,
    call_with_retries,
    capped_request,
    check_api_key,
    image_data_uri,
    part_path,
    proves_nothing_created,
    quiet_http_loggers,
    redact_url,
    retry_after,
    stream_to_file,
)
from video_pipeline.providers.port import (
    Action,
    Endpoint,
    ModelSpec,
    ProviderError,
    RemoteStatus,
    SourceImage,
    Stage,
    TaskState,
)

log = logging.getLogger(__name__)

NAME = "fal"
CONN_ID = "fal_default"
DEFAULT_BASE_URL = "https://queue.fal.run"
#: fal's REST API (storage uploads start there). A connection with its own base URL (a fake, a proxy) is taken to
#: serve the storage routes too, unless ``Endpoint.extra["rest_url"]`` says otherwise.
DEFAULT_REST_URL = "https://rest.alpha.fal.ai"
#: fal documents no size limit for data URIs (some models accept them; a URL works with every model). The
#: pipeline's images are a few MB at most; above this the image goes through fal's storage instead.
DATA_URI_MAX_BYTES = 5_000_000
#: Answers that mean "try again later" for calls that create nothing billed. Submits are stricter:
#: :func:`~video_pipeline.providers.http.proves_nothing_created`.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Bytes of an API answer kept at most (fal's answers are a few KB; more is cut and then does not parse).
API_BODY_MAX = 1 << 20
#: First path segments that put an app one level deeper (``workflows/<owner>/<app>``), as fal's client parses them.
APP_NAMESPACES = ("workflows", "comfy")
_SUCCESS = frozenset(range(200, 300))

# ------------------------------------------------------------------------------------------------ models

FLUX_DEV = "fal-ai/flux/dev"
FLUX_SCHNELL = "fal-ai/flux/schnell"
KLING_21_STANDARD = "fal-ai/kling-video/v2.1/standard/image-to-video"
HAILUO_02_STANDARD = "fal-ai/minimax/hailuo-02/standard/image-to-video"
RAY_2 = "fal-ai/luma-dream-machine/ray-2/image-to-video"

#: Luma Ray 2's ``aspect_ratio`` for each job ratio it can make: 16:9, 9:16, 4:3, 3:4, 21:9 (21:9 ≈ 2.33 for the
#: job's 1584:672 ≈ 2.36). It has no square, so 960:960 is not offered.
RAY_2_ASPECTS: dict[str, str] = {
    "1280:720": "16:9",
    "720:1280": "9:16",
    "1104:832": "4:3",
    "832:1104": "3:4",
    "1584:672": "21:9",
}
#: Ray 2 renders 540p by default; the job frames are 720p-class, so clips are asked for at 720p (twice the price).
RAY_2_RESOLUTION = "720p"

#: The one pricing table, in US$ as fal lists them (1 credit = US$0.01, so credits = US$ × 100).
#: Images: per megapixel of output, rounded up to whole megapixels (fal bills "by rounding up to the nearest
#: megapixel"); a megapixel is taken as 10⁶ pixels — the reading that never under-reserves — so 1280×720 and
#: 1104×832 are 1 MP and 1584×672 is 2 MP.
IMAGE_USD_PER_MEGAPIXEL: dict[str, float] = {FLUX_DEV: 0.025, FLUX_SCHNELL: 0.003}
#: Clips: a price per clip for each duration the model makes (fal's per-second rules, worked out).
CLIP_USD: dict[str, dict[int, float]] = {
    KLING_21_STANDARD: {5: 0.28, 10: 0.56},  # $0.28 for 5 s, then $0.056 per additional second
    HAILUO_02_STANDARD: {6: 0.27, 10: 0.45},  # $0.045 per second at its default 768P
    RAY_2: {5: 1.00, 9: 2.00},  # $0.50 per 5 s at 540p; 720p costs 2x, 9 s costs 2x
}

MODELS: Mapping[str, ModelSpec] = MappingProxyType(
    {
        FLUX_DEV: ModelSpec(
            FLUX_DEV,
            "images",
            notes="FLUX.1 [dev]: $0.025 per megapixel (rounded up): 2.5 credits an image, 5 at 1584:672",
        ),
        FLUX_SCHNELL: ModelSpec(
            FLUX_SCHNELL,
            "images",
            notes="FLUX.1 [schnell]: $0.003 per megapixel (rounded up): 0.3 credits an image, 0.6 at 1584:672",
        ),
        KLING_21_STANDARD: ModelSpec(
            KLING_21_STANDARD,
            "clips",
            durations=(5, 10),
            notes="Kling 2.1 standard: $0.28 per 5 s clip, $0.56 per 10 s (28 / 56 credits); no seed",
        ),
        HAILUO_02_STANDARD: ModelSpec(
            HAILUO_02_STANDARD,
            "clips",
            durations=(6, 10),
            notes="MiniMax Hailuo-02 standard, 768p: $0.045/s: 27 credits for 6 s, 45 for 10 s; no seed",
        ),
        RAY_2: ModelSpec(
            RAY_2,
            "clips",
            ratios=frozenset(RAY_2_ASPECTS),
            durations=(5, 9),
            notes="Luma Ray 2 at 720p: $1.00 per 5 s clip, $2.00 per 9 s (100 / 200 credits); no square, no seed",
        ),
    }
)


def megapixels(width: int, height: int) -> int:
    """Whole megapixels fal bills for an image of this size (rounded up; 1 MP = 10⁶ pixels)."""
    return max(1, math.ceil(width * height / 1_000_000))


def _credits(usd: float) -> float:
    return round(usd * 100, 6)  # 0.056 × 100 is not exactly 5.6 in binary; six places is far below a cent


def estimate_credits(request: ImageRequest | ClipRequest) -> float:
    """Credits one request costs, from :data:`IMAGE_USD_PER_MEGAPIXEL` / :data:`CLIP_USD`; ``ValueError`` for a
    model without a price (a budget must never trust a guess) or a duration the model does not make."""
    if isinstance(request, ClipRequest):  # a ClipRequest is also an ImageRequest: ask it first
        clip_prices = CLIP_USD.get(request.model)
        if clip_prices is None:
            raise ValueError(f"no clip price known for fal model {request.model!r}")
        if request.duration_s not in clip_prices:
            raise ValueError(
                f"{request.model} makes clips of {', '.join(map(str, sorted(clip_prices)))} s, not {request.duration_s} s"
            )
        return _credits(clip_prices[request.duration_s])
    per_megapixel = IMAGE_USD_PER_MEGAPIXEL.get(request.model)
    if per_megapixel is None:
        raise ValueError(f"no image price known for fal model {request.model!r}")
    return _credits(per_megapixel * megapixels(*RATIOS[request.ratio]))


# --------------------------------------------------------------------------------------------- task ids

_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


def queue_app(model: str) -> str:
    """The app a model belongs to (``owner/app``, or ``namespace/owner/app``): status, result and cancel URLs
    use only that — ``fal-ai/flux/dev`` is submitted to ``/fal-ai/flux/dev`` and polled at ``/fal-ai/flux/…``."""
    parts = model.split("/")
    depth = 3 if parts[0] in APP_NAMESPACES else 2
    if len(parts) < depth or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"not a fal model id: {model!r}")
    return "/".join(parts[:depth])


def task_id_for(model: str, request_id: str) -> str:
    """The task id the pipeline records: the model's app and fal's request id, ``fal-ai/flux/<request id>``
    (everything needed to poll the request again, in one string)."""
    if not _REQUEST_ID.fullmatch(request_id):
        raise ValueError("not a fal request id")
    return f"{queue_app(model)}/{request_id}"


def split_task_id(task_id: str) -> tuple[str, str]:
    """``(app, request id)`` of a task id made by :func:`task_id_for` (``ValueError`` for anything else)."""
    app, _, request_id = task_id.rpartition("/")
    if not app or not _REQUEST_ID.fullmatch(request_id):
        raise ValueError("invalid fal task id")
    try:
        valid = queue_app(app) == app
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("invalid fal task id")
    return app, request_id


# ------------------------------------------------------------------------------------------------ errors


def _error(message: str, action: Action, **details: Any) -> ProviderError:
    return ProviderError(message, action=action, provider=NAME, **details)


class FalOutputRejected(ProviderError, OutputRejected):
    """An output download was refused: a redirect out of bounds (https → http, or to an internal address), more
    bytes than the cap for its kind, or too many redirects. Nothing is kept. Downloading the same URL again would
    be refused the same way, and an output that points inward or overflows is not one to pay for again
    unexamined: ``Action.FAIL``."""

    action = Action.FAIL

    def __init__(self, message: str) -> None:
        super().__init__(message, provider=NAME, code="output_rejected")


#: Request error types (``error_type`` of a completed request, or of an error answer) that are fal's own trouble:
#: timeouts, runners that could not be scheduled, crashed or answered incompletely. fal already retried them up to
#: ten times, and it does not bill a request that failed with a server error: submitting anew is the remedy.
REQUEST_ERRORS_RESUBMIT = frozenset(
    {
        "request_timeout",
        "startup_timeout",
        "runner_scheduling_failure",
        "runner_connection_timeout",
        "runner_disconnected",
        "runner_connection_refused",
        "runner_connection_error",
        "runner_incomplete_response",
        "runner_server_error",
        "internal_error",
    }
)
#: Model error types (``detail[].type``) that are the model service's passing trouble: submit anew.
MODEL_ERRORS_RESUBMIT = frozenset(
    {
        "internal_server_error",
        "generation_timeout",
        "downstream_service_error",
        "downstream_service_unavailable",
    }
)
#: Model error types after which another seed may well succeed.
MODEL_ERRORS_RESEED = frozenset({"no_media_generated"})
#: A cancelled request completes with this error type.
CANCELLED_ERRORS = frozenset({"client_cancelled"})
#: Error types of the platform (not of a model): a status that names one of these says all there is to know.
#: A model's error is read from the result instead, which says where it is (``loc``) and whether it is retryable.
REQUEST_ERROR_TYPES = REQUEST_ERRORS_RESUBMIT | CANCELLED_ERRORS | {"client_disconnected", "bad_request"}
#: Request fields a model's input schema names; a content-policy error located at one of them flags our input.
_INPUT_FIELDS = frozenset({"prompt", "negative_prompt", "image_url", "image_urls", "end_image_url"})


def classify_failure(error_type: str | None, *, loc: Sequence[Any] = (), retryable: bool = False) -> Action:
    """What to do about a request that completed with an error, from fal's error type.

    * fal's own trouble (:data:`REQUEST_ERRORS_RESUBMIT`, :data:`MODEL_ERRORS_RESUBMIT`, a missing type) →
      ``RESUBMIT``: fal does not bill server errors, and a new request is the only way to get the output.
    * ``content_policy_violation`` located at an input field (``loc: ["body", "prompt"]``, ``image_url``…) →
      ``FAIL``: the same input is refused again, paid or not. Located anywhere else (``["body"]``: the *output*
      was flagged) → ``RESEED``: the prompt passed, this rendering did not, another seed may pass. (A FLUX image
      flagged by its safety checker comes back black with ``has_nsfw_concepts: [true]``; that is a ``RESEED``
      too, see :func:`output_urls`.)
    * ``no_media_generated`` → ``RESEED``.
    * Everything else — validation types (``image_too_large``, ``less_than``, pydantic's ``missing``…),
      ``bad_request``, and types this table does not know — → ``FAIL``: a person looks once rather than the
      pipeline paying repeatedly for the same refusal; unless fal marked the error retryable
      (``X-Fal-Retryable: true``), then ``RESUBMIT``.
    """
    if not error_type:
        return Action.RESUBMIT
    kind = error_type.lower()
    if kind in REQUEST_ERRORS_RESUBMIT or kind in MODEL_ERRORS_RESUBMIT:
        return Action.RESUBMIT
    if kind == "content_policy_violation":
        located = [str(part) for part in loc if isinstance(part, str | int)]
        flagged_input = len(located) >= 2 and located[0] == "body" and located[1] in _INPUT_FIELDS
        return Action.FAIL if flagged_input else Action.RESEED
    if kind in MODEL_ERRORS_RESEED:
        return Action.RESEED
    return Action.RESUBMIT if retryable else Action.FAIL


# ------------------------------------------------------------------------------------- request bodies


def image_size(ratio: str) -> dict[str, int]:
    """FLUX's ``image_size`` for a job ratio: the job's own pixel size (every job size is a multiple of 16)."""
    width, height = RATIOS[ratio]  # a job ratio; anything else is a KeyError
    return {"width": width, "height": height}


def _model(name: str, stage: Stage) -> ModelSpec:
    spec = MODELS.get(name)
    if spec is None or spec.stage != stage:
        offered = ", ".join(n for n, s in MODELS.items() if s.stage == stage)
        raise _error(f"fal has no {stage} model {name!r} (it offers {offered})", Action.FAIL)
    return spec


def image_body(request: ImageRequest) -> dict[str, Any]:
    """The submit body for a text-to-image request (the model is in the URL)."""
    _model(request.model, "images")
    return {
        "prompt": request.prompt,
        "image_size": image_size(request.ratio),
        "seed": request.seed,
        "num_images": 1,
        "output_format": "png",  # lossless: the approved image is the first frame of its clip
        "enable_safety_checker": True,
    }


def clip_body(request: ClipRequest, image_url: str) -> dict[str, Any]:
    """The submit body for an image-to-video request. None of these models takes a seed: the seed stays in the
    pipeline's cache key, and every submission is a new draw on fal's side."""
    spec = _model(request.model, "clips")
    if request.duration_s not in spec.durations:
        raise _error(
            f"{spec.name} makes clips of {', '.join(map(str, spec.durations))} s, not {request.duration_s} s",
            Action.FAIL,
        )
    try:
        spec.check_ratio(request.ratio)
    except ValueError as exc:
        raise _error(str(exc), Action.FAIL) from None
    if not request.prompt.strip():
        raise _error(f"{spec.name} needs a prompt", Action.FAIL)
    body: dict[str, Any] = {"prompt": request.prompt, "image_url": image_url}
    if spec.name == RAY_2:
        body |= {
            "aspect_ratio": RAY_2_ASPECTS[request.ratio],
            "duration": f"{request.duration_s}s",
            "resolution": RAY_2_RESOLUTION,
        }
    else:  # Kling and Hailuo follow the input image's aspect ratio and take the duration as a string
        body["duration"] = str(request.duration_s)
    return body


# ----------------------------------------------------------------------------------- answers → outcomes


def output_urls(data: Any) -> list[str]:
    """The output URLs in a result: ``images[].url`` (FLUX), ``image.url``, ``video.url`` (the video models).

    A FLUX image its safety checker flagged is delivered black with ``has_nsfw_concepts: [true]``: that is no
    output, and ``Action.RESEED`` (the prompt passed; this rendering did not).
    """
    if not isinstance(data, dict):
        raise _error("fal result is not a JSON object", Action.RESUBMIT, code="bad_result")
    flags = data.get("has_nsfw_concepts")
    if isinstance(flags, list) and any(flag is True for flag in flags):
        raise _error(
            "fal's safety checker flagged the output (it was replaced by a black image)",
            Action.RESEED,
            code="nsfw_output",
        )
    candidates: list[Any] = []
    images = data.get("images")
    if isinstance(images, list):
        candidates += images
    candidates += [data.get("image"), data.get("video")]
    urls = []
    for item in candidates:
        url = item.get("url") if isinstance(item, dict) else None
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            urls.append(url)
    if not urls:
        raise _error("fal result holds no output URL", Action.RESUBMIT, code="no_output")
    return urls


_URL = re.compile(r"(?:https?|data):[^\s\"'<>]+", re.IGNORECASE)


@dataclass(frozen=True)
class _Failure:
    """An error body of fal's, read: what to say, fal's type, where (``loc``) and whether it is marked retryable."""

    message: str
    error_type: str | None
    loc: tuple[Any, ...] = ()
    retryable: bool = False


# ------------------------------------------------------------------------------------------- shared core


@dataclass(frozen=True)
class _Call:
    """One logical request, independent of sync/async.

    ``exhausted`` is the action once the retry budget is used up: ``RETRY`` for reads (the request is recorded
    and resumable), ``UNAVAILABLE`` for submits and uploads (nothing was created; use the fallback).
    """

    method: str
    url: str
    target: Literal["api", "output", "upload"] = "api"
    json: Mapping[str, Any] | None = None
    upload: tuple[Path, str] | None = None  # (file, content type): the body of a presigned PUT
    creates_task: bool = False
    ok: frozenset[int] = _SUCCESS
    tolerated: frozenset[int] = frozenset()
    #: A result: an error answer carrying fal's error body *is* the request's outcome, not a passing failure.
    outcome: bool = False
    exhausted: Action = Action.RETRY
    max_bytes: int | None = None

    @property
    def what(self) -> str:
        path = httpx.URL(self.url).path if self.target == "api" else f"<{self.target} url>"
        return f"{self.method} {path}"


@dataclass
class _Core:
    """Request building, answer parsing and the retry decisions shared by the sync and async clients."""

    base_url: str
    api_key: str = field(repr=False)
    rest_url: str
    max_retries: int
    backoff_base: float
    backoff_cap: float
    data_uri_max_bytes: int = DATA_URI_MAX_BYTES
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        check_api_key(self.api_key)
        self.base_url = self.base_url.rstrip("/")
        self.rest_url = self.rest_url.rstrip("/")

    # -- requests

    def headers(self, call: _Call) -> dict[str, str]:
        if call.target != "api":
            return {}  # output URLs and the presigned upload: the key must not travel there
        return {"Authorization": f"Key {self.api_key}"}

    def request_kwargs(self, call: _Call) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"method": call.method, "url": call.url, "headers": self.headers(call)}
        if call.json is not None:
            kwargs["json"] = call.json
        if call.upload is not None:
            path, content_type = call.upload
            kwargs["content"] = path.read_bytes()  # images of a few MB; read again for each attempt
            kwargs["headers"] = {**kwargs["headers"], "Content-Type": content_type}
        return kwargs

    def submit_image(self, request: ImageRequest) -> _Call:
        return self.submit(request.model, image_body(request))

    def submit_clip(self, request: ClipRequest, image_url: str) -> _Call:
        return self.submit(request.model, clip_body(request, image_url))

    def submit(self, model: str, body: Mapping[str, Any]) -> _Call:
        queue_app(model)  # a malformed id never reaches the network
        return _Call(
            "POST", f"{self.base_url}/{model}", json=body, creates_task=True, exhausted=Action.UNAVAILABLE
        )

    def request_url(self, task_id: str) -> str:
        app, request_id = split_task_id(task_id)
        return f"{self.base_url}/{app}/requests/{request_id}"

    def status_call(self, task_id: str) -> _Call:
        return _Call("GET", f"{self.request_url(task_id)}/status")

    def result_call(self, task_id: str) -> _Call:
        return _Call("GET", self.request_url(task_id), outcome=True)

    def cancel_call(self, task_id: str) -> _Call:
        return _Call("PUT", f"{self.request_url(task_id)}/cancel", tolerated=frozenset({400, 404}))

    def image_data_uri(self, image: SourceImage) -> str | None:
        return image_data_uri(image.path, max_bytes=self.data_uri_max_bytes)

    def upload_initiate(self, path: Path) -> _Call:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _Call(
            "POST",
            f"{self.rest_url}/storage/upload/initiate?storage_type=gcs",
            json={"file_name": path.name, "content_type": content_type},
            exhausted=Action.UNAVAILABLE,
        )

    def upload_put(self, upload_url: str, path: Path) -> _Call:
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return _Call(
            "PUT", upload_url, target="upload", upload=(path, content_type), exhausted=Action.UNAVAILABLE
        )

    def download(self, url: str, kind: CacheKind) -> _Call:
        return _Call("GET", url, target="output", ok=frozenset({200}), max_bytes=MAX_OUTPUT_BYTES[kind])

    def guard(self, call: _Call) -> DownloadGuard:
        return DownloadGuard(call.url, call.what, call.max_bytes, FalOutputRejected, log, NAME)

    # -- answers

    def scrub(self, text: str) -> str:
        """Text from an answer made fit for a message: no key, URLs without their query, no data URIs."""

        def shorten(match: re.Match[str]) -> str:
            found = match.group(0)
            return "[data uri]" if found[:5].lower() == "data:" else redact_url(found)

        return _URL.sub(shorten, text.replace(self.api_key, "[redacted]"))

    def json_of(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
            return None

    def failure_of(self, response: httpx.Response) -> _Failure | None:
        """fal's error body, when the answer carries one: ``{"detail": [{loc, msg, type}, …]}`` from a model, or
        ``{"detail": "…", "error_type": "…"}`` from the platform (the type also in ``X-Fal-Error-Type``)."""
        data = self.json_of(response)
        if not isinstance(data, dict) or "detail" not in data:
            return None
        retryable = response.headers.get("x-fal-retryable", "").strip().lower() == "true"
        detail = data["detail"]
        if isinstance(detail, list):
            first = next((item for item in detail if isinstance(item, dict)), None)
            parts = []
            for item in detail[:3]:
                if isinstance(item, dict):
                    located = item.get("loc")
                    steps = located if isinstance(located, list) else []
                    where = ".".join(str(p) for p in steps if isinstance(p, str | int))
                    parts.append(f"{where or 'body'}: {item.get('msg', '')} ({item.get('type', '?')})")
            kind = first.get("type") if first is not None else None
            loc = first.get("loc") if first is not None else None
            return _Failure(
                self.scrub("; ".join(parts))[:600] or "model error",
                str(kind) if isinstance(kind, str) and kind else None,
                tuple(loc) if isinstance(loc, list) else (),
                retryable,
            )
        kind = data.get("error_type") or response.headers.get("x-fal-error-type")
        return _Failure(
            self.scrub(str(detail))[:600] or "request error",
            str(kind) if isinstance(kind, str) and kind else None,
            (),
            retryable,
        )

    def message_of(self, response: httpx.Response) -> str:
        failure = self.failure_of(response)
        if failure is not None:
            return failure.message
        return self.scrub(response.text.strip().replace("\n", " "))[:300] or response.reason_phrase

    def parse_request_id(self, call: _Call, response: httpx.Response, model: str) -> str:
        data = self.json_of(response)
        request_id = data.get("request_id") if isinstance(data, dict) else None
        if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
            # fal said 2xx, so a request may well exist; without its id it cannot be polled, cancelled or paid for once
            raise _error(
                f"{call.what}: HTTP {response.status_code} without a request id; a request may have been created",
                Action.AMBIGUOUS,
                status_code=response.status_code,
            )
        return task_id_for(model, request_id)

    def parse_status(self, task_id: str, response: httpx.Response) -> RemoteStatus | None:
        """The state of a request from its status answer; ``None`` when it completed without a platform error:
        then its result decides between an output and a model's error (:meth:`status_from_result`)."""
        data = self.json_of(response)
        state = data.get("status") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(state, str):
            raise _error(
                f"unexpected fal status answer (HTTP {response.status_code})", Action.RETRY, task_id=task_id
            )
        if state == "IN_QUEUE":
            position = data.get("queue_position")
            valid = isinstance(position, int) and not isinstance(position, bool) and 0 <= position < 2**31
            return RemoteStatus(
                provider=NAME,
                task_id=task_id,
                state=TaskState.QUEUED,
                detail=state,
                queue_position=position if valid else None,
            )
        if state == "IN_PROGRESS":
            return RemoteStatus(provider=NAME, task_id=task_id, state=TaskState.RUNNING, detail=state)
        if state != "COMPLETED":
            raise _error(
                f"unknown fal request status {self.scrub(state)[:40]!r}", Action.RETRY, task_id=task_id
            )
        error, error_type = data.get("error"), data.get("error_type")
        kind = error_type if isinstance(error_type, str) and error_type else None
        if kind not in REQUEST_ERROR_TYPES:
            return None
        if kind in CANCELLED_ERRORS:
            return RemoteStatus(
                provider=NAME, task_id=task_id, state=TaskState.CANCELLED, detail=state, code=kind
            )
        return RemoteStatus(
            provider=NAME,
            task_id=task_id,
            state=TaskState.FAILED,
            detail=state,
            error=self.scrub(str(error))[:600] if error is not None else None,
            code=kind,
            action=classify_failure(kind),  # a platform error type: no location to weigh
        )

    def outputs_from_result(self, task_id: str, response: httpx.Response) -> list[str]:
        """The output URLs of a completed request, or the classified error it completed with."""
        status = response.status_code
        if status in _SUCCESS:
            data = self.json_of(response)
            try:
                return output_urls(data)
            except ProviderError as exc:
                exc.task_id = task_id
                raise
        if status == 404:
            raise _error(
                f"fal no longer has the result of request {task_id} (results are kept for an hour, six minutes when "
                "10 KB or larger)",
                Action.RESUBMIT,
                status_code=status,
                code="result_gone",
                task_id=task_id,
            )
        failure = self.failure_of(response)
        if failure is None:  # not fal's error body: a gateway's; the result itself is unknown
            raise _error(
                f"fal result of request {task_id}: HTTP {status}: {self.message_of(response)}",
                Action.RETRY if status >= 500 or status == 429 else Action.FAIL,
                status_code=status,
                task_id=task_id,
            )
        if failure.error_type is None:  # an error without a type: the status code is all there is to go by
            action = Action.RESUBMIT if status >= 500 or failure.retryable else Action.FAIL
        else:
            action = classify_failure(failure.error_type, loc=failure.loc, retryable=failure.retryable)
        raise _error(
            f"fal request {task_id} failed ({failure.error_type or f'HTTP {status}'}): {failure.message}",
            action,
            status_code=status,
            code=failure.error_type,
            task_id=task_id,
        )

    def status_from_result(self, task_id: str, response: httpx.Response) -> RemoteStatus:
        try:
            self.outputs_from_result(task_id, response)
        except ProviderError as exc:
            if exc.action == Action.RETRY:
                raise
            return RemoteStatus(
                provider=NAME,
                task_id=task_id,
                state=TaskState.FAILED,
                detail="COMPLETED",
                error=str(exc),
                code=exc.code,
                action=exc.action,
            )
        return RemoteStatus(provider=NAME, task_id=task_id, state=TaskState.SUCCEEDED, detail="COMPLETED")

    def parse_cancel(self, response: httpx.Response) -> bool:
        """``True`` when fal took the cancellation; ``False`` when it no longer knows the request or it already
        completed (nothing left to stop: a completed request has been billed already)."""
        data = self.json_of(response)
        said = data.get("status") if isinstance(data, dict) else None
        if response.status_code == 404 or said in ("NOT_FOUND", "ALREADY_COMPLETED"):
            return False
        if response.status_code == 400:
            raise _error(
                f"fal refused the cancellation: {self.message_of(response)}", Action.FAIL, status_code=400
            )
        return True

    def parse_upload(self, response: httpx.Response) -> tuple[str, str]:
        data = self.json_of(response)
        upload_url = data.get("upload_url") if isinstance(data, dict) else None
        file_url = data.get("file_url") if isinstance(data, dict) else None
        if not (isinstance(upload_url, str) and isinstance(file_url, str)):
            raise _error("unexpected fal storage answer (want upload_url, file_url)", Action.UNAVAILABLE)
        for url in (upload_url, file_url):
            if not url.startswith(("https://", "http://")):
                raise _error("fal storage answered with a non-http URL", Action.UNAVAILABLE)
        return upload_url, file_url

    def error_for(self, call: _Call, response: httpx.Response) -> ProviderError:
        """The error for a final non-success answer (after retries, for the retryable ones)."""
        status = response.status_code
        message = self.message_of(response)
        text = f"{call.what}: HTTP {status}: {message}"
        if call.target == "output" and status in (403, 404, 410):
            return _error(
                f"{call.what}: HTTP {status}: output URL expired or gone", Action.RESUBMIT, status_code=status
            )
        if call.target == "upload":
            return _error(f"{call.what}: HTTP {status}: upload refused", Action.FAIL, status_code=status)
        if status == 401:
            return _error(text, Action.FAIL, status_code=status, code="unauthorized")
        if status in (402, 403) and (status == 402 or "locked" in message.lower()):
            # "User is locked. Reason: Exhausted balance" (or an admin lock): nothing runs until a person acts
            return _error(text, Action.STOP_JOB, status_code=status, code="user_locked")
        if status == 404 and call.method != "POST":
            return _error(
                f"{call.what}: HTTP 404: fal does not know this request (or no longer keeps it)",
                Action.RESUBMIT,
                status_code=status,
                code="request_not_found",
            )
        failure = self.failure_of(response)
        return _error(text, Action.FAIL, status_code=status, code=failure.error_type if failure else None)

    # -- retry decisions (each returns the delay before the next attempt, or raises)

    def after_response(self, call: _Call, response: httpx.Response, attempt: int) -> float | None:
        """``None`` when the answer is final and good; a delay to retry; raises for a final error."""
        status = response.status_code
        if status in call.ok or status in call.tolerated:
            return None
        if (
            call.outcome
            and status != 429
            and self.failure_of(response) is not None
            and (status < 500 or status not in RETRY_STATUSES or attempt >= self.max_retries)
        ):
            # The request's own error, stored by fal: reading it again returns the same. A 5xx could also be the
            # gateway's own trouble (same shape of body): read again first — a stored error is still there, a
            # passing one is not, and only a GET is spent (seen: one injected 500 on a result read made a
            # succeeded request look failed, and the segment paid again).
            return None
        if (
            call.creates_task
            and (status in RETRY_STATUSES or status >= 500)
            and not proves_nothing_created(response)
        ):
            raise _error(
                f"{call.what}: HTTP {status} ({self.message_of(response)}) after the request was sent; a gateway "
                "can answer this after fal queued the request, so a request may have been created (and billed)",
                Action.AMBIGUOUS,
                status_code=status,
            )
        if status in RETRY_STATUSES:
            if attempt < self.max_retries:
                delay = backoff_delay(
                    self.rng, attempt, retry_after(response), self.backoff_base, self.backoff_cap
                )
                log.warning(
                    "fal %s: HTTP %s, retry %d/%d in %.2fs",
                    call.what,
                    status,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                return delay
            raise _error(
                f"{call.what}: HTTP {status} after {attempt + 1} attempts: {self.message_of(response)}",
                call.exhausted,
                status_code=status,
            )
        raise self.error_for(call, response)

    def after_transport_error(self, call: _Call, exc: httpx.RequestError, attempt: int) -> float:
        """Connection-level failures: retry, or refuse to when a submit may have reached fal."""
        kind = type(exc).__name__
        if isinstance(exc, NEVER_RETRY):
            raise _error(f"{call.what}: {kind}", Action.FAIL) from None
        if call.creates_task and not isinstance(exc, NOTHING_SENT):
            raise _error(
                f"{call.what}: {kind} after the request was sent; a request may have been created",
                Action.AMBIGUOUS,
            ) from None
        if attempt < self.max_retries:
            delay = backoff_delay(self.rng, attempt, None, self.backoff_base, self.backoff_cap)
            log.warning(
                "fal %s: %s, retry %d/%d in %.2fs", call.what, kind, attempt + 1, self.max_retries, delay
            )
            return delay
        raise _error(f"{call.what}: {kind} after {attempt + 1} attempts", call.exhausted) from None


# ------------------------------------------------------------------------------------------------ clients


class _ClientBase:
    _core: _Core

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def __repr__(self) -> str:  # the key stays out of reprs (and so out of logs and tracebacks)
        return f"{type(self).__name__}(base_url={self._core.base_url!r}, api_key='***')"


def _core(
    base_url: str,
    api_key: str,
    rest_url: str | None,
    max_retries: int,
    backoff_base: float,
    backoff_cap: float,
    data_uri_max_bytes: int,
) -> _Core:
    if rest_url is None:
        rest_url = DEFAULT_REST_URL if base_url.rstrip("/") == DEFAULT_BASE_URL else base_url
    return _Core(base_url, api_key, rest_url, max_retries, backoff_base, backoff_cap, data_uri_max_bytes)


class FalClient(_ClientBase):
    """Blocking client (workers submit, fetch outputs, download and cancel with it). A context manager.

    :param base_url: the queue's base URL (``https://queue.fal.run``).
    :param api_key: the fal key (``key_id:key_secret``), sent as ``Authorization: Key …`` to fal's API only.
    :param rest_url: fal's REST API for storage uploads; by default fal's own for fal's queue, else ``base_url``.
    :param timeout: seconds (or an ``httpx.Timeout``) per HTTP request.
    :param max_retries: retries of a retryable answer or connection failure before giving up.
    :param backoff_base: seconds of the first backoff (doubling, full jitter).
    :param backoff_cap: the longest wait between attempts (also caps ``Retry-After``).
    :param data_uri_max_bytes: an image goes inline as a data URI up to this size, else through fal's storage.
    :param transport: an httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        rest_url: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        data_uri_max_bytes: int = DATA_URI_MAX_BYTES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = _core(
            base_url, api_key, rest_url, max_retries, backoff_base, backoff_cap, data_uri_max_bytes
        )
        quiet_http_loggers()
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=False)

    def __enter__(self) -> FalClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call, sink: Path | None = None) -> httpx.Response:
        core = self._core

        def attempt() -> httpx.Response:
            kwargs = core.request_kwargs(call)
            if sink is None:
                return capped_request(self._http, kwargs, API_BODY_MAX)
            return stream_to_file(self._http, kwargs, sink, core.guard(call))

        return call_with_retries(
            attempt,
            lambda response, tries: core.after_response(call, response, tries),
            lambda exc, tries: core.after_transport_error(call, exc, tries),
        )

    def submit_image(self, request: ImageRequest) -> str:
        """Queue a text-to-image request; returns its task id (record it before polling)."""
        call = self._core.submit_image(request)
        return self._core.parse_request_id(call, self._send(call), request.model)

    def submit_clip(self, request: ClipRequest, image: SourceImage) -> str:
        """Queue an image-to-video request. The image goes by its URL when it has one, inline as a data URI when
        small enough, else through fal's storage (the upload creates nothing billed)."""
        image_url = image.url or self._core.image_data_uri(image) or self.upload_file(image.path)
        call = self._core.submit_clip(request, image_url)
        return self._core.parse_request_id(call, self._send(call), request.model)

    def upload_file(self, path: Path) -> str:
        """Put a local file in fal's storage (initiate, then a PUT to the presigned URL); returns its URL."""
        upload_url, file_url = self._core.parse_upload(self._send(self._core.upload_initiate(path)))
        self._send(self._core.upload_put(upload_url, path))
        return file_url

    def status(self, task_id: str) -> RemoteStatus:
        """The request's state. A request that completed without an error has its result read once more to tell
        an output from a model error (fal reports both as ``COMPLETED``)."""
        status = self._core.parse_status(task_id, self._send(self._core.status_call(task_id)))
        if status is not None:
            return status
        return self._core.status_from_result(task_id, self._send(self._core.result_call(task_id)))

    def outputs(self, task_id: str) -> list[str]:
        """The output URLs of a completed request (or the classified error it completed with)."""
        return self._core.outputs_from_result(task_id, self._send(self._core.result_call(task_id)))

    def download(self, url: str, dest: Path, *, kind: CacheKind) -> Path:
        """Stream an output into ``dest`` (temporary file + rename: never a partial file). No key is sent; the
        redirects and the size cap of ``kind`` are checked on the way (:class:`FalOutputRejected`)."""
        dest = Path(dest)
        call = self._core.download(url, kind)
        part = part_path(dest)
        try:
            self._send(call, sink=part)
            os.replace(part, dest)
        finally:
            part.unlink(missing_ok=True)
        return dest

    def cancel(self, task_id: str) -> bool:
        """Cancel a request (removed from the queue, or a stop signal to its runner); ``False`` when fal no longer
        knows it or it already completed."""
        return self._core.parse_cancel(self._send(self._core.cancel_call(task_id)))


class AsyncFalClient(_ClientBase):
    """Non-blocking client (the triggerer polls with it). An async context manager. Parameters as
    :class:`FalClient`'s, with an ``httpx.AsyncBaseTransport``."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        rest_url: str | None = None,
        timeout: float | httpx.Timeout = 30.0,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        data_uri_max_bytes: int = DATA_URI_MAX_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = _core(
            base_url, api_key, rest_url, max_retries, backoff_base, backoff_cap, data_uri_max_bytes
        )
        quiet_http_loggers()
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport, follow_redirects=False)

    async def __aenter__(self) -> AsyncFalClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call) -> httpx.Response:
        core = self._core

        async def attempt() -> httpx.Response:
            return await acapped_request(self._http, core.request_kwargs(call), API_BODY_MAX)

        return await acall_with_retries(
            attempt,
            lambda response, tries: core.after_response(call, response, tries),
            lambda exc, tries: core.after_transport_error(call, exc, tries),
        )

    async def status(self, task_id: str) -> RemoteStatus:
        status = self._core.parse_status(task_id, await self._send(self._core.status_call(task_id)))
        if status is not None:
            return status
        return self._core.status_from_result(task_id, await self._send(self._core.result_call(task_id)))

    async def cancel(self, task_id: str) -> bool:
        return self._core.parse_cancel(await self._send(self._core.cancel_call(task_id)))


# ---------------------------------------------------------------------------------------------- provider


def _client_options(endpoint: Endpoint) -> dict[str, Any]:
    """Client keywords from a connection's extras: ``timeout``, ``max_retries``, ``backoff_base``,
    ``backoff_cap``, ``data_uri_max_bytes``, ``rest_url`` (tests make retries fast with them)."""
    extra = endpoint.extra
    options: dict[str, Any] = {}
    for name, cast in (
        ("timeout", float),
        ("backoff_base", float),
        ("backoff_cap", float),
        ("max_retries", int),
        ("data_uri_max_bytes", int),
    ):
        if name not in extra:
            continue
        try:
            value = cast(extra[name])
        except (TypeError, ValueError):
            raise ValueError(f"fal connection extra {name!r} must be a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"fal connection extra {name!r} must be a finite number ≥ 0")
        options[name] = value
    if "rest_url" in extra:
        options["rest_url"] = str(extra["rest_url"])
    return options


class FalProvider:
    """fal.ai as the registry holds it (see :class:`~video_pipeline.providers.port.RemoteProvider`).

    ``concurrency``: fal limits requests *in progress* per account, across every model (2 for a new account,
    rising with purchases up to 40); requests beyond it wait in fal's queue and are never refused for it. Two per
    stage keeps a new account's limit busy without a long hidden queue.
    ``min_poll_s``: fal asks for no minimum (its own client polls every 0.1 s); 2 s keeps the triggerer light
    while an image still finishes within a poll or two.
    """

    name = NAME
    conn_id = CONN_ID
    default_base_url = DEFAULT_BASE_URL
    models: Mapping[str, ModelSpec] = MODELS
    default_models: Mapping[Stage, str] = MappingProxyType({"images": FLUX_DEV, "clips": KLING_21_STANDARD})
    concurrency: Mapping[Stage, int] = MappingProxyType({"images": 2, "clips": 2})
    min_poll_s = 2.0

    def estimate(self, request: ImageRequest | ClipRequest) -> float:
        """Credits (1 credit = US$0.01) the request will cost (:func:`estimate_credits`)."""
        return estimate_credits(request)

    def client(self, endpoint: Endpoint) -> FalClient:
        return FalClient(endpoint.base_url or DEFAULT_BASE_URL, endpoint.api_key, **_client_options(endpoint))

    def async_client(self, endpoint: Endpoint) -> AsyncFalClient:
        return AsyncFalClient(
            endpoint.base_url or DEFAULT_BASE_URL, endpoint.api_key, **_client_options(endpoint)
        )

    def __repr__(self) -> str:
        return "FalProvider()"


PROVIDER = FalProvider()
