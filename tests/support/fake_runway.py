"""A fake Runway developer API (2024-11-06) over real HTTP on loopback, for tests and benchmarks.

It behaves like the real service where the pipeline can tell the difference: the same endpoints, headers,
validation and error bodies; tasks that move THROTTLED → PENDING → RUNNING → SUCCEEDED/FAILED by wall clock
under a per-model concurrency limit; presigned output URLs that expire; credits that run out. On top of that
it injects faults (429 with Retry-After, 5xx, dropped connections, extra THROTTLED time) from a seeded RNG or
from an explicit script, and counts everything a test wants to assert on.

In process::

    with FakeRunway(api_key="k", image_latency=0.2) as fake:
        client = RunwayClient(fake.base_url, "k")
        ...
        assert fake.duplicate_submissions == 0

As a process (benchmarks, real-Airflow e2e tests) — prints the base URL on stdout, then serves::

    python -m tests.support.fake_runway --port 0 --image-latency 2 --video-latency 5 --concurrency 2

Counters are also served at ``GET /_fake/stats``; ``POST /_fake/config`` changes the configuration at run time
(JSON object of :class:`FakeRunwayConfig` fields, plus ``credit_balance`` and ``fail_next``) and
``POST /_fake/reset`` clears the counters.

Output downloads can misbehave on request (``output_body``: an HTML page served with 200, a truncated file, an
oversized body with or without Content-Length; ``output_redirect``: a same-host hop, an https → http downgrade,
a redirect loop or any absolute URL such as the cloud metadata address), and ``FakeRunway(tls=True)`` serves
https with a self-signed certificate (``fake.ssl_context()`` trusts it) so scheme rules can be exercised.

"Create then fail" (``fail_next(..., "create-then-502")`` or ``rate_create_then_fail``) makes a task-creating
POST create, count and bill the task and only then answer 500/502/503/504 or drop the connection: what a
gateway in front of a real backend can do, and what a client must not retry.

Prompt markers make failures deterministic: ``[fail:CODE]`` fails every task with that prompt with
``failureCode`` CODE (``[fail:]`` fails without a code), ``[fail-once:CODE]`` only the first submission of
that exact prompt, ``[fail-3:CODE]`` the first three; ``[latency:0.5]`` overrides the task's latency.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import hmac
import itertools
import json
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
    s3_error,
    serve,
    video_file,
)

API_VERSION = "2024-11-06"
STATUSES = ("PENDING", "THROTTLED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
IMAGE_MODELS = ("gen4_image", "gen4_image_turbo")
VIDEO_MODELS = ("gen4_turbo", "gen4.5")
RETIRED_MODELS = ("gen3a_turbo", "gen3a", "gen2")
IMAGE_RATIOS = {
    "1920:1080": "1080p",
    "1080:1920": "1080p",
    "1024:1024": "1080p",
    "1280:720": "720p",
    "720:1280": "720p",
}
VIDEO_RATIOS = ("1280:720", "720:1280", "1104:832", "832:1104", "960:960", "1584:672")
DATA_URI_MAX = 5_000_000
#: The POSTs that create (and bill) a task.
CREATE_PATHS = ("/v1/text_to_image", "/v1/image_to_video")
CREATE_THEN_FAIL = (
    "create-then-500",
    "create-then-502",
    "create-then-503",
    "create-then-504",
    "create-then-reset",
)
MAX_SEED = 4_294_967_295
NOT_ENOUGH_CREDITS = "You do not have enough credits to run this task."
#: The fake's own price list, kept apart from the client's on purpose: a test comparing the client's
#: estimate with what the fake charged then catches either side drifting.
PRICES: dict[str, dict[str, float]] = {
    "gen4_image": {"720p": 5, "1080p": 8},
    "gen4_image_turbo": {"720p": 2, "1080p": 2},
    "gen4_turbo": {"per_second": 5},
    "gen4.5": {"per_second": 12},
}
_MARKER = re.compile(r"\[fail(?:-(once|\d+))?:([A-Za-z0-9_.]*)\]")
_LATENCY = re.compile(r"\[latency:([0-9.]+)\]")


@dataclass
class FakeRunwayConfig:
    """Everything adjustable; change at run time with :meth:`FakeRunway.configure` or ``/_fake/config``."""

    api_key: str = "fake-runway-key"
    image_latency: float = 0.5
    video_latency: float = 1.0
    #: Fraction of a task's latency spent PENDING before RUNNING.
    pending_fraction: float = 0.1
    #: maxConcurrentGenerations: one number for every model, or per model (missing models get 2).
    concurrency: int | dict[str, int] = 2
    max_daily_generations: int = 200
    output_ttl: float = 3600.0
    #: Fault rates (0..1) per request to the paths in ``fault_paths``, drawn from an RNG seeded with ``seed``.
    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_reset: float = 0.0
    #: Fraction of new tasks held THROTTLED for ``throttle_s`` even with a free slot.
    rate_throttled: float = 0.0
    throttle_s: float = 1.0
    #: Seconds sent in Retry-After; a string is sent as it is (for clients' parsers: "nan", a date, garbage).
    retry_after: float | str = 1.0
    seed: int = 0
    fault_paths: tuple[str, ...] = ("/v1/",)
    #: A dropped connection on a task-creating POST happens after the task was created (and billed): the
    #: case a client must not retry blindly.
    reset_after_create: bool = True
    #: Limit dropped connections to these path prefixes (e.g. polls only); ``None``: every fault path.
    reset_paths: tuple[str, ...] | None = None
    #: Seconds an output download waits before its body is sent (a slow CDN; a window to kill a client in).
    output_delay: float = 0.0
    #: 503 answers carry ``Retry-After`` (``retry_after`` seconds), as a server shedding load does.
    retry_after_on_503: bool = False
    #: Statuses a random 5xx fault draws from on the task-creating POSTs (answered before anything is
    #: created); empty: no 5xx there.
    create_5xx_statuses: tuple[int, ...] = (500, 502, 503, 504)
    #: Fraction of task-creating POSTs that create (and bill) the task, then answer 500/502/504 or drop the
    #: connection (drawn after the other fault rates).
    rate_create_then_fail: float = 0.0
    #: Seconds a task-creating POST waits after creating the task before it answers (a slow gateway: a client
    #: whose read timeout is shorter gives up on a task that exists).
    create_answer_delay: float = 0.0
    #: What output downloads serve: one of ``OUTPUT_BODIES``.
    output_body: str = "ok"
    #: Body size of the ``oversized`` outputs.
    oversize_bytes: int = 2_000_000
    #: Output downloads first answer 302 to: ``same-host`` (this output on this server, one hop), ``downgrade``
    #: (the same URL over http://, one hop), ``loop`` (itself, forever) or any absolute URL.
    output_redirect: str | None = None

    def __post_init__(self) -> None:
        if self.output_body not in OUTPUT_BODIES:
            raise ValueError(f"output_body must be one of {OUTPUT_BODIES}: {self.output_body!r}")


@dataclass
class _Task:
    id: str
    seq: int
    kind: str  # image | video
    model: str
    body: dict[str, Any]
    created: float  # time.monotonic()
    created_wall: datetime
    eligible: float
    latency: float
    price: float
    ratio: str
    duration: int | None
    fail_code: str | None = None
    fail: bool = False
    started: float | None = None
    ends: float | None = None
    cancelled_at: float | None = None  # deleted while active (frees its slot)
    deleted: bool = False
    cancelled_visible: bool = False  # cancelled "from the dashboard": GET shows CANCELLED

    def end(self) -> float:
        assert self.ends is not None
        return self.ends if self.cancelled_at is None else min(self.ends, self.cancelled_at)


class _HTTPError(Exception):
    def __init__(self, status: int, error: str, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if issues:
            self.body["issues"] = issues


def _issue(path: Iterable[str | int], message: str) -> dict[str, Any]:
    return {"path": list(path), "message": message}


# ------------------------------------------------------------------------------------------------- state


class _State:
    """All fake-server state; every method takes the lock (the server thread and tests share it)."""

    def __init__(self, config: FakeRunwayConfig, credits: float, video_bytes: bytes | None) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.rng = random.Random(config.seed)
        self.secret = secrets.token_bytes(16)
        self.video_bytes = video_bytes
        self.credit_balance = float(credits)
        self.tasks: dict[str, _Task] = {}
        self.seq = itertools.count()
        self.uploads: dict[str, dict[str, Any]] = {}
        self.valid_runway_uris: set[str] = set()
        self.prompt_submissions: Counter[str] = Counter()
        self.daily: Counter[str] = Counter()
        self.scripted: dict[tuple[str, str], deque[int | str]] = defaultdict(deque)
        self.images: dict[str, bytes] = {}
        self.reset_counters()

    def reset_counters(self) -> None:
        with self.lock:
            self.requests = 0
            self.posts: Counter[str] = Counter()
            self.created: Counter[str] = Counter()
            self.bodies: Counter[str] = Counter()
            self.duplicate_submissions = 0
            self.polls: Counter[str] = Counter()
            self.poll_times: dict[str, list[float]] = defaultdict(list)
            self.deletes = 0
            self.faults: Counter[str] = Counter()
            self.rejections: Counter[str] = Counter()
            self.downloads = 0
            self.expired_downloads = 0
            self.uploads_completed = 0
            self.credits_spent = 0.0

    # -- configuration

    def configure(self, changes: Mapping[str, Any]) -> None:
        names = {f.name for f in dataclasses.fields(FakeRunwayConfig)}
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

    def limit(self, model: str) -> int:
        c = self.config.concurrency
        return c if isinstance(c, int) else int(c.get(model, 2))

    # -- faults

    def pick_fault(self, method: str, path: str) -> int | str | None:
        with self.lock:
            for (m, prefix), queue in self.scripted.items():
                if queue and m == method and path.startswith(prefix):
                    return queue.popleft()
            cfg = self.config
            if not any(path.startswith(p) for p in cfg.fault_paths):
                return None
            create = method == "POST" and path in CREATE_PATHS
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

    # -- scheduler

    def advance(self, now: float) -> None:
        """Give free concurrency slots to waiting tasks, FIFO per model, at the instant each slot freed.

        Start times are exact (not "when somebody polled"), so the lifecycle is a pure function of wall
        clock: a task's slot frees at its end; the next eligible waiting task starts at
        max(its eligible time, that end).
        """
        with self.lock:
            by_model: dict[str, list[_Task]] = defaultdict(list)
            for t in self.tasks.values():
                by_model[t.model].append(t)
            for model, tasks in by_model.items():
                limit = self.limit(model)
                started = [t for t in tasks if t.started is not None]
                waiting = sorted(
                    (t for t in tasks if t.started is None and t.cancelled_at is None),
                    key=lambda t: (t.eligible, t.seq),
                )
                # FIFO: nobody starts before the task started last, which also keeps the search short.
                floor = max((t.started for t in started if t.started is not None), default=-math.inf)
                for task in waiting:
                    start = earliest_slot(started, max(task.eligible, floor), limit)
                    if start > now:
                        break  # nobody behind it can start earlier
                    task.started = floor = start
                    task.ends = start + task.latency
                    started.append(task)

    def status(self, task: _Task, now: float) -> str:
        if task.cancelled_visible:
            return "CANCELLED"
        if task.started is None:
            return "THROTTLED"
        assert task.ends is not None
        if now < task.ends:
            return (
                "PENDING" if now - task.started < task.latency * self.config.pending_fraction else "RUNNING"
            )
        return "FAILED" if task.fail else "SUCCEEDED"

    def progress(self, task: _Task, now: float) -> float:
        assert task.started is not None
        pending = task.latency * self.config.pending_fraction
        running = max(task.latency - pending, 1e-9)
        return round(min(max((now - task.started - pending) / running, 0.0), 0.99), 2)

    def max_running(self) -> dict[str, int]:
        """Per model, the most tasks that held a slot at the same instant (from exact start/end times)."""
        with self.lock:
            intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
            for t in self.tasks.values():
                if t.started is not None:
                    intervals[t.model].append((t.started, t.end()))
            return {model: peak_concurrency(spans) for model, spans in intervals.items()}

    def tasks_by_status(self) -> dict[str, int]:
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            counts: Counter[str] = Counter()
            for t in self.tasks.values():
                counts["DELETED" if t.deleted else self.status(t, now)] += 1
            return {s: counts.get(s, 0) for s in (*STATUSES, "DELETED")}

    # -- tasks

    def create(self, kind: str, body: dict[str, Any]) -> _Task:
        model = body["model"]
        ratio = body["ratio"]
        duration = body.get("duration", 10) if kind == "video" else None
        price = _price(model, ratio, duration)
        prompt = body.get("promptText") or ""
        with self.lock:
            if price > self.credit_balance:
                raise _HTTPError(400, NOT_ENOUGH_CREDITS)
            self.credit_balance -= price
            self.credits_spent += price
            self.prompt_submissions[prompt] += 1
            nth = self.prompt_submissions[prompt]
            cfg = self.config
            latency = cfg.image_latency if kind == "image" else cfg.video_latency
            if m := _LATENCY.search(prompt):
                latency = float(m.group(1))
            now = time.monotonic()
            eligible = now
            if cfg.rate_throttled and self.rng.random() < cfg.rate_throttled:
                eligible += cfg.throttle_s
                self.faults["throttled"] += 1
            task = _Task(
                id=str(uuid.uuid4()),
                seq=next(self.seq),
                kind=kind,
                model=model,
                body=body,
                created=now,
                created_wall=datetime.now(UTC),
                eligible=eligible,
                latency=latency,
                price=price,
                ratio=ratio,
                duration=duration,
            )
            if marker := _MARKER.search(prompt):
                times, code = marker.groups()
                limit = math.inf if times is None else 1 if times == "once" else int(times)
                if nth <= limit:
                    task.fail, task.fail_code = True, code or None
            canonical = json.dumps(body, sort_keys=True)
            if self.bodies[canonical]:
                self.duplicate_submissions += 1
            self.bodies[canonical] += 1
            self.created[model] += 1
            self.daily[model] += 1
            self.tasks[task.id] = task
            self.advance(now)
            return task

    def get(self, task_id: str) -> _Task:
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.deleted:
                raise _HTTPError(404, "Task not found")
            return task

    def delete(self, task_id: str) -> None:
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            task = self.get(task_id)
            if self.status(task, now) in ("PENDING", "THROTTLED", "RUNNING"):
                task.cancelled_at = now
            task.deleted = True
            self.advance(now)

    def cancel_externally(self, task_id: str) -> None:
        """As if cancelled in Runway's dashboard: the task stays visible with status CANCELLED."""
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            task = self.get(task_id)
            if task.cancelled_at is None:
                task.cancelled_at = now
            task.cancelled_visible = True
            self.advance(now)

    def task_json(self, task: _Task, base_url: str) -> dict[str, Any]:
        now = time.monotonic()
        self.advance(now)
        with self.lock:
            status = self.status(task, now)
            data: dict[str, Any] = {
                "id": task.id,
                "status": status,
                "createdAt": task.created_wall.isoformat().replace("+00:00", "Z"),
            }
            if status == "RUNNING":
                data["progress"] = self.progress(task, now)
            elif status == "SUCCEEDED":
                ext = "png" if task.kind == "image" else "mp4"
                data["output"] = [f"{base_url}/outputs/{task.id}.{ext}?sig={self.sign(task.id)}"]
            elif status == "FAILED":
                data["failure"] = f"Generation failed ({task.fail_code or 'unknown reason'})"
                if task.fail_code:
                    data["failureCode"] = task.fail_code
            return data

    def sign(self, task_id: str) -> str:
        return hmac.new(self.secret, task_id.encode(), hashlib.sha256).hexdigest()[:32]

    # -- stats

    def stats(self) -> dict[str, Any]:
        by_status = self.tasks_by_status()
        with self.lock:
            gaps = [b - a for times in self.poll_times.values() for a, b in itertools.pairwise(times)]
            return {
                "requests": self.requests,
                "posts": dict(self.posts),
                "tasks_created": dict(self.created),
                "duplicate_submissions": self.duplicate_submissions,
                "polls": dict(self.polls),
                "min_poll_interval_s": min(gaps) if gaps else None,
                "deletes": self.deletes,
                "tasks_by_status": by_status,
                "faults": dict(self.faults),
                "rejections": dict(self.rejections),
                "downloads": self.downloads,
                "expired_downloads": self.expired_downloads,
                "uploads_completed": self.uploads_completed,
                "credit_balance": self.credit_balance,
                "credits_spent": self.credits_spent,
                "max_running": self.max_running(),
            }


