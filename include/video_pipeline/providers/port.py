"""The provider port: what the pipeline asks of a remote (paid, asynchronous) generator, and of a voice.

A remote provider is asynchronous: submit → provider task id → status until terminal → download the output
(at once: output URLs expire) → done. Everything the pipeline does around that — the exclusive record
before the POST, the credit reservation, resuming after a retry or restart, the cache, the deferral, the
salvage of stopped runs — is provider-neutral and lives outside this package; a provider module only
answers the questions below. Local providers (storyboard) keep the simpler :class:`~.base.LocalProvider`.

Errors cross the port as :class:`ProviderError` with an :class:`Action`: the operators act on the action,
never on a provider's own exception types or codes.

A *voice* (:class:`SpeechProvider`) turns a segment's narration into speech: synchronously, on this machine
(the offline engine) or with one POST to a paid API. It says which models, voices, languages and speeds it
takes, prices a request, and returns the audio with when each word is spoken (:class:`Speech`).

Credits are one currency for every provider, so one budget covers a job whose stages use different ones:
**1 credit = US$0.01** (Runway's own credit; a provider priced in dollars converts ×100).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from video_pipeline.layout import CacheKind
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.words import WordTiming

Stage = Literal["images", "clips"]


# ------------------------------------------------------------------------------------------ error taxonomy


class Action(StrEnum):
    """What the pipeline does about a provider error."""

    #: Repeating the request fails the same way (validation, auth, safety, invalid asset): fail the segment.
    FAIL = "fail"
    #: Nothing was created, or the task is still recorded and resumable: let Airflow retry the task.
    RETRY = "retry"
    #: The provider task failed on the provider's side or its output is gone: submit anew (paid again).
    RESUBMIT = "resubmit"
    #: The model made an unusable output: submit anew with another seed.
    RESEED = "reseed"
    #: The account cannot pay (credits or balance exhausted): stop the whole job — or use the stage's fallback.
    STOP_JOB = "stop_job"
    #: The provider or model is down or over its quota: use the stage's fallback, else retry later.
    UNAVAILABLE = "unavailable"
    #: A task-creating request may have created (and billed) a task, or not: never resubmitted automatically.
    AMBIGUOUS = "ambiguous"


#: Actions after which a stage's fallback provider is used instead (when the stage has one).
FALLBACK_ACTIONS = frozenset({Action.STOP_JOB, Action.UNAVAILABLE})


class ProviderError(Exception):
    """An error from a provider, classified. Messages never contain keys, headers or signed URLs.

    :param message: what happened, for people.
    :param action: what the pipeline does about it (defaults to the class's ``action``).
    :param provider: the provider's registry name.
    :param status_code: the HTTP status, when the error is an HTTP answer.
    :param code: the provider's own failure code, when it gave one.
    :param task_id: the provider task concerned, when there is one.
    """

    #: A class's default; an instance may refine it (a transient error on a creating POST is ``UNAVAILABLE``).
    action: Action = Action.RETRY

    def __init__(
        self,
        message: str,
        *,
        action: Action | None = None,
        provider: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        task_id: str | None = None,
    ) -> None:
        super().__init__(message)
        if action is not None:
            self.action = action
        self.provider = provider
        self.status_code = status_code
        self.code = code
        self.task_id = task_id

    @property
    def unknown_task(self) -> bool:
        """The provider does not know the task (any more): 404 or 410 on a task's own URL."""
        return self.status_code in (404, 410)


# ------------------------------------------------------------------------------------------------- status


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})


class RemoteStatus(BaseModel):
    """A provider task's state, provider-neutral and JSON-safe (it crosses the trigger's event).

    It never holds output URLs: they are signed, and the triggerer logs every event. The task asks for them
    (:meth:`RemoteClient.outputs`) right before downloading.
    """

    model_config = ConfigDict(extra="ignore")

    provider: str
    task_id: str
    state: TaskState
    #: The provider's own state name (``THROTTLED``, ``IN_QUEUE``, …), for logs and messages.
    detail: str = ""
    progress: float | None = None
    queue_position: int | None = None
    #: When failed or cancelled: what happened, the provider's code, and the action it calls for.
    error: str | None = None
    code: str | None = None
    action: Action | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    def failure(self) -> ProviderError | None:
        """The error a failed or cancelled task stands for (``None`` while running or after success)."""
        if self.state == TaskState.CANCELLED:
            return ProviderError(
                f"{self.provider} task {self.task_id} was cancelled",
                action=Action.FAIL,  # cancelled by a person or by us: resubmitting would override that
                provider=self.provider,
                task_id=self.task_id,
            )
        if self.state != TaskState.FAILED:
            return None
        return ProviderError(
            f"{self.provider} task {self.task_id} failed ({self.code or 'no failure code'})"
            + (f": {self.error}" if self.error else ""),
            action=self.action or Action.RESUBMIT,
            provider=self.provider,
            code=self.code,
            task_id=self.task_id,
        )


