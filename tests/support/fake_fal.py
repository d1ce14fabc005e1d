"""A fake fal.ai queue API over real HTTP on loopback, for tests and benchmarks.

It behaves like the real service where the pipeline can tell the difference (``docs/notes/fal-queue-api.md``):
``POST /<model id>`` queues a request and answers its ``request_id`` and URLs; ``GET /<owner>/<app>/requests/<id>
/status`` answers ``IN_QUEUE`` (202, with ``queue_position``) → ``IN_PROGRESS`` (202) → ``COMPLETED`` (200, with
``error``/``error_type`` when the platform failed it) by wall clock, under one account-wide concurrency limit;
``GET …/requests/<id>`` answers the model's output, or the model's own error with its status code (a 422
``detail`` list); ``PUT …/cancel``; the storage upload (``POST /storage/upload/initiate`` → presigned ``PUT``);
real PNGs and MP4s at unsigned, expiring output URLs; a balance that locks the account (403) when spent. Only
``owner/app`` addresses a request: a status URL with the model's sub-path is a 404, as a client that builds it
wrong must find out here.

Like fal, it bills a request when it *succeeds* (never a failed or cancelled one), from its own price list
(:data:`PRICES`, written from fal's model pages, deliberately not imported from the client), and it keeps the
bill per request (``charges``) so a test can hold the pipeline's estimate and ledger against it.

On top of that it injects faults (429/503 with Retry-After, 5xx, dropped connections, extra queueing time) from a
seeded RNG or an explicit script, can refuse every submit (``refuse_creates``), and counts everything a test
wants to assert on: submits per path and per model, submissions per (model, prompt, seed), duplicate bodies,
polls, cancels, downloads, keys sent where they must not go.

In process::

    with FakeFal(api_key="k", image_latency=0.2) as fake:
        client = FalClient(fake.base_url, "k")
        ...
        assert fake.duplicate_submissions == 0

As a process (benchmarks, real-Airflow e2e tests) — prints the base URL on stdout, then serves::

    python -m tests.support.fake_fal --port 0 --image-latency 2 --video-latency 5 --concurrency 2

Counters are also served at ``GET /_fake/stats``; ``POST /_fake/config`` changes the configuration at run time
(JSON object of :class:`FakeFalConfig` fields, plus ``credit_balance`` and ``fail_next``) and ``POST /_fake/reset``
clears the counters.

"Create then fail" (``fail_next("POST", "/fal-ai/", "create-then-502")`` or ``rate_create_then_fail``) queues
the request and only then answers 500/502/503/504 or drops the connection: what a gateway in front of the queue
can do, and what a client must not retry.

Prompt markers make outcomes deterministic: ``[fail:TYPE]`` completes every request with that prompt with fal's
error TYPE — a platform error (``runner_disconnected``, ``request_timeout``…: ``error``/``error_type`` on the
status, the typed error on the result) or a model error (``content_policy_violation``, ``no_media_generated``…: a
``detail`` list on the result); ``[fail:TYPE@FIELD]`` puts the model error at ``loc ["body", FIELD]`` (``@body``:
at ``["body"]``, a flagged output); ``[fail-once:TYPE]`` / ``[fail-3:TYPE]`` only the first one / three
submissions of that prompt; ``[nsfw]`` makes FLUX's safety checker flag the image (a black PNG and
``has_nsfw_concepts: [true]``, billed like any image); ``[latency:0.5]`` overrides the request's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import dataclasses
import hmac
import io
import itertools
import json
import math
import random
import re
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_http import (
    OUTPUT_BODIES,
    Dropped,
    LoopbackServer,
    earliest_slot,
    keep_raw_channels,
    output_response,
    peak_concurrency,
    png_bytes,
    redirect_target,
    retry_after_value,
    serve,
    video_file,
)

NO_USER = "No user found for Key ID and Secret"
LOCKED = "User is locked. Reason: Exhausted balance. Top up your balance at fal.ai/dashboard/billing."
STATES = ("IN_QUEUE", "IN_PROGRESS", "SUCCEEDED", "FAILED", "CANCELLED")
CREATE_THEN_FAIL = (
    "create-then-500",
    "create-then-502",
    "create-then-503",
    "create-then-504",
    "create-then-reset",
)
#: fal's request (platform) error types and the status code each typically comes with.
REQUEST_ERRORS: dict[str, int] = {
    "request_timeout": 504,
    "startup_timeout": 504,
    "runner_scheduling_failure": 503,
    "runner_connection_timeout": 503,
    "runner_disconnected": 503,
    "runner_connection_refused": 503,
    "runner_connection_error": 503,
    "runner_incomplete_response": 502,
    "runner_server_error": 500,
    "client_cancelled": 499,
    "bad_request": 400,
    "internal_error": 500,
}
#: Model error types answered with another status than 422.
MODEL_ERROR_STATUS: dict[str, int] = {
    "internal_server_error": 500,
    "generation_timeout": 504,
    "downstream_service_unavailable": 503,
}
_MARKER = re.compile(r"\[fail(?:-(once|\d+))?:([A-Za-z0-9_]*)(?:@([A-Za-z0-9_]+))?\]")
_LATENCY = re.compile(r"\[latency:([0-9.]+)\]")
_NSFW = "[nsfw]"
_QUEUE_PATH = re.compile(
    r"/(?P<app>(?:(?:workflows|comfy)/)?[A-Za-z0-9._-]+/[A-Za-z0-9._-]+)/requests/(?P<id>[A-Za-z0-9-]+)"
    r"(?P<op>/status|/cancel)?"
)
_DATA_URI = re.compile(r"data:(image/[a-z0-9.+-]+);base64,", re.IGNORECASE)
_MAX_DATA_URI_PEEK = 64 * 1024 * 1024


# ------------------------------------------------------------------------------- models and price list


def _usd(value: float) -> float:
    return round(value * 100, 6)  # credits: 1 credit = US$0.01


def _flux_price(per_megapixel: float) -> Callable[[dict[str, Any]], float]:
    """FLUX bills per megapixel of output, rounded up to whole megapixels (10⁶ pixels), per image."""

    def price(body: dict[str, Any]) -> float:
        width, height = _image_size(body.get("image_size", "landscape_4_3"))
        megapixels = max(1, math.ceil(width * height / 1_000_000))
        return _usd(per_megapixel * megapixels * int(body.get("num_images", 1)))

    return price


def _kling_price(body: dict[str, Any]) -> float:
    seconds = int(body.get("duration", "5"))
    return _usd(0.28 + 0.056 * (seconds - 5))  # $0.28 for 5 s, $0.056 for each further second


def _hailuo_price(body: dict[str, Any]) -> float:
    per_second = {"768P": 0.045, "512P": 0.017}[body.get("resolution", "768P")]
    return _usd(per_second * int(body.get("duration", "6")))


def _ray2_price(body: dict[str, Any]) -> float:
    resolution = {"540p": 1, "720p": 2, "1080p": 4}[body.get("resolution", "540p")]  # 720p 2x, 1080p 4x
    length = {"5s": 1, "9s": 2}[body.get("duration", "5s")]  # 9 s costs 2x
    return _usd(0.50 * resolution * length)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _one_of(*options: Any) -> Callable[[Any], bool]:
    return lambda value: value in options


def _int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: _is_int(value) and low <= value <= high


def _number_in(low: float, high: float) -> Callable[[Any], bool]:
    return lambda value: _is_number(value) and low <= value <= high


IMAGE_SIZE_PRESETS: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


def _valid_image_size(value: Any) -> bool:
    if isinstance(value, str):
        return value in IMAGE_SIZE_PRESETS
    return (
        isinstance(value, dict)
        and set(value) == {"width", "height"}
        and all(_is_int(value[k]) and 16 <= value[k] <= 14142 for k in ("width", "height"))
    )


def _image_size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        return IMAGE_SIZE_PRESETS[value]
    return int(value["width"]), int(value["height"])


@dataclass(frozen=True)
class FakeModel:
    """One model the fake serves: its input schema (field → check; ``required``), its output kind and price."""

    model_id: str
    kind: str  # image | video
    fields: Mapping[str, Callable[[Any], bool]]
    required: tuple[str, ...]
    price: Callable[[dict[str, Any]], float]


_FLUX_FIELDS: dict[str, Callable[[Any], bool]] = {
    "prompt": _is_str,
    "image_size": _valid_image_size,
    "num_inference_steps": _int_in(1, 50),
    "seed": _is_int,
    "guidance_scale": _number_in(1, 20),
    "sync_mode": lambda v: isinstance(v, bool),
    "num_images": _int_in(1, 4),
    "enable_safety_checker": lambda v: isinstance(v, bool),
    "output_format": _one_of("jpeg", "png"),
    "acceleration": _one_of("none", "regular", "high"),
}

#: The fake's own catalogue and price list, written from fal's model pages (see the module docstring).
PRICES_SOURCE = "fal.ai model pages: FLUX.1 dev/schnell, Kling 2.1 standard, Hailuo-02 standard, Luma Ray 2"
MODELS: dict[str, FakeModel] = {
    "fal-ai/flux/dev": FakeModel("fal-ai/flux/dev", "image", _FLUX_FIELDS, ("prompt",), _flux_price(0.025)),
    "fal-ai/flux/schnell": FakeModel(
        "fal-ai/flux/schnell",
        "image",
        _FLUX_FIELDS | {"num_inference_steps": _int_in(1, 12)},
        ("prompt",),
        _flux_price(0.003),
    ),
    "fal-ai/kling-video/v2.1/standard/image-to-video": FakeModel(
        "fal-ai/kling-video/v2.1/standard/image-to-video",
        "video",
        {
            "prompt": _is_str,
            "image_url": _is_str,
            "duration": _one_of("5", "10"),
            "negative_prompt": _is_str,
            "cfg_scale": _number_in(0, 1),
        },
        ("prompt", "image_url"),
        _kling_price,
    ),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": FakeModel(
        "fal-ai/minimax/hailuo-02/standard/image-to-video",
        "video",
        {
            "prompt": _is_str,
            "image_url": _is_str,
            "duration": _one_of("6", "10"),
            "prompt_optimizer": lambda v: isinstance(v, bool),
            "resolution": _one_of("512P", "768P"),
            "end_image_url": _is_str,
        },
        ("prompt", "image_url"),
        _hailuo_price,
    ),
    "fal-ai/luma-dream-machine/ray-2/image-to-video": FakeModel(
        "fal-ai/luma-dream-machine/ray-2/image-to-video",
        "video",
        {
            "prompt": _is_str,
            "image_url": _is_str,
            "end_image_url": _is_str,
            "aspect_ratio": _one_of("16:9", "9:16", "4:3", "3:4", "21:9", "9:21"),
            "loop": lambda v: isinstance(v, bool),
            "resolution": _one_of("540p", "720p", "1080p"),
            "duration": _one_of("5s", "9s"),
        },
        ("prompt", "image_url"),
        _ray2_price,
    ),
}


# -------------------------------------------------------------------------------------------- config


@dataclass
class FakeFalConfig:
    """Everything adjustable; change at run time with :meth:`FakeFal.configure` or ``/_fake/config``."""

    api_key: str = "fake-fal-key"
    image_latency: float = 0.5
    video_latency: float = 1.0
    #: Requests IN_PROGRESS at once, account-wide (every model together), as fal limits them.
    concurrency: int = 2
    #: Seconds an output URL keeps working after its request completed; a result is kept ``result_ttl``.
    output_ttl: float = 3600.0
    result_ttl: float = 3600.0
    #: Fault rates (0..1) per request to the API paths starting with one of ``fault_paths``, from an RNG seeded
    #: with ``seed``. Output downloads and uploads only fail when scripted (``fail_next``).
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    #: Fraction of new requests held IN_QUEUE ``queue_hold_s`` longer even with a free slot.
    rate_queued: float = 0.0
    queue_hold_s: float = 1.0
    #: Seconds sent in Retry-After; a string is sent as it is (for clients' parsers: "nan", a date, garbage).
    retry_after: float | str = 1.0
    seed: int = 0
    fault_paths: tuple[str, ...] = ("/",)
    #: A dropped connection on a submit happens after the request was queued: the case a client must not retry.
    reset_after_create: bool = True
    #: Limit dropped connections to these path prefixes; ``None``: every fault path.
    reset_paths: tuple[str, ...] | None = None
    #: 503 answers carry ``Retry-After`` (``retry_after`` seconds), as a service shedding load does.
    retry_after_on_503: bool = False
    #: Statuses a random 5xx fault draws from on submits (answered before anything is queued).
    create_5xx_statuses: tuple[int, ...] = (500, 502, 503, 504)
    #: Fraction of submits that queue the request, then answer 500/502/504 or drop the connection.
    rate_create_then_fail: float = 0.0
    #: Every submit is refused with this status (429, or 503 with Retry-After) and nothing is queued: a model or
    #: service that is unavailable for as long as this is set.
    refuse_creates: int | None = None
    #: Seconds a submit waits after queueing the request before it answers (a slow gateway).
    create_answer_delay: float = 0.0
    #: Validate the input at submit (422 there, nothing queued) instead of on the runner (the request completes
    #: with the model's 422, unbilled) — fal documents the latter for model errors; both are served.
    validate_on_submit: bool = False
    #: Report model errors on the status too (``error``/``error_type``), not only on the result.
    model_errors_in_status: bool = False
    #: Longest data URI accepted in an ``image_url`` (``None``: any); fal documents none.
    data_uri_max_bytes: int | None = None
    #: Seconds an output download waits before its body is sent (a slow CDN; a window to kill a client in).
    output_delay: float = 0.0
    #: What output downloads serve: one of ``OUTPUT_BODIES``.
    output_body: str = "ok"
    oversize_bytes: int = 2_000_000
    #: Output downloads first answer 302 to: ``same-host``, ``downgrade``, ``loop`` or any absolute URL.
    output_redirect: str | None = None

    def __post_init__(self) -> None:
        if self.output_body not in OUTPUT_BODIES:
            raise ValueError(f"output_body must be one of {OUTPUT_BODIES}: {self.output_body!r}")
        if self.refuse_creates not in (None, 429, 503):
            raise ValueError("refuse_creates must be 429, 503 or None")


# ------------------------------------------------------------------------------------------------ state


class _HTTPError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body


def _issue(loc: list[str | int], message: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": message, "type": kind}


@dataclass
class _Outcome:
    """How a request ends: ``error_type`` ``None`` is a success."""

    error_type: str | None = None
    loc: list[str | int] = field(default_factory=lambda: ["body", "prompt"])
    message: str = ""
    nsfw: bool = False
    #: Every input issue, when the input was invalid (the result's ``detail`` list).
    issues: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Request:
    id: str
    seq: int
    model: FakeModel
    app: str
    body: dict[str, Any]
    created: float  # time.monotonic()
    eligible: float
    latency: float
    price: float
    outcome: _Outcome
    size: tuple[int, int]  # output pixels
    duration: int | None  # clips: seconds
    started: float | None = None
    ends: float | None = None
    cancelled_at: float | None = None
    charged: bool = False

    def end(self) -> float:
        assert self.ends is not None
        return self.ends if self.cancelled_at is None else min(self.ends, self.cancelled_at)

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None and (self.ends is None or self.cancelled_at < self.ends)


class _State:
    """All fake-server state; every method takes the lock (the server thread and tests share it)."""

    def __init__(self, config: FakeFalConfig, credits: float, video_bytes: bytes | None) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.secret = uuid.uuid4().bytes
        self.video_bytes = video_bytes
        self.credit_balance = float(credits)
        self.requests_by_id: dict[str, _Request] = {}
        self.seq = itertools.count()
        self.uploads: dict[str, dict[str, Any]] = {}
        self.prompt_submissions: Counter[str] = Counter()
        self.scripted: dict[tuple[str, str], deque[int | str]] = defaultdict(deque)
        self.media: dict[str, bytes] = {}
        self.reset_counters()

    def reset_counters(self) -> None:
        with self.lock:
            self.requests = 0
            self.posts: Counter[str] = Counter()
            self.created: Counter[str] = Counter()
            self.submissions: Counter[str] = Counter()
            self.bodies: Counter[str] = Counter()
            self.duplicate_submissions = 0
            self.polls: Counter[str] = Counter()
            self.poll_times: dict[str, list[float]] = defaultdict(list)
            self.results: Counter[str] = Counter()
            self.cancels = 0
            self.faults: Counter[str] = Counter()
            self.rejections: Counter[str] = Counter()
            self.downloads = 0
            self.expired_downloads = 0
            self.uploads_completed = 0
            self.keys_sent_to_outputs = 0
            self.credits_spent = 0.0
            self.charges: dict[str, float] = {}

    # -- configuration

    def configure(self, changes: Mapping[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(FakeFalConfig)}
        with self.lock:
            for key, value in changes.items():
                if key == "credit_balance":
                    self.credit_balance = float(value)
                elif key == "fail_next":
                    for target, faults in dict(value).items():
                        method, _, prefix = str(target).partition(" ")
                        self.script(method, prefix, *faults)
                elif key in names:
                    if key in ("fault_paths", "reset_paths", "create_5xx_statuses") and value is not None:
                        value = tuple(value)
                    if key == "output_body" and value not in OUTPUT_BODIES:
                        raise ValueError(f"output_body must be one of {OUTPUT_BODIES}: {value!r}")
                    if key == "refuse_creates" and value not in (None, 429, 503):
                        raise ValueError("refuse_creates must be 429, 503 or None")
                    if key == "seed":
                        self.rng.seed(value)
                    setattr(self.config, key, value)
                else:
                    raise ValueError(f"unknown config field {key!r}")

    def script(self, method: str, path_prefix: str, *faults: int | str) -> None:
        for fault in faults:
            if not (isinstance(fault, int) or fault in ("reset", "reset-before", *CREATE_THEN_FAIL)):
                raise ValueError(
                    f"fault must be an HTTP status, 'reset', 'reset-before' or one of {CREATE_THEN_FAIL}: {fault!r}"
                )
        with self.lock:
            self.scripted[(method.upper(), path_prefix)].extend(faults)

    # -- faults

    def pick_fault(self, method: str, path: str, *, create: bool, api: bool) -> int | str | None:
        with self.lock:
            for (m, prefix), queue in self.scripted.items():
                if queue and m == method and path.startswith(prefix):
                    return queue.popleft()
            cfg = self.config
            if not api or not any(path.startswith(p) for p in cfg.fault_paths):
                return None
            r = self.rng.random()
            if r < cfg.rate_429:
                return 429
            if r < cfg.rate_429 + cfg.rate_5xx:
                statuses = cfg.create_5xx_statuses if create else (500, 502, 503, 504)
                return self.rng.choice(statuses) if statuses else None
            if r < cfg.rate_429 + cfg.rate_5xx + cfg.rate_reset:
                if cfg.reset_paths is not None and not any(path.startswith(p) for p in cfg.reset_paths):
                    return None
                return "reset"
            if create and r < cfg.rate_429 + cfg.rate_5xx + cfg.rate_reset + cfg.rate_create_then_fail:
                return self.rng.choice(
                    ("create-then-500", "create-then-502", "create-then-504", "create-then-reset")
                )
            return None

    # -- scheduler and billing

    def advance(self, now: float) -> None:
        """Start queued requests FIFO at the instant an account slot freed, then bill every request that has
        succeeded by ``now``. A pure function of wall clock, like the fake Runway's scheduler."""
        with self.lock:
            started = [r for r in self.requests_by_id.values() if r.started is not None]
            waiting = sorted(
                (r for r in self.requests_by_id.values() if r.started is None and r.cancelled_at is None),
                key=lambda r: (r.eligible, r.seq),
            )
            floor = max((r.started for r in started if r.started is not None), default=-math.inf)
            for req in waiting:
                start = earliest_slot(started, max(req.eligible, floor), self.config.concurrency)
                if start > now:
                    break
                req.started = floor = start
                req.ends = start + req.latency
                started.append(req)
            for req in self.requests_by_id.values():
                if (
                    not req.charged
                    and req.ends is not None
                    and req.ends <= now
                    and not req.cancelled
                    and req.outcome.error_type is None
                ):
                    req.charged = True
                    self.credit_balance -= req.price
                    self.credits_spent += req.price
                    self.charges[req.id] = req.price

    def state(self, req: _Request, now: float) -> str:
        if req.cancelled:
            return "CANCELLED"
        if req.started is None or now < req.started:
            return "IN_QUEUE"
        assert req.ends is not None
        if now < req.ends:
            return "IN_PROGRESS"
        return "SUCCEEDED" if req.outcome.error_type is None else "FAILED"

    def queue_position(self, req: _Request) -> int:
        with self.lock:
            return sum(
                1
                for r in self.requests_by_id.values()
                if r.started is None
                and r.cancelled_at is None
                and (r.eligible, r.seq) < (req.eligible, req.seq)
            )

    def max_running(self) -> int:
        """The most requests IN_PROGRESS at one instant, account-wide (from exact start/end times)."""
        with self.lock:
            return peak_concurrency(
                (r.started, r.end()) for r in self.requests_by_id.values() if r.started is not None
            )

    def tasks_by_status(self) -> dict[str, int]:
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            counts = Counter(self.state(r, now) for r in self.requests_by_id.values())
            return {s: counts.get(s, 0) for s in STATES}

    # -- requests

    def create(self, model: FakeModel, body: dict[str, Any], outcome: _Outcome) -> _Request:
        raw_prompt = body.get("prompt")
        prompt = raw_prompt if isinstance(raw_prompt, str) else ""
        with self.lock:
            self.prompt_submissions[f"{model.model_id}|{prompt}"] += 1
            nth = self.prompt_submissions[f"{model.model_id}|{prompt}"]
            cfg = self.config
            latency = cfg.image_latency if model.kind == "image" else cfg.video_latency
            if outcome.error_type is not None:
                latency = min(latency, 0.05)  # an invalid input is refused as soon as a runner reads it
            elif marker := _LATENCY.search(prompt):
                latency = float(marker.group(1))
            if outcome.error_type is None and (marker := _MARKER.search(prompt)):
                times, kind, where = marker.groups()
                limit = math.inf if times is None else 1 if times == "once" else int(times)
                if nth <= limit:
                    loc: list[str | int] = ["body"] if where == "body" else ["body", where or "prompt"]
                    outcome = _Outcome(kind or "internal_error", loc, f"fake failure ({kind or 'no type'})")
            if outcome.error_type is None and model.kind == "image" and _NSFW in prompt:
                outcome = _Outcome(nsfw=True)
            now = time.monotonic()
            eligible = now
            if cfg.rate_queued and self.rng.random() < cfg.rate_queued:
                eligible += cfg.queue_hold_s
                self.faults["queued"] += 1
            size, duration = self.output_shape(model, body)
            req = _Request(
                id=str(uuid.uuid4()),
                seq=next(self.seq),
                model=model,
                app=_queue_app(model.model_id),
                body=body,
                created=now,
                eligible=eligible,
                latency=latency,
                price=model.price(body) if outcome.error_type is None else 0.0,
                outcome=outcome,
                size=size,
                duration=duration,
            )
            canonical = json.dumps({"model": model.model_id, "body": body}, sort_keys=True)
            if self.bodies[canonical]:
                self.duplicate_submissions += 1
            self.bodies[canonical] += 1
            self.created[model.model_id] += 1
            self.submissions[f"{model.model_id}|{prompt}|{body.get('seed')}"] += 1
            self.requests_by_id[req.id] = req
            self.advance(now)
            return req

    def output_shape(self, model: FakeModel, body: dict[str, Any]) -> tuple[tuple[int, int], int | None]:
        """Output pixels and seconds, as the model would make them from this input."""
        try:
            if model.kind == "image":
                return _image_size(body.get("image_size", "landscape_4_3")), None
            duration = int(str(body.get("duration", "5")).rstrip("s"))
            if "aspect_ratio" in model.fields:  # Ray 2: the frame is asked for
                short = int(str(body.get("resolution", "540p")).rstrip("pP"))
                a, b = (int(v) for v in str(body.get("aspect_ratio", "16:9")).split(":"))
                return _fit(a, b, short), duration
            # Kling (720p) and Hailuo (768P by default) follow the input image's aspect ratio
            short = {"512P": 512, "768P": 768}.get(body.get("resolution", "768P"), 768)
            if "resolution" not in model.fields:
                short = 720
            width, height = self.input_image_size(body.get("image_url")) or (16, 9)
            return _fit(width, height, short), duration
        except (ValueError, KeyError, TypeError, ZeroDivisionError):
            return (1280, 720), 5  # an invalid request: it fails before making anything

    def input_image_size(self, url: Any) -> tuple[int, int] | None:
        """The pixel size of an input image the fake can read: a data URI or one of its own uploads (other URLs
        are not fetched: a fake never reaches out)."""
        data = self.image_bytes(url)
        if data is None:
            return None
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as img:
                return img.size
        except Exception:  # undecodable: the runner would refuse it; the shape is moot
            return None

    def image_bytes(self, url: Any) -> bytes | None:
        if not isinstance(url, str):
            return None
        if _DATA_URI.match(url):
            try:
                return base64.b64decode(url.split(",", 1)[1][:_MAX_DATA_URI_PEEK], validate=True)
            except (binascii.Error, ValueError):
                return None
        upload = self.upload_for(url)
        return upload.get("bytes") if upload else None

    def upload_for(self, url: str) -> dict[str, Any] | None:
        match = re.search(r"/files/uploads/([0-9a-f]+)/", url)
        if match is None:
            return None
        with self.lock:
            return self.uploads.get(match.group(1))

    def get(self, app: str, request_id: str) -> _Request:
        with self.lock:
            req = self.requests_by_id.get(request_id)
        if req is None or req.app != app:
            raise _HTTPError(404, {"detail": "Request not found"})
        return req

    def cancel(self, req: _Request) -> tuple[int, str]:
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            state = self.state(req, now)
            if state in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return 400, "ALREADY_COMPLETED"
            req.cancelled_at = now
            self.advance(now)
            return 202, "CANCELLATION_REQUESTED"

    def sign(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), "sha256").hexdigest()[:32]

    # -- stats

    def stats(self) -> dict[str, Any]:
        by_status = self.tasks_by_status()
        with self.lock:
            gaps = [b - a for times in self.poll_times.values() for a, b in itertools.pairwise(times)]
            return {
                "requests": self.requests,
                "posts": dict(self.posts),
                "tasks_created": dict(self.created),
                "submissions": dict(self.submissions),
                "duplicate_submissions": self.duplicate_submissions,
                "polls": dict(self.polls),
                "min_poll_interval_s": min(gaps) if gaps else None,
                "results": dict(self.results),
                "cancels": self.cancels,
                "tasks_by_status": by_status,
                "faults": dict(self.faults),
                "rejections": dict(self.rejections),
                "downloads": self.downloads,
                "expired_downloads": self.expired_downloads,
                "uploads_completed": self.uploads_completed,
                "keys_sent_to_outputs": self.keys_sent_to_outputs,
                "credit_balance": self.credit_balance,
                "credits_spent": self.credits_spent,
                "charges": dict(self.charges),
                "max_running": self.max_running(),
            }