def _price(model: str, ratio: str, duration: int | None) -> float:
    prices = PRICES[model]
    if "per_second" in prices:
        return prices["per_second"] * (duration or 0)
    return prices[IMAGE_RATIOS[ratio]]


# ---------------------------------------------------------------------------------------------- validation


def _check_keys(body: dict[str, Any], allowed: set[str], issues: list[dict[str, Any]]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        issues.append(_issue([], "Unrecognized key(s) in object: " + ", ".join(f"'{k}'" for k in extra)))


def _check_prompt(body: dict[str, Any], issues: list[dict[str, Any]], *, required: bool) -> None:
    value = body.get("promptText")
    if value is None:
        if required:
            issues.append(_issue(["promptText"], "Required"))
    elif not isinstance(value, str) or not value.strip():
        issues.append(_issue(["promptText"], "Expected a non-empty string"))
    elif len(value) > 1000:
        issues.append(_issue(["promptText"], "String must contain at most 1000 character(s)"))


def _check_seed(body: dict[str, Any], issues: list[dict[str, Any]]) -> None:
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        issues.append(_issue(["seed"], f"Expected an integer between 0 and {MAX_SEED}"))


def _check_enum(body: dict[str, Any], key: str, allowed: Iterable[str], issues: list[dict[str, Any]]) -> bool:
    value = body.get(key)
    options = list(allowed)
    if value is None:
        issues.append(_issue([key], "Required"))
        return False
    if value not in options:
        expected = " | ".join(f"'{o}'" for o in options)
        issues.append(_issue([key], f"Invalid enum value. Expected {expected}, received {value!r}"))
        return False
    return True


class _Api:
    """The HTTP surface: request → state → JSON, mirroring the real API's checks and answers."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def check_uri(self, value: Any, path: list[str | int], issues: list[dict[str, Any]]) -> None:
        if not isinstance(value, str):
            issues.append(_issue(path, "Expected a string URI"))
        elif value.startswith("https://"):
            if len(value) <= len("https://") or value[len("https://")] == "/":
                issues.append(_issue(path, "Invalid URL"))
        elif value.startswith("data:"):
            if not re.match(r"data:image/(png|jpeg|jpg|webp|gif);base64,", value):
                issues.append(_issue(path, "Data URI must be a base64-encoded image"))
            elif len(value) > DATA_URI_MAX:
                issues.append(_issue(path, f"Data URI exceeds the maximum size of {DATA_URI_MAX} bytes"))
        elif value.startswith("runway://"):
            with self.state.lock:
                if value not in self.state.valid_runway_uris:
                    issues.append(_issue(path, "Unknown or incomplete upload (runway:// URI)"))
        else:
            issues.append(_issue(path, "Must be an HTTPS URL, a data URI or a runway:// URI"))

    def validate_model(
        self, body: dict[str, Any], models: tuple[str, ...], issues: list[dict[str, Any]]
    ) -> bool:
        model = body.get("model")
        if model in RETIRED_MODELS:
            issues.append(_issue(["model"], f"Model '{model}' has been retired"))
            return False
        return _check_enum(body, "model", models, issues)

    def validate_text_to_image(self, body: dict[str, Any]) -> None:
        issues: list[dict[str, Any]] = []
        _check_keys(
            body, {"model", "promptText", "ratio", "referenceImages", "seed", "contentModeration"}, issues
        )
        model_ok = self.validate_model(body, IMAGE_MODELS, issues)
        _check_prompt(body, issues, required=True)
        _check_enum(body, "ratio", IMAGE_RATIOS, issues)
        _check_seed(body, issues)
        refs = body.get("referenceImages")
        if refs is not None:
            if not isinstance(refs, list) or len(refs) > 3:
                issues.append(_issue(["referenceImages"], "Expected at most 3 reference images"))
            else:
                for i, ref in enumerate(refs):
                    if not isinstance(ref, dict) or "uri" not in ref:
                        issues.append(_issue(["referenceImages", i], "Expected {uri, tag?}"))
                    else:
                        self.check_uri(ref["uri"], ["referenceImages", i, "uri"], issues)
        if model_ok and body["model"] == "gen4_image_turbo" and not refs:
            issues.append(
                _issue(["referenceImages"], "gen4_image_turbo requires at least one reference image")
            )
        if issues:
            raise _HTTPError(400, "Validation of body failed", issues)

    def validate_image_to_video(self, body: dict[str, Any]) -> None:
        issues: list[dict[str, Any]] = []
        _check_keys(
            body,
            {"model", "promptImage", "promptText", "ratio", "duration", "seed", "contentModeration"},
            issues,
        )
        model_ok = self.validate_model(body, VIDEO_MODELS, issues)
        _check_prompt(body, issues, required=model_ok and body["model"] == "gen4.5")
        _check_enum(body, "ratio", VIDEO_RATIOS, issues)
        _check_seed(body, issues)
        duration = body.get("duration")
        if duration is None:
            if model_ok and body["model"] == "gen4.5":
                issues.append(_issue(["duration"], "Required"))
        elif isinstance(duration, bool) or not isinstance(duration, int) or not 2 <= duration <= 10:
            issues.append(_issue(["duration"], "Expected an integer between 2 and 10"))
        image = body.get("promptImage")
        if image is None:
            issues.append(_issue(["promptImage"], "Required"))
        elif isinstance(image, list):
            if not 1 <= len(image) <= 2:
                issues.append(_issue(["promptImage"], "Expected 1 or 2 images"))
            for i, item in enumerate(image):
                if not isinstance(item, dict) or item.get("position") not in ("first", "last"):
                    issues.append(_issue(["promptImage", i], "Expected {uri, position: first|last}"))
                else:
                    self.check_uri(item.get("uri"), ["promptImage", i, "uri"], issues)
        else:
            self.check_uri(image, ["promptImage"], issues)
        if issues:
            raise _HTTPError(400, "Validation of body failed", issues)

    # -- endpoints (each returns a JSON-able body or raises _HTTPError)

    async def text_to_image(self, request: Request, body: dict[str, Any]) -> Response:
        self.validate_text_to_image(body)
        task = self.state.create("image", body)
        return JSONResponse({"id": task.id})

    async def image_to_video(self, request: Request, body: dict[str, Any]) -> Response:
        self.validate_image_to_video(body)
        task = self.state.create("video", body)
        return JSONResponse({"id": task.id})

    async def create_upload(self, request: Request, body: dict[str, Any]) -> Response:
        issues: list[dict[str, Any]] = []
        _check_keys(body, {"filename", "type"}, issues)
        filename = body.get("filename")
        if not isinstance(filename, str) or not filename or "/" in filename:
            issues.append(_issue(["filename"], "Expected a file name"))
        _check_enum(body, "type", ("ephemeral",), issues)
        if issues:
            raise _HTTPError(400, "Validation of body failed", issues)
        upload_id = uuid.uuid4().hex
        fields = {
            "key": f"uploads/{upload_id}/{filename}",
            "policy": secrets.token_hex(8),
            "x-amz-signature": hmac.new(self.state.secret, upload_id.encode(), "sha256").hexdigest(),
        }
        runway_uri = f"runway://uploads/{upload_id}"
        with self.state.lock:
            self.state.uploads[upload_id] = {"fields": fields, "uri": runway_uri, "done": False}
        return JSONResponse(
            {"uploadUrl": f"{_base(request)}/_uploads/{upload_id}", "fields": fields, "runwayUri": runway_uri}
        )

    async def get_task(self, request: Request, task_id: str) -> Response:
        task = self.state.get(task_id)
        return JSONResponse(self.state.task_json(task, _base(request)))

    async def delete_task(self, request: Request, task_id: str) -> Response:
        self.state.delete(task_id)
        return Response(status_code=204)

    async def organization(self, request: Request) -> Response:
        state = self.state
        with state.lock:
            models = sorted({*IMAGE_MODELS, *VIDEO_MODELS, *state.daily})
            return JSONResponse(
                {
                    "creditBalance": state.credit_balance,
                    "tier": {
                        "maxMonthlyCreditSpend": 100_000,
                        "models": {
                            m: {
                                "maxConcurrentGenerations": state.limit(m),
                                "maxDailyGenerations": state.config.max_daily_generations,
                            }
                            for m in models
                        },
                    },
                    "usage": {"models": {m: {"dailyGenerations": state.daily[m]} for m in models}},
                }
            )


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


# ------------------------------------------------------------------------------------------------- the app


@dataclass
class _Holder:
    state: _State


def build_app(holder: _Holder) -> Any:
    """The ASGI app: Starlette routes wrapped in a layer that keeps the server's raw send/receive.

    Handlers look the state up per request, so :meth:`FakeRunway.reset` can swap in a fresh one.
    """

    async def guarded(request: Request, handler: str, *args: Any, create: bool = False) -> Response:
        state = holder.state
        method, path = request.method, request.url.path
        with state.lock:
            state.requests += 1
            if method == "POST":
                state.posts[path] += 1
        fault = state.pick_fault(method, path)
        then_fail = fault if isinstance(fault, str) and fault.startswith("create-then-") else None
        after = then_fail is not None or (
            fault == "reset" and ((create and state.config.reset_after_create) or method != "POST")
        )
        if fault is not None and not after:
            return _fault_response(state, fault)
        try:
            _authorize(state, request)
            if method == "POST":
                try:
                    body = json.loads(await request.body() or b"null")
                except ValueError:
                    raise _HTTPError(400, "Invalid JSON body") from None
                if not isinstance(body, dict):
                    raise _HTTPError(400, "Expected a JSON object body")
                response: Response = await getattr(_Api(state), handler)(request, body, *args)
            else:
                response = await getattr(_Api(state), handler)(request, *args)
        except _HTTPError as exc:
            with state.lock:
                state.rejections[str(exc.status)] += 1
            response = JSONResponse(exc.body, status_code=exc.status)
        if create and response.status_code == 200 and state.config.create_answer_delay:
            await asyncio.sleep(state.config.create_answer_delay)
        if then_fail is not None:
            if response.status_code != 200:
                return response  # refused (validation, credits): nothing was created, the refusal stands
            with state.lock:
                state.faults[then_fail] += 1
            if then_fail == "create-then-reset":
                return Dropped()
            status = int(then_fail.rsplit("-", 1)[1])
            return JSONResponse(
                {"error": "upstream failure"}, status_code=status
            )  # a gateway: no Retry-After
        if after:
            with state.lock:
                state.faults["reset"] += 1
            return Dropped()
        return response

    async def text_to_image(request: Request) -> Response:
        return await guarded(request, "text_to_image", create=True)

    async def image_to_video(request: Request) -> Response:
        return await guarded(request, "image_to_video", create=True)

    async def uploads(request: Request) -> Response:
        return await guarded(request, "create_upload")

    async def task(request: Request) -> Response:
        state = holder.state
        task_id = request.path_params["task_id"]
        if request.method == "DELETE":
            with state.lock:
                state.deletes += 1
            return await guarded(request, "delete_task", task_id)
        with state.lock:
            state.polls[task_id] += 1
            state.poll_times[task_id].append(time.monotonic())
        return await guarded(request, "get_task", task_id)

    async def organization(request: Request) -> Response:
        return await guarded(request, "organization")

    async def upload_target(request: Request) -> Response:
        state = holder.state
        with state.lock:
            state.requests += 1
            state.posts["/_uploads"] += 1
            upload = state.uploads.get(request.path_params["upload_id"])
        if "authorization" in request.headers:
            return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        if upload is None:
            return s3_error(404, "NoSuchUpload", "Unknown upload")
        form = await request.form()
        try:
            for key, value in upload["fields"].items():
                if form.get(key) != value:
                    return s3_error(403, "AccessDenied", f"Invalid policy field {key}")
            file = form.get("file")
            if file is None or isinstance(file, str) or not await file.read():
                return s3_error(400, "InvalidArgument", "POST requires exactly one file upload per request")
        finally:
            await form.close()
        with state.lock:
            upload["done"] = True
            state.valid_runway_uris.add(upload["uri"])
            state.uploads_completed += 1
        return Response(status_code=204)

    async def output(request: Request) -> Response:
        state = holder.state
        with state.lock:
            state.requests += 1
            state.downloads += 1
        name = request.path_params["name"]
        task_id, _, ext = name.rpartition(".")
        if "authorization" in request.headers:
            return s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        now = time.monotonic()
        state.advance(now)
        with state.lock:
            task = state.tasks.get(task_id)
            ok = (
                task is not None
                and hmac.compare_digest(request.query_params.get("sig", ""), state.sign(task_id))
                and state.status(task, now) == "SUCCEEDED"
                and ext == ("png" if task.kind == "image" else "mp4")
            )
            if not ok or task is None:
                return s3_error(403, "AccessDenied", "Access Denied")
            assert task.ends is not None
            if now > task.ends + state.config.output_ttl:
                state.expired_downloads += 1
                return s3_error(403, "AccessDenied", "Request has expired")
            fault = state.pick_fault("GET", request.url.path)
        if isinstance(fault, int):
            return _fault_response(state, fault)
        redirect = state.config.output_redirect
        if redirect and (redirect == "loop" or "hop" not in request.query_params):
            with state.lock:
                state.faults["redirect"] += 1
            return Response(status_code=302, headers={"Location": redirect_target(request, redirect)})
        body, media = await _output_bytes(state, task)
        if state.config.output_delay:
            await asyncio.sleep(state.config.output_delay)
        if fault is not None:
            with state.lock:
                state.faults["reset"] += 1
            return Dropped(partial=body, media_type=media)
        return _output_response(state, body, media)

    async def stats(request: Request) -> Response:
        state = holder.state
        return JSONResponse(state.stats())

    async def config(request: Request) -> Response:
        state = holder.state
        try:
            state.configure(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(dataclasses.asdict(state.config) | {"credit_balance": state.credit_balance})

    async def reset(request: Request) -> Response:
        state = holder.state
        state.reset_counters()
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/v1/text_to_image", text_to_image, methods=["POST"]),
            Route("/v1/image_to_video", image_to_video, methods=["POST"]),
            Route("/v1/uploads", uploads, methods=["POST"]),
            Route("/v1/tasks/{task_id}", task, methods=["GET", "DELETE"]),
            Route("/v1/organization", organization, methods=["GET"]),
            Route("/_uploads/{upload_id}", upload_target, methods=["POST"]),
            Route("/outputs/{name}", output, methods=["GET"]),
            Route("/_fake/stats", stats, methods=["GET"]),
            Route("/_fake/config", config, methods=["POST"]),
            Route("/_fake/reset", reset, methods=["POST"]),
        ]
    )

    return keep_raw_channels(app)


def _authorize(state: _State, request: Request) -> None:
    if request.headers.get("authorization") != f"Bearer {state.config.api_key}":
        raise _HTTPError(401, "Unauthorized: missing or invalid API key")
    version = request.headers.get("x-runway-version")
    if version is None:
        raise _HTTPError(400, "The X-Runway-Version header is required")
    if version != API_VERSION:
        raise _HTTPError(400, f"Unsupported X-Runway-Version {version!r}")


def _fault_response(state: _State, fault: int | str) -> Response:
    with state.lock:
        state.faults[str(fault) if fault != "reset-before" else "reset"] += 1
        retry_after = state.config.retry_after
    if isinstance(fault, str):
        return Dropped()
    value = retry_after_value(retry_after)
    if fault == 429:
        return JSONResponse({"error": "Too many requests"}, status_code=429, headers={"Retry-After": value})
    if fault == 503 and state.config.retry_after_on_503:
        return JSONResponse(
            {"error": "Service temporarily unavailable"}, status_code=503, headers={"Retry-After": value}
        )
    return JSONResponse({"error": "Service temporarily unavailable"}, status_code=fault)


def _output_response(state: _State, body: bytes, media: str) -> Response:
    """An output as ``output_body`` says: the file itself, or one of the broken answers a CDN can give."""
    mode = state.config.output_body
    if mode != "ok":
        with state.lock:
            state.faults[f"output-{mode}"] += 1
    return output_response(body, media, mode, state.config.oversize_bytes)


async def _output_bytes(state: _State, task: _Task) -> tuple[bytes, str]:
    if task.kind == "image":
        with state.lock:
            cached = state.images.get(task.id)
        if cached is None:
            cached = await asyncio.to_thread(png_bytes, task.ratio, task.id)
            with state.lock:
                state.images[task.id] = cached
        return cached, "image/png"
    if state.video_bytes is not None:
        return state.video_bytes, "video/mp4"
    path = await asyncio.to_thread(video_file, task.ratio, task.duration or 10)
    return path.read_bytes(), "video/mp4"


# ------------------------------------------------------------------------------------------------ server


class FakeRunway(LoopbackServer):
    """The fake server, in a background thread (``start``/``stop`` or ``with``), on a free loopback port.

    Constructor keywords are :class:`FakeRunwayConfig` fields, plus ``credits`` (starting balance) and
    ``video_bytes`` (serve these bytes for every video instead of generating MP4s with ffmpeg).

    Counters (attributes here, and ``GET /_fake/stats``): ``posts`` per path (every POST received, faulted
    or not), ``duplicate_submissions`` (tasks created from a body identical to an earlier task's — the
    double billing a blind retry causes), ``polls`` per task id (every GET received) and ``poll_times``,
    ``deletes``, ``tasks_by_status`` (plus ``DELETED``), ``faults`` by kind, ``credit_balance``,
    ``credits_spent`` and ``max_running`` (per model, the most tasks holding a slot at one instant).
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
        self._holder = _Holder(_State(FakeRunwayConfig(**config), credits, video_bytes))
        super().__init__(lambda: build_app(self._holder), name="fake-runway", host=host, port=port, tls=tls)

    @property
    def _state(self) -> _State:
        return self._holder.state

    @property
    def config(self) -> FakeRunwayConfig:
        return self._holder.state.config

    # -- control

    def reset(self, *, credits: float | None = None, video_bytes: bytes | None = None, **config: Any) -> None:
        """Forget every task, upload, counter and setting: as good as a new server, without the restart
        (a shared server plus ``reset`` keeps a test suite fast). Keywords as for the constructor."""
        self._holder.state = _State(
            FakeRunwayConfig(**config),
            self._credits if credits is None else credits,
            self._video_bytes if video_bytes is None else video_bytes,
        )

    def configure(self, **changes: Any) -> None:
        """Change config fields at run time (also ``credit_balance=``)."""
        self._state.configure(changes)

    def fail_next(self, method: str, path_prefix: str, *faults: int | str) -> None:
        """Script the next requests matching ``METHOD path_prefix``: HTTP statuses (429 carries Retry-After; 503
        does when ``retry_after_on_503``), ``"reset"`` (drop the connection; after creating the task for a create
        POST) or ``"reset-before"``, or ``"create-then-500|502|503|504|reset"`` (do the work — create and bill the
        task — then answer that status, without Retry-After, or drop the connection)."""
        self._state.script(method, path_prefix, *faults)

    def cancel_externally(self, task_id: str) -> None:
        self._state.cancel_externally(task_id)

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
    def polls(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.polls)

    @property
    def poll_times(self) -> dict[str, list[float]]:
        with self._state.lock:
            return {k: list(v) for k, v in self._state.poll_times.items()}

    @property
    def deletes(self) -> int:
        return self._state.deletes

    @property
    def tasks_by_status(self) -> dict[str, int]:
        return self._state.tasks_by_status()

    @property
    def faults(self) -> Counter[str]:
        with self._state.lock:
            return Counter(self._state.faults)

    @property
    def credit_balance(self) -> float:
        return self._state.credit_balance

    @property
    def credits_spent(self) -> float:
        return self._state.credits_spent

    @property
    def max_running(self) -> dict[str, int]:
        return self._state.max_running()

    def task_bodies(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(task id, request body)`` of every task created, oldest first."""
        with self._state.lock:
            tasks = sorted(self._state.tasks.values(), key=lambda t: t.seq)
        for t in tasks:
            yield t.id, t.body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.fake_runway",
        description="A fake Runway API on loopback; prints its base URL.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=FakeRunwayConfig.api_key)
    parser.add_argument("--credits", type=float, default=100_000)
    parser.add_argument("--image-latency", type=float, default=FakeRunwayConfig.image_latency)
    parser.add_argument("--video-latency", type=float, default=FakeRunwayConfig.video_latency)
    parser.add_argument(
        "--concurrency", default="2", help="maxConcurrentGenerations: N for every model, or model=N,model=N"
    )
    parser.add_argument("--output-ttl", type=float, default=FakeRunwayConfig.output_ttl)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-5xx", type=float, default=0.0)
    parser.add_argument("--rate-reset", type=float, default=0.0)
    parser.add_argument("--rate-throttled", type=float, default=0.0)
    parser.add_argument("--throttle-s", type=float, default=FakeRunwayConfig.throttle_s)
    parser.add_argument("--retry-after", type=float, default=FakeRunwayConfig.retry_after)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video-file", type=Path, help="serve this MP4 for every video output")
    args = parser.parse_args(argv)

    concurrency: int | dict[str, int]
    if "=" in args.concurrency:
        concurrency = {k: int(v) for k, v in (item.split("=", 1) for item in args.concurrency.split(","))}
    else:
        concurrency = int(args.concurrency)
    config = FakeRunwayConfig(
        api_key=args.api_key,
        image_latency=args.image_latency,
        video_latency=args.video_latency,
        concurrency=concurrency,
        output_ttl=args.output_ttl,
        rate_429=args.rate_429,
        rate_5xx=args.rate_5xx,
        rate_reset=args.rate_reset,
        rate_throttled=args.rate_throttled,
        throttle_s=args.throttle_s,
        retry_after=args.retry_after,
        seed=args.seed,
    )
    video = args.video_file.read_bytes() if args.video_file else None
    state = _State(config, args.credits, video)
    serve(build_app(_Holder(state)), args.host, args.port)  # SIGINT/SIGTERM stop it


if __name__ == "__main__":
    main()


def point_pipeline_at(
    fake: FakeRunway, key: str, root: Path, monkeypatch: Any, *, poll_seconds: float | None = None
) -> None:
    """Point the pipeline's adapters in this process at ``fake`` (the ``runway_default`` connection) and at
    local storage under ``root``, as Airflow would through its env vars; ``poll_seconds`` sets the poll interval
    Variable. ``monkeypatch`` is pytest's fixture, which undoes all of it after the test."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT",
        json.dumps({"conn_type": "http", "host": fake.base_url, "password": key}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", root.as_uri())
    if poll_seconds is not None:
        monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_POLL_SECONDS", str(poll_seconds))