# ------------------------------------------------------------------------------------------- models, prices


@dataclass(frozen=True)
class ModelSpec:
    """One model a provider offers for one stage, and what it accepts.

    :param name: the model's name in a job spec (``image_model`` / ``video_model``).
    :param stage: ``images`` or ``clips``.
    :param ratios: the job ratios (``W:H``) it can make; ``None``: every job ratio.
    :param durations: for clips, the clip lengths (s) it makes; a segment gets the shortest one at least as long
        as it asked for (:meth:`clip_duration`).
    :param notes: a line for the README's table (prices, limits).
    """

    name: str
    stage: Stage
    ratios: frozenset[str] | None = None
    durations: tuple[int, ...] = ()
    notes: str = ""

    def clip_duration(self, wanted: int) -> int:
        """The clip length to ask for a segment of ``wanted`` seconds (``ValueError`` when it cannot)."""
        if not self.durations:
            return wanted
        ordered = sorted(self.durations)
        at = bisect.bisect_left(ordered, wanted)
        if at == len(ordered):
            raise ValueError(
                f"{self.name} makes clips of at most {ordered[-1]} s; a segment asks for {wanted} s"
            )
        return ordered[at]

    def check_ratio(self, ratio: str) -> None:
        if self.ratios is not None and ratio not in self.ratios:
            raise ValueError(f"{self.name} cannot make {ratio}; it makes {', '.join(sorted(self.ratios))}")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach a provider (from an Airflow connection): base URL, key, extras."""

    base_url: str | None
    api_key: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # the key stays out of reprs (and so out of logs and tracebacks)
        return f"Endpoint(base_url={self.base_url!r}, api_key='***')"


@dataclass(frozen=True)
class SourceImage:
    """The approved image a clip is made from: a local copy, and a short-lived https link to it when the
    storage is reachable from the internet (the provider may fetch it instead of receiving the bytes)."""

    path: Path
    url: str | None = None


# ---------------------------------------------------------------------------------------------- protocols


@runtime_checkable
class RemoteClient(Protocol):
    """A blocking client (workers submit, fetch outputs and cancel with it). A context manager."""

    def __enter__(self) -> RemoteClient: ...

    def __exit__(self, *exc: object) -> None: ...

    def submit_image(self, request: ImageRequest) -> str:
        """Create a billed image task; returns its provider task id. Raises :class:`ProviderError`
        (``AMBIGUOUS`` when the request may have created a task: never retried blindly)."""
        ...

    def submit_clip(self, request: ClipRequest, image: SourceImage) -> str:
        """Create a billed clip task from an image; returns its provider task id."""
        ...

    def status(self, task_id: str) -> RemoteStatus: ...

    def outputs(self, task_id: str) -> list[str]:
        """The output URLs of a succeeded task (signed: never log them)."""
        ...

    def download(self, url: str, dest: Path, *, kind: CacheKind) -> Path:
        """Stream an output into ``dest``, never a partial file; redirects and size checked
        (:class:`~video_pipeline.outputs.OutputRejected`). ``ProviderError(action=RESUBMIT)`` when expired."""
        ...

    def cancel(self, task_id: str) -> bool:
        """Cancel a task; ``False`` when the provider no longer knows it."""
        ...


@runtime_checkable
class AsyncRemoteClient(Protocol):
    """A non-blocking client (the triggerer polls with it). An async context manager."""

    async def __aenter__(self) -> AsyncRemoteClient: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def status(self, task_id: str) -> RemoteStatus: ...

    async def cancel(self, task_id: str) -> bool: ...


@runtime_checkable
class RemoteProvider(Protocol):
    """A remote provider family as the registry holds it.

    :param name: the registry name a job spec uses (``provider``).
    :param conn_id: the Airflow connection it reads its URL and key from by default.
    :param default_base_url: the API's base URL when the connection names none.
    :param models: every model it offers, by name.
    :param default_models: the model a stage uses when the spec names none.
    :param concurrency: provider tasks in flight at once per stage that the account allows (pool sizes).
    :param min_poll_s: the shortest poll interval the provider asks for.
    """

    # Read-only properties, so a frozen dataclass or plain class attributes satisfy the protocol.
    @property
    def name(self) -> str: ...

    @property
    def conn_id(self) -> str: ...

    @property
    def default_base_url(self) -> str: ...

    @property
    def models(self) -> Mapping[str, ModelSpec]: ...

    @property
    def default_models(self) -> Mapping[Stage, str]: ...

    @property
    def concurrency(self) -> Mapping[Stage, int]: ...

    @property
    def min_poll_s(self) -> float: ...

    def estimate(self, request: ImageRequest | ClipRequest) -> float:
        """Credits (1 credit = US$0.01) the request will cost; ``ValueError`` for an unknown model."""
        ...

    def client(self, endpoint: Endpoint) -> RemoteClient: ...

    def async_client(self, endpoint: Endpoint) -> AsyncRemoteClient: ...


# ------------------------------------------------------------------------------------------------- speech


class SpeechRequest(BaseModel):
    """One narration to speak, with every choice resolved (no provider defaults left to apply)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    model: str
    voice: str
    language: str
    speed: float

    def cache_fields(self, provider: str) -> dict[str, Any]:
        """Everything that determines the audio (the content-addressed cache key)."""
        return {"provider": provider, **self.model_dump(mode="json")}