def _fit(a: int, b: int, short: int) -> tuple[int, int]:
    """A frame of aspect ``a:b`` whose short side is ``short`` (even sides, as H.264 wants)."""
    long = short * max(a, b) / min(a, b)
    even_long = int(round(long / 2) * 2)
    return (even_long, short) if a >= b else (short, even_long)


def _queue_app(model_id: str) -> str:
    parts = model_id.split("/")
    return "/".join(parts[: 3 if parts[0] in ("workflows", "comfy") else 2])


# ---------------------------------------------------------------------------------------------- validation


def validate(state: _State, model: FakeModel, body: dict[str, Any]) -> list[dict[str, Any]]:
    """pydantic-style issues for an input (``loc``/``msg``/``type``), as a model app answers them (422).

    Stricter than fal in one way: a field the model's schema does not list is refused (``extra_forbidden``)
    where fal's apps may ignore it — a client mapping that sends a parameter the model would drop is a bug.
    """
    issues: list[dict[str, Any]] = []
    for name in sorted(set(body) - set(model.fields)):
        issues.append(_issue(["body", name], "Extra inputs are not permitted", "extra_forbidden"))
    for name in model.required:
        if name not in body:
            issues.append(_issue(["body", name], "Field required", "missing"))
    for name, check in model.fields.items():
        if name in body and not check(body[name]):
            issues.append(_issue(["body", name], f"Input should be a valid {name}", "value_error"))
    prompt = body.get("prompt")
    if isinstance(prompt, str) and not prompt.strip():
        issues.append(
            _issue(["body", "prompt"], "String should have at least 1 character", "string_too_short")
        )
    for name in ("image_url", "end_image_url"):
        value = body.get(name)
        if isinstance(value, str):
            issues += _check_file_url(state, name, value)
    return issues


def _check_file_url(state: _State, name: str, value: str) -> list[dict[str, Any]]:
    if _DATA_URI.match(value):
        limit = state.config.data_uri_max_bytes
        if limit is not None and len(value) > limit:
            return [_issue(["body", name], f"Data URI is longer than {limit} bytes", "file_too_large")]
        if state.image_bytes(value) is None:
            return [_issue(["body", name], "Could not decode the data URI", "image_load_error")]
        return []
    if not value.startswith(("https://", "http://")):
        return [_issue(["body", name], "Input should be a valid URL", "url_parsing")]
    if "/files/uploads/" in value:
        upload = state.upload_for(value)
        if upload is None or not upload["done"]:
            return [_issue(["body", name], "Failed to download the file", "file_download_error")]
    return []


# ---------------------------------------------------------------------------------------------- the HTTP API


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _urls(base: str, req: _Request) -> dict[str, str]:
    response_url = f"{base}/{req.app}/requests/{req.id}"
    return {
        "request_id": req.id,
        "response_url": response_url,
        "status_url": f"{response_url}/status",
        "cancel_url": f"{response_url}/cancel",
    }


class _Api:
    """The HTTP surface: request → state → JSON, mirroring fal's answers."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def authorize(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Key {self.state.config.api_key}":
            raise _HTTPError(401, {"detail": NO_USER})

    def unlocked(self) -> None:
        self.state.advance(time.monotonic())
        with self.state.lock:
            if self.state.credit_balance <= 0:
                raise _HTTPError(403, {"detail": LOCKED})

    async def submit(self, request: Request, model_id: str, body: Any) -> Response:
        model = MODELS.get(model_id)
        if model is None:
            raise _HTTPError(404, {"detail": f"Application '{model_id}' not found"})
        if not isinstance(body, dict):
            raise _HTTPError(422, {"detail": [_issue(["body"], "Input should be an object", "dict_type")]})
        self.unlocked()
        issues = validate(self.state, model, body)
        outcome = _Outcome()
        if issues:
            if self.state.config.validate_on_submit:
                raise _HTTPError(422, {"detail": issues})
            first = issues[0]
            outcome = _Outcome(
                first["type"], first["loc"], "; ".join(i["msg"] for i in issues), issues=issues
            )
        req = self.state.create(model, body, outcome)
        return JSONResponse({**_urls(_base(request), req), "queue_position": self.state.queue_position(req)})

    def status_body(self, request: Request, req: _Request, now: float) -> tuple[int, dict[str, Any]]:
        state = self.state.state(req, now)
        data: dict[str, Any] = {**_urls(_base(request), req), "logs": None}
        logs = request.query_params.get("logs") == "1"
        if state == "IN_QUEUE":
            return 202, data | {"status": "IN_QUEUE", "queue_position": self.state.queue_position(req)}
        if state == "IN_PROGRESS":
            if logs:
                data["logs"] = [
                    {"message": "generating", "level": "INFO", "timestamp": "2026-01-01T00:00:00Z"}
                ]
            return 202, data | {"status": "IN_PROGRESS"}
        data |= {"status": "COMPLETED", "metrics": {"inference_time": round(req.latency, 3)}}
        kind = req.outcome.error_type
        if state == "CANCELLED":
            data |= {"error": "Request was cancelled", "error_type": "client_cancelled"}
        elif kind is not None and (kind in REQUEST_ERRORS or self.state.config.model_errors_in_status):
            data |= {"error": req.outcome.message or kind, "error_type": kind}
        return 200, data

    async def status(self, request: Request, app: str, request_id: str) -> Response:
        req = self.state.get(app, request_id)
        now = time.monotonic()
        self.state.advance(now)
        with self.state.lock:
            code, body = self.status_body(request, req, now)
        return JSONResponse(body, status_code=code)

    async def result(self, request: Request, app: str, request_id: str) -> Response:
        req = self.state.get(app, request_id)
        now = time.monotonic()
        self.state.advance(now)
        with self.state.lock:
            state = self.state.state(req, now)
            if state in ("IN_QUEUE", "IN_PROGRESS"):
                raise _HTTPError(400, {"detail": "Request is still in progress"})
            if req.ends is not None and now > req.end() + self.state.config.result_ttl:
                raise _HTTPError(404, {"detail": "Request not found"})
        if state == "CANCELLED":
            return JSONResponse(
                {"detail": "Request was cancelled", "error_type": "client_cancelled"},
                status_code=499,
                headers={"X-Fal-Error-Type": "client_cancelled"},
            )
        kind = req.outcome.error_type
        if kind in REQUEST_ERRORS:
            return JSONResponse(
                {"detail": req.outcome.message or kind, "error_type": kind},
                status_code=REQUEST_ERRORS[kind],
                headers={"X-Fal-Error-Type": kind},
            )
        if kind is not None:
            issues = req.outcome.issues or [_issue(req.outcome.loc, req.outcome.message or kind, kind)]
            return JSONResponse({"detail": issues}, status_code=MODEL_ERROR_STATUS.get(kind, 422))
        return JSONResponse(self.output_json(_base(request), req))

    def output_json(self, base: str, req: _Request) -> dict[str, Any]:
        width, height = req.size
        if req.model.kind == "image":
            count = int(req.body.get("num_images", 1))
            images = [
                {
                    "url": f"{base}/files/out/{req.id}/image-{i}.png",
                    "width": width,
                    "height": height,
                    "content_type": "image/png",
                }
                for i in range(count)
            ]
            return {
                "images": images,
                "timings": {"inference": round(req.latency, 3)},
                "seed": req.body.get("seed", 42),
                "has_nsfw_concepts": [req.outcome.nsfw] * count,
                "prompt": req.body.get("prompt", ""),
            }
        return {
            "video": {
                "url": f"{base}/files/out/{req.id}/video.mp4",
                "content_type": "video/mp4",
                "file_name": "video.mp4",
            }
        }

    async def cancel(self, request: Request, app: str, request_id: str) -> Response:
        try:
            req = self.state.get(app, request_id)
        except _HTTPError:
            return JSONResponse({"status": "NOT_FOUND"}, status_code=404)
        code, said = self.state.cancel(req)
        return JSONResponse({"status": said}, status_code=code)

    async def upload_initiate(self, request: Request, body: Any) -> Response:
        self.unlocked()
        if request.query_params.get("storage_type") not in (None, "gcs", "fal-cdn-v3"):
            raise _HTTPError(400, {"detail": "Unknown storage type"})
        name = body.get("file_name") if isinstance(body, dict) else None
        ctype = body.get("content_type") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name or "/" in name or not isinstance(ctype, str):
            raise _HTTPError(
                422, {"detail": [_issue(["body", "file_name"], "Expected a file name", "value_error")]}
            )
        upload_id = uuid.uuid4().hex
        with self.state.lock:
            self.state.uploads[upload_id] = {"name": name, "type": ctype, "done": False, "bytes": None}
        base = _base(request)
        return JSONResponse(
            {
                "upload_url": f"{base}/_uploads/{upload_id}?sig={self.state.sign(upload_id)}",
                "file_url": f"{base}/files/uploads/{upload_id}/{name}",
            }
        )


def _media(state: _State, req: _Request, name: str) -> tuple[bytes, str]:
    key = f"{req.id}/{name}"
    with state.lock:
        cached = state.media.get(key)
    if req.model.kind == "image":
        if cached is None:
            cached = png_bytes(f"{req.size[0]}:{req.size[1]}", key, black=req.outcome.nsfw)
            with state.lock:
                state.media[key] = cached
        return cached, "image/png"
    if state.video_bytes is not None:
        return state.video_bytes, "video/mp4"
    return video_file(f"{req.size[0]}:{req.size[1]}", req.duration or 5).read_bytes(), "video/mp4"


def _fault_response(state: _State, fault: int | str) -> Response:
    with state.lock:
        state.faults[str(fault) if fault != "reset-before" else "reset"] += 1
        value = retry_after_value(state.config.retry_after)
        shed = state.config.retry_after_on_503
    if isinstance(fault, str):
        return Dropped()
    if fault == 429:
        return JSONResponse({"detail": "Too many requests"}, status_code=429, headers={"Retry-After": value})
    if fault == 503 and shed:
        return JSONResponse(
            {"detail": "Service unavailable"}, status_code=503, headers={"Retry-After": value}
        )
    return JSONResponse({"detail": "Service unavailable"}, status_code=fault)


# ------------------------------------------------------------------------------------------------- the app


@dataclass
class _Holder:
    state: _State


def build_app(holder: _Holder) -> Any:
    """The ASGI app. Handlers look the state up per request, so :meth:`FakeFal.reset` can swap in a fresh one."""

    async def api(request: Request) -> Response:
        state = holder.state
        method, path = request.method, request.url.path
        queue = _QUEUE_PATH.fullmatch(path)
        create = method == "POST" and queue is None and path != "/storage/upload/initiate"
        with state.lock:  # every request received counts, faulted or not
            state.requests += 1
            if method == "POST":
                state.posts[path] += 1
            if queue is not None:
                request_id, op = queue.group("id"), queue.group("op")
                if method == "GET" and op == "/status":
                    state.polls[request_id] += 1
                    state.poll_times[request_id].append(time.monotonic())
                elif method == "GET" and op is None:
                    state.results[request_id] += 1
                elif method == "PUT" and op == "/cancel":
                    state.cancels += 1
        fault = state.pick_fault(method, path, create=create, api=True)
        then_fail = fault if isinstance(fault, str) and fault.startswith("create-then-") else None
        after = then_fail is not None or (
            fault == "reset" and ((create and state.config.reset_after_create) or method != "POST")
        )
        if fault is not None and not after:
            return _fault_response(state, fault)
        api_ = _Api(state)
        try:
            api_.authorize(request)
            response = await _route(api_, request, method, path, queue, create)
        except _HTTPError as exc:
            with state.lock:
                state.rejections[str(exc.status)] += 1
            response = JSONResponse(exc.body, status_code=exc.status)
        if create and response.status_code == 200 and state.config.create_answer_delay:
            await asyncio.sleep(state.config.create_answer_delay)
        if then_fail is not None:
            if response.status_code != 200:
                return response  # refused (validation, lock): nothing was queued, the refusal stands
            with state.lock:
                state.faults[then_fail] += 1
            if then_fail == "create-then-reset":
                return Dropped()
            status = int(then_fail.rsplit("-", 1)[1])
            return JSONResponse(
                {"detail": "upstream failure"}, status_code=status
            )  # a gateway: no Retry-After
        if after:
            with state.lock:
                state.faults["reset"] += 1
            return Dropped()
        return response

    async def _route(
        api_: _Api, request: Request, method: str, path: str, queue: re.Match[str] | None, create: bool
    ) -> Response:
        if queue is not None:
            app, request_id, op = queue.group("app"), queue.group("id"), queue.group("op")
            if method == "GET" and op == "/status":
                return await api_.status(request, app, request_id)
            if method == "GET" and op is None:
                return await api_.result(request, app, request_id)
            if method == "PUT" and op == "/cancel":
                return await api_.cancel(request, app, request_id)
            raise _HTTPError(405, {"detail": "Method Not Allowed"})
        if method != "POST":
            raise _HTTPError(404, {"detail": "Not Found"})
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise _HTTPError(
                422, {"detail": [_issue(["body"], "JSON decode error", "json_invalid")]}
            ) from None
        if path == "/storage/upload/initiate":
            return await api_.upload_initiate(request, body)
        refusal = api_.state.config.refuse_creates
        if create and refusal is not None:
            with api_.state.lock:
                api_.state.faults[f"refused-{refusal}"] += 1
                value = retry_after_value(api_.state.config.retry_after)
            detail = "Too many requests" if refusal == 429 else "Service unavailable"
            return JSONResponse({"detail": detail}, status_code=refusal, headers={"Retry-After": value})
        return await api_.submit(request, path.strip("/"), body)

    async def upload_target(request: Request) -> Response:
        state = holder.state
        upload_id = request.path_params["upload_id"]
        with state.lock:
            state.requests += 1
            upload = state.uploads.get(upload_id)
        if "authorization" in request.headers:
            with state.lock:
                state.keys_sent_to_outputs += 1
            return JSONResponse({"detail": "Only one auth mechanism allowed"}, status_code=400)
        signed = hmac.compare_digest(request.query_params.get("sig", ""), state.sign(upload_id))
        if upload is None or not signed:
            return JSONResponse({"detail": "Access denied"}, status_code=403)
        data = await request.body()
        if not data:
            return JSONResponse({"detail": "Empty body"}, status_code=400)
        with state.lock:
            upload.update(done=True, bytes=data)
            state.uploads_completed += 1
        return Response(status_code=200)

    async def files(request: Request) -> Response:
        state = holder.state
        with state.lock:
            state.requests += 1
            state.downloads += 1
        if "authorization" in request.headers:
            with state.lock:
                state.keys_sent_to_outputs += 1
            return JSONResponse({"detail": "Only one auth mechanism allowed"}, status_code=400)
        parts = request.path_params["path"].split("/")
        if parts[0] == "uploads" and len(parts) == 3:
            with state.lock:
                upload = state.uploads.get(parts[1])
            if upload is None or not upload["done"] or upload["name"] != parts[2]:
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            return Response(upload["bytes"], media_type=upload["type"])
        if parts[0] != "out" or len(parts) != 3:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        now = time.monotonic()
        state.advance(now)
        with state.lock:
            req = state.requests_by_id.get(parts[1])
            if req is None or state.state(req, now) != "SUCCEEDED" or parts[2] not in _names(req):
                return JSONResponse({"detail": "Not Found"}, status_code=404)
            if now > req.end() + state.config.output_ttl:
                state.expired_downloads += 1
                return JSONResponse({"detail": "Not Found"}, status_code=404)
        fault = state.pick_fault("GET", request.url.path, create=False, api=False)
        if isinstance(fault, int):
            return _fault_response(state, fault)
        redirect = state.config.output_redirect
        if redirect and (redirect == "loop" or "hop" not in request.query_params):
            with state.lock:
                state.faults["redirect"] += 1
            return Response(status_code=302, headers={"Location": redirect_target(request, redirect)})
        body, media = await asyncio.to_thread(_media, state, req, parts[2])
        if state.config.output_delay:
            await asyncio.sleep(state.config.output_delay)
        if fault is not None:
            with state.lock:
                state.faults["reset"] += 1
            return Dropped(partial=body, media_type=media)
        mode = state.config.output_body
        if mode != "ok":
            with state.lock:
                state.faults[f"output-{mode}"] += 1
        return output_response(body, media, mode, state.config.oversize_bytes)

    async def stats(request: Request) -> Response:
        return JSONResponse(holder.state.stats())

    async def config(request: Request) -> Response:
        state = holder.state
        try:
            state.configure(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(dataclasses.asdict(state.config) | {"credit_balance": state.credit_balance})

    async def reset(request: Request) -> Response:
        holder.state.reset_counters()
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/_fake/stats", stats, methods=["GET"]),
            Route("/_fake/config", config, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
            Route("/_uploads/{upload_id}", upload_target, methods=["PUT"]),
            Route("/files/{path:path}", files, methods=["GET"]),
            Route("/{path:path}", api, methods=["GET", "POST", "PUT"]),
        ]
    )
    return keep_raw_channels(app)


def _names(req: _Request) -> set[str]:
    if req.model.kind == "image":
        return {f"image-{i}.png" for i in range(int(req.body.get("num_images", 1)))}
    return {"video.mp4"}


# ------------------------------------------------------------------------------------------------ server


class FakeFal(LoopbackServer):
    """The fake server, in a background thread (``start``/``stop`` or ``with``), on a free loopback port.

    Constructor keywords are :class:`FakeFalConfig` fields, plus ``credits`` (starting balance, in credits:
    1 credit = US$0.01) and ``video_bytes`` (serve these bytes for every video instead of making MP4s).

    Counters (attributes here, and ``GET /_fake/stats``): ``posts`` per path (every POST received, faulted or
    not), ``tasks_created`` per model, ``submissions`` per ``model|prompt|seed``, ``duplicate_submissions``
    (requests queued with a body identical to an earlier one's — the double billing a blind retry causes),
    ``polls`` per request id (every status GET) and ``poll_times``, ``results`` per request id, ``cancels``,
    ``tasks_by_status``, ``faults`` by kind, ``keys_sent_to_outputs`` (output or upload requests that carried an
    ``Authorization`` header: refused, and counted), ``credit_balance``, ``credits_spent``, ``charges`` (credits
    billed per request id) and ``max_running`` (the most requests in progress at one instant, account-wide).
    """

    def __init__(
        self,
        *,
        credits: float = 100_000,
        video_bytes: bytes | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: bool = False,
        **config: Any,
    ) -> None:
        self._credits, self._video_bytes = credits, video_bytes
        self._holder = _Holder(_State(FakeFalConfig(**config), credits, video_bytes))
        super().__init__(lambda: build_app(self._holder), name="fake-fal", host=host, port=port, tls=tls)

    @property
    def _state(self) -> _State:
        return self._holder.state

    @property
    def config(self) -> FakeFalConfig:
        return self._holder.state.config

    # -- control

    def reset(self, *, credits: float | None = None, video_bytes: bytes | None = None, **config: Any) -> None:
        """Forget every request, upload, counter and setting: as good as a new server, without the restart.
        Keywords as for the constructor."""
        self._holder.state = _State(
            FakeFalConfig(**config),
            self._credits if credits is None else credits,
            self._video_bytes if video_bytes is None else video_bytes,
        )

    def configure(self, **changes: Any) -> None:
        """Change config fields at run time (also ``credit_balance=``)."""
        self._state.configure(changes)

    def fail_next(self, method: str, path_prefix: str, *faults: int | str) -> None:
        """Script the next requests matching ``METHOD path_prefix``: HTTP statuses (429 carries Retry-After; 503
        does when ``retry_after_on_503``), ``"reset"`` (drop the connection; after queueing the request for a
        submit) or ``"reset-before"``, or ``"create-then-500|502|503|504|reset"`` (queue the request, then answer
        that status without Retry-After, or drop the connection)."""
        self._state.script(method, path_prefix, *faults)

    def reset_counters(self) -> None:
        self._state.reset_counters()

    # -- counters

    def stats(self) -> dict[str, Any]:
        return self._state.stats()

    @property
    def posts(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.posts)

    @property
    def duplicate_submissions(self) -> int:
        return self._state.duplicate_submissions

    @property
    def submissions(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.submissions)

    @property
    def polls(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.polls)

    @property
    def cancels(self) -> int:
        return self._state.cancels

    @property
    def faults(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.faults)

    @property
    def tasks_by_status(self) -> dict[str, int]:
        return self._state.tasks_by_status()

    @property
    def credit_balance(self) -> float:
        self._state.advance(time.monotonic())
        return self._state.credit_balance

    @property
    def credits_spent(self) -> float:
        self._state.advance(time.monotonic())
        return self._state.credits_spent

    @property
    def charges(self) -> dict[str, float]:
        """Credits billed per request id (requests that succeeded; failed and cancelled ones cost nothing)."""
        self._state.advance(time.monotonic())
        with self._state.lock:
            return dict(self._state.charges)

    @property
    def max_running(self) -> int:
        return self._state.max_running()

    def task_bodies(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """``(request id, model id, request body)`` of every request queued, oldest first."""
        with self._state.lock:
            reqs = sorted(self._state.requests_by_id.values(), key=lambda r: r.seq)
        for r in reqs:
            yield r.id, r.model.model_id, r.body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_fal",
        description="A fake fal.ai queue API on loopback; prints its base URL.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=FakeFalConfig.api_key)
    parser.add_argument("--credits", type=float, default=100_000)
    parser.add_argument("--image-latency", type=float, default=FakeFalConfig.image_latency)
    parser.add_argument("--video-latency", type=float, default=FakeFalConfig.video_latency)
    parser.add_argument("--concurrency", type=int, default=FakeFalConfig.concurrency)
    parser.add_argument("--output-ttl", type=float, default=FakeFalConfig.output_ttl)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    parser.add_argument("--rate-reset", type=float, default=0.0)
    parser.add_argument("--rate-queued", type=float, default=0.0)
    parser.add_argument("--queue-hold-s", type=float, default=FakeFalConfig.queue_hold_s)
    parser.add_argument("--retry-after", type=float, default=FakeFalConfig.retry_after)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video-file", type=Path, help="serve this MP4 for every video output")
    args = parser.parse_args(argv)
    config = FakeFalConfig(
        api_key=args.api_key,
        image_latency=args.image_latency,
        video_latency=args.video_latency,
        concurrency=args.concurrency,
        output_ttl=args.output_ttl,
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_reset=args.rate_reset,
        rate_queued=args.rate_queued,
        queue_hold_s=args.queue_hold_s,
        retry_after=args.retry_after,
        seed=args.seed,
    )
    video = args.video_file.read_bytes() if args.video_file else None
    serve(
        build_app(_Holder(_State(config, args.credits, video))), args.host, args.port
    )  # SIGINT/SIGTERM stop it


if __name__ == "__main__":
    main()


def point_pipeline_at(
    fake: FakeFal, key: str, root: Path, monkeypatch: Any, *, poll_seconds: float | None = None
) -> None:
    """Point the pipeline's adapters in this process at ``fake`` (the ``fal_default`` connection, its extras making
    retries fast) and at local storage under ``root``, as Airflow would through its env vars; ``poll_seconds``
    sets the poll interval Variable. ``monkeypatch`` is pytest's fixture, which undoes all of it after the test."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_FAL_DEFAULT",
        json.dumps(
            {
                "conn_type": "http",
                "host": fake.base_url,
                "password": key,
                "extra": {"max_retries": 3, "backoff_base": 0.01, "backoff_cap": 1.0, "timeout": 10},
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", root.as_uri())
    if poll_seconds is not None:
        monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_POLL_SECONDS", str(poll_seconds))