class Speech(BaseModel):
    """A spoken narration: the audio file, where speech starts and ends in it, and when each word is said
    (seconds from the start of the file). ``timings`` says where the word times come from: the provider's
    own alignment, the offline engine's word events, or the engine's events stretched onto this audio."""

    model_config = ConfigDict(frozen=True)

    path: Path
    duration_s: float
    speech_start_s: float
    speech_end_s: float
    words: list[WordTiming]
    timings: Literal["provider", "engine", "estimated"]

    @property
    def spoken_s(self) -> float:
        return round(self.speech_end_s - self.speech_start_s, 3)


@runtime_checkable
class SpeechProvider(Protocol):
    """A voice as the registry holds it.

    :param name: the registry name a job spec's ``voice.provider`` uses.
    :param conn_id: the Airflow connection with its URL and key; ``None``: it runs on this machine, no key.
    :param default_base_url: the API's base URL when the connection names none (``None`` for a local one).
    :param models: every model it offers, with a line for the README's table (prices, limits).
    :param default_model: the model a spec that names none gets.
    :param default_voice: the voice a spec that names none gets.
    :param default_language: the language a spec that names none gets.
    :param speeds: the lowest and highest speed it takes (1 = the voice's normal pace).
    :param concurrency: requests in flight at once the account allows (the narration pool's size).
    """

    @property
    def name(self) -> str: ...

    @property
    def conn_id(self) -> str | None: ...

    @property
    def default_base_url(self) -> str | None: ...

    @property
    def models(self) -> Mapping[str, str]: ...

    @property
    def default_model(self) -> str: ...

    @property
    def default_voice(self) -> str: ...

    @property
    def default_language(self) -> str: ...

    @property
    def speeds(self) -> tuple[float, float]: ...

    @property
    def concurrency(self) -> int: ...

    def check(self, request: SpeechRequest) -> None:
        """``ValueError`` naming what the provider does not take (model, voice, language, speed, text)."""
        ...

    def estimate(self, request: SpeechRequest) -> float:
        """Credits (1 credit = US$0.01) the request costs; 0 for a local voice."""
        ...

    def synthesize(self, request: SpeechRequest, dest_dir: Path, endpoint: Endpoint | None) -> Speech:
        """Speak the request into a new file in ``dest_dir``. A paid voice sends one billed POST and never
        repeats it once it may have reached the server: :class:`ProviderError` with ``AMBIGUOUS`` then."""
        ...
