"""The pipeline's data contracts: job spec in, manifest out.

Everything that crosses a process boundary (DAG params, XCom, storage) is one of these models, serialised
with ``model_dump(mode="json")``. Validation errors name the field (pydantic's ``loc``), which is what users
see when a spec is refused.

The spec models are strict: JSON types only, no coercion (``true`` is not a number, ``"4"`` is not a
duration). Every way in delivers JSON types: the trigger form sends numbers from its number fields, REST and
the CLI send the conf's JSON, the nightly inbox parses JSON files.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from video_pipeline.media.audio_track import AUDIO_DEMUXERS, demuxer_for

if TYPE_CHECKING:
    from video_pipeline.providers.port import SpeechRequest

#: Job ratios: ones every image-to-video model of the registry takes (or says it does not, per model:
#: ``ModelSpec.ratios``), so a job never needs re-framing between stages.
RATIOS: dict[str, tuple[int, int]] = {
    "1280:720": (1280, 720),
    "720:1280": (720, 1280),
    "960:960": (960, 960),
    "1104:832": (1104, 832),
    "832:1104": (832, 1104),
    "1584:672": (1584, 672),
}
Ratio = Literal["1280:720", "720:1280", "960:960", "1104:832", "832:1104", "1584:672"]
#: Provider and model names: checked against the registry (``video_pipeline.providers.registry``).
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")]
ApprovalMode = Literal["both", "images", "clips", "none"]
Stage = Literal["images", "clips"]
#: The stages that spend: narration (a paid voice) and the two gated ones.
SpendStage = Literal["narration", "images", "clips"]
VoiceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
LanguageCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8}){0,3}$")]

JOB_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
#: An Airflow connection id as a job may name one (escalate_to).
CONN_ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,249}$"
MAX_REMINDERS = 10
DEFAULT_MAX_SEGMENTS = 500
MAX_SEGMENTS_ENV = "VIDEO_PIPELINE_MAX_SEGMENTS"
MIN_DURATION_S = 2
MAX_DURATION_S = 10

MAX_PROMPT_CHARS = 1000
MAX_NARRATION_CHARS = 2000
#: Candidates a stage may make per segment (``takes``): the reviewer picks one at the gate.
MAX_TAKES = 4
Takes = Annotated[int, Field(ge=1, le=MAX_TAKES)]

#: Letters that draw nothing (Hangul fillers, the blank Braille pattern): a "prompt" of them is empty.
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


#: Unicode categories that draw nothing on their own: controls (Cc), format characters (Cf: zero-width
#: space/joiners U+200B–U+200D, word joiner U+2060, BOM U+FEFF, bidi marks, soft hyphen), separators (Z*) and
#: combining marks (M*, nothing without a base letter).
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Mc", "Me"})


def is_invisible(char: str) -> bool:
    return char.isspace() or char in BLANK_LETTERS or unicodedata.category(char) in INVISIBLE_CATEGORIES


def has_visible_text(text: str) -> bool:
    return any(not is_invisible(c) for c in text)


def _visible(value: str) -> str:
    if not has_visible_text(value):
        raise ValueError(
            "must contain visible characters (whitespace and zero-width characters do not count)"
        )
    return value


def _visible_or_none(value: str | None) -> str | None:
    """Optional text that shows nothing (empty, whitespace, zero-width) is the same as no text."""
    return value if value is not None and has_visible_text(value) else None


Prompt = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT_CHARS),
    AfterValidator(_visible),
]
OptionalText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)]
DurationS = Annotated[int, Field(ge=MIN_DURATION_S, le=MAX_DURATION_S)]
#: A segment's length: whole seconds, or ``"auto"``: as long as its narration is spoken, plus the voice's pad.
AUTO = "auto"
#: Strict models: JSON types only (see the module docstring).
SPEC_CONFIG = ConfigDict(extra="forbid", strict=True)


def max_segments(info: ValidationInfo | None = None) -> int:
    """The segment cap: validation context ``max_segments`` > env ``VIDEO_PIPELINE_MAX_SEGMENTS`` > 500."""
    if info is not None and isinstance(info.context, dict) and "max_segments" in info.context:
        return int(info.context["max_segments"])
    return int(os.environ.get(MAX_SEGMENTS_ENV, DEFAULT_MAX_SEGMENTS))


def utcnow() -> datetime:
    return datetime.now(UTC)


class SegmentSpec(BaseModel):
    """One segment as the user writes it."""

    model_config = SPEC_CONFIG

    prompt: Prompt = Field(description="What the image shows (1–1000 characters).")
    motion_prompt: OptionalText | None = Field(
        default=None, description="How the clip moves; defaults to the prompt."
    )
    narration: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_NARRATION_CHARS)] | None
    ) = Field(default=None, description="Text spoken (by the job's voice) and captioned over this segment.")
    duration_s: DurationS | Literal["auto"] = Field(
        default=5,
        description=(
            'Clip length in seconds (2–10), or "auto": as long as the narration is spoken plus the voice\'s '
            "pad (needs narration)."
        ),
    )

    @field_validator("motion_prompt", "narration")
    @classmethod
    def _invisible_is_none(cls, value: str | None) -> str | None:
        return _visible_or_none(value)

    @model_validator(mode="after")
    def _auto_needs_narration(self) -> SegmentSpec:
        if self.duration_s == AUTO and self.narration is None:
            raise ValueError('duration_s "auto" follows the narration: give the segment a narration')
        return self


MAX_TRANSITION_S = MIN_DURATION_S / 2


def _relative_key(value: str | None) -> str | None:
    """A storage key: a relative POSIX path without empty, '.' or '..' parts (as ``storage.check_key``)."""
    if value is None:
        return value
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in {"", ".", ".."} for p in parts):
        raise ValueError("must be a relative storage key like 'assets/music.mp3' (no '..', no leading '/')")
    return value


class Finishing(BaseModel):
    """How the clips become the finished video. The defaults give a stream-copied join with soft subtitles
    (when any segment has narration), a poster and a GIF preview."""

    model_config = SPEC_CONFIG

    transition_s: float = Field(
        default=0.0,
        ge=0,
        le=MAX_TRANSITION_S,
        description=(
            "Crossfade between segments, in seconds (0 = hard cuts; at most 1). Only the transition windows "
            "are re-encoded; each transition overlaps two segments, so the video gets shorter by this much "
            "per transition."
        ),
    )
    subtitles: Literal["soft", "burned", "none"] = Field(
        default="soft",
        description=(
            "Captions from each segment's narration, timed to its segment: 'soft' = a subtitle track in the "
            "MP4 (players can switch it off), 'burned' = drawn into the picture (re-encodes the segments "
            "that have narration), 'none'. No narration, no captions."
        ),
    )
    audio_key: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] | None
    ) = Field(
        default=None,
        description=(
            f"Storage key of a narration or music file ({', '.join(sorted(AUDIO_DEMUXERS))}) under the "
            "storage root, mixed under the video, loudness-normalised, cut or padded with silence to the "
            "video's length."
        ),
    )
    loudness_lufs: float = Field(
        default=-16.0,
        ge=-40,
        le=-5,
        description="Integrated loudness of the audio track (EBU R128, LUFS): -16 for the web, -23 broadcast.",
    )
    poster: bool = Field(default=True, description="Store a JPEG poster frame next to final.mp4.")
    preview: Literal["gif", "webp", "none"] = Field(
        default="gif",
        description="Store a short animated preview (GIF or animated WebP) sampled across the whole video.",
    )
    preview_s: float = Field(
        default=4.0, ge=1, le=15, description="Length of the animated preview in seconds."
    )

    @field_validator("audio_key")
    @classmethod
    def _audio_key_is_relative_audio(cls, value: str | None) -> str | None:
        key = _relative_key(value)
        if key is not None:
            demuxer_for(key)  # the extension picks the only demuxer that will ever read it
        return key


#: The fields that hold a job's content; every other field of a spec is a setting.
CONTENT_FIELDS = frozenset({"script", "segments"})


def _default_provider() -> str:
    from video_pipeline.providers.registry import DEFAULT_PROVIDER  # the registry imports this module

    return DEFAULT_PROVIDER


class ProviderChoice(BaseModel):
    """A provider and one of its models (``None``: the provider's default for the stage)."""

    model_config = SPEC_CONFIG

    provider: ProviderName
    model: ModelName | None = None


class StageChoice(ProviderChoice):
    """What makes a stage's outputs, what takes over when it is unavailable or out of quota, and how many
    candidates (takes) it makes per segment."""

    fallback: ProviderChoice | None = Field(
        default=None, description="Used when the provider reports unavailability or exhausted quota."
    )
    takes: Takes = Field(
        default=1,
        description=f"Candidates per segment (1–{MAX_TAKES}), each paid; the reviewer picks one at the gate.",
    )


def _default_voice_provider() -> str:
    from video_pipeline.providers.registry import DEFAULT_SPEECH_PROVIDER  # the registry imports this module

    return DEFAULT_SPEECH_PROVIDER


#: ``voice.provider`` that turns the voice off.
NO_VOICE = "none"
MAX_LEAD_S = 2.0
MAX_TAIL_S = 3.0


class Voice(BaseModel):
    """Who speaks the narration, and the silence around it in a segment that follows its voice."""

    model_config = SPEC_CONFIG

    provider: ProviderName = Field(
        default_factory=lambda: _default_voice_provider(),
        description="The voice provider (README: Narration); the default is offline and free.",
    )
    model: ModelName | None = Field(default=None, description="The provider's model; its default if unset.")
    voice: VoiceName | None = Field(
        default=None, description="The provider's voice id; its default if unset."
    )
    language: LanguageCode | None = Field(
        default=None,
        description="Language of the narration (e.g. en-us, en-gb, es, de); the provider's default.",
    )
    speed: float = Field(default=1.0, ge=0.25, le=4.0, description="1 = the voice's normal pace.")
    lead_s: float = Field(
        default=0.25,
        ge=0,
        le=MAX_LEAD_S,
        description='Silence before the speech in a segment of "auto" length.',
    )
    tail_s: float = Field(
        default=0.5,
        ge=0,
        le=MAX_TAIL_S,
        description='Silence after the speech in a segment of "auto" length.',
    )

    @property
    def pad_s(self) -> float:
        return self.lead_s + self.tail_s

    @model_validator(mode="after")
    def _provider_takes_it(self) -> Voice:
        """The provider exists and takes the model, voice, language and speed: before any spend."""
        from video_pipeline.providers import registry  # the registry imports this module

        if self.provider not in registry.speech_names():
            raise ValueError(
                f"provider: no voice provider {self.provider!r}; known: {', '.join(registry.speech_names())}"
            )
        registry.speech(self.provider).check(self.request("check"))
        return self

    def request(self, text: str) -> SpeechRequest:
        """The narration ``text`` as a request with every choice resolved (``SpeechRequest``)."""
        from video_pipeline.providers import registry
        from video_pipeline.providers.port import SpeechRequest

        provider = registry.speech(self.provider)
        return SpeechRequest(
            text=text,
            model=self.model or provider.default_model,
            voice=self.voice or provider.default_voice,
            language=self.language or provider.default_language,
            speed=self.speed,
        )


class JobSettings(BaseModel):
    """How a job is made: everything in a job spec but its content (script or segments).

    Each segment's task gets these, not the whole spec: with the spec, each of the 2N mapped tasks would pull,
    render, store and validate all N segments, work that grows with N² over a job (rendered fields stored
    for a 100-segment run: 0.9 MiB with the spec, 0.2 MiB with the settings)."""

    model_config = SPEC_CONFIG

    job_id: str = Field(
        pattern=JOB_ID_PATTERN,
        description="Lower-case slug (a-z, 0-9, '-'), 1–63 characters; names the job's storage folder.",
    )
    title: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_visible)
    ] = Field(description="Human-readable title.")
    segment_duration_s: DurationS = Field(
        default=5, description="Target clip length when splitting a script (2–10 s)."
    )
    ratio: Ratio = Field(default="1280:720", description="Output frame, width:height.")
    provider: ProviderName = Field(
        default_factory=lambda: _default_provider(),
        description="The provider of both stages unless a stage names its own (README: Providers).",
    )
    image_model: ModelName | None = Field(
        default=None, description="Image model; the provider's default if unset."
    )
    video_model: ModelName | None = Field(
        default=None, description="Clip model; the provider's default if unset."
    )
    images: StageChoice | None = Field(
        default=None, description="The image stage's provider and model (and fallback), instead of the above."
    )
    clips: StageChoice | None = Field(
        default=None, description="The clip stage's provider and model (and fallback), instead of the above."
    )
    seed: int = Field(default=0, ge=0, le=4_294_967_295, description="Base seed; segment n uses seed + n.")
    takes: Takes = Field(
        default=1,
        description=(
            f"Candidates per segment (1–{MAX_TAKES}) at both stages, each paid; the reviewer picks one at the "
            "gate. A stage's own `takes` (in `images` / `clips`) wins."
        ),
    )
    budget_credits: int | None = Field(default=None, ge=0, description="Refuse to spend more than this.")
    approval: ApprovalMode = Field(default="both", description="Which stages wait for a reviewer.")
    gate_timeout: int = Field(
        default=86_400, ge=1, le=30 * 86_400, description="Seconds a gate waits for a decision."
    )
    on_gate_timeout: Literal["reject", "approve"] = Field(
        default="reject", description="What a gate does when nobody answers in time."
    )
    reminders: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.5, 0.9],
        max_length=MAX_REMINDERS,
        description=(
            "When a waiting gate reminds its reviewers (the notify connection), as fractions of gate_timeout "
            "(each between 0 and 1, exclusive)."
        ),
    )
    escalate_to: str | None = Field(
        default=None,
        pattern=CONN_ID_PATTERN,
        description=(
            "An Airflow connection (Apprise) told at the last reminder that a gate is about to time out; "
            "a connection id, never the target itself (targets hold tokens)."
        ),
    )
    max_redo_rounds: int = Field(default=3, ge=0, le=20)
    finishing: Finishing = Field(
        default_factory=Finishing,
        description="Transitions, subtitles, audio track, poster and preview of the finished video.",
    )
    voice: Voice | None = Field(
        default_factory=Voice,
        description=(
            'Who speaks each segment\'s narration (provider, voice, language, speed); {"provider": "none"} '
            "(or null): no voice, the narration is captioned only."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _voice_none_is_no_voice(cls, data: Any) -> Any:
        """``"voice": {"provider": "none"}`` is no voice: what a run's conf can say (Airflow lays a conf's null
        over the Param's default, so ``"voice": null`` only turns the voice off where a spec is read directly)."""
        if (
            isinstance(data, dict)
            and isinstance(data.get("voice"), dict)
            and data["voice"].get("provider") == NO_VOICE
        ):
            return {**data, "voice": None}
        return data

    @model_validator(mode="before")
    @classmethod
    def _takes_shorthand(cls, data: Any) -> Any:
        """A top-level ``takes`` applies to a stage object that gives none, so the resolved value travels with
        the stage (a dumped spec reads back the same)."""
        if not isinstance(data, dict) or "takes" not in data:
            return data
        takes = data["takes"]
        if not isinstance(takes, int) or isinstance(takes, bool):
            return data  # refused, with the top-level field named
        stages = {
            stage: {**data[stage], "takes": takes}
            for stage in ("images", "clips")
            if isinstance(data.get(stage), dict) and "takes" not in data[stage]
        }
        return {**data, **stages} if stages else data

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> JobSettings:
        """The settings of a job spec, or of settings alone (a spec's content is left out)."""
        return cls.model_validate({k: v for k, v in data.items() if k not in CONTENT_FIELDS})

    @field_validator("reminders")
    @classmethod
    def _reminders_in_order(cls, value: list[float]) -> list[float]:
        return sorted(set(value))

    @model_validator(mode="after")
    def _choices_exist(self) -> JobSettings:
        """Every provider and model the job names exists and makes the job's ratio (the clip lengths are checked
        per segment: ``clip_length``). Before any spend; the error names the field."""
        from video_pipeline.providers import registry  # the registry imports this module

        for stage in ("images", "clips"):
            own = self._stage_field(stage)
            shorthand = ProviderChoice.model_construct(provider=self.provider, model=self._model_field(stage))
            options: list[tuple[str, ProviderChoice | None]] = [("", own or shorthand)]
            options.append((".fallback", own.fallback if own else None))
            for suffix, option in options:
                if option is None:
                    continue
                provider, model = option.provider, option.model
                field = f"{stage}{suffix}" if own else "provider"
                if provider not in registry.names():
                    raise ValueError(
                        f"{field}: no provider {provider!r}; known: {', '.join(registry.names())}"
                    )
                if not own:
                    field = "image_model" if stage == "images" else "video_model"
                try:
                    registry.model_spec(provider, stage, model).check_ratio(self.ratio)
                except ValueError as exc:
                    raise ValueError(f"{field}: {exc}") from None
        return self

    def _model_field(self, stage: Stage) -> str | None:
        return self.image_model if stage == "images" else self.video_model

    def _stage_field(self, stage: Stage) -> StageChoice | None:
        return self.images if stage == "images" else self.clips

    def choice(self, stage: Stage) -> StageChoice:
        """The provider and model (resolved: never ``None``) a stage uses, and its fallback if any."""
        from video_pipeline.providers.registry import model_spec

        chosen = self._stage_field(stage) or StageChoice(
            provider=self.provider,
            model=self.image_model if stage == "images" else self.video_model,
            takes=self.takes,
        )
        resolved = chosen.model_copy(update={"model": model_spec(chosen.provider, stage, chosen.model).name})
        if chosen.fallback is not None:
            fallback = chosen.fallback
            fallback = fallback.model_copy(
                update={"model": model_spec(fallback.provider, stage, fallback.model).name}
            )
            resolved = resolved.model_copy(update={"fallback": fallback})
        return resolved

    def stage_takes(self, stage: Stage) -> int:
        """How many candidates the stage makes per segment: the stage's own ``takes``, else the job's."""
        own = self._stage_field(stage)
        return own.takes if own is not None else self.takes

    def clip_durations(self) -> tuple[int, ...]:
        """Clip lengths (s) every model of the clip stage (and its fallback) can make; empty: any 2–10 s."""
        from video_pipeline.providers.registry import model_spec

        choice = self.choice("clips")
        allowed = set(range(MIN_DURATION_S, MAX_DURATION_S + 1))
        for option in (choice, choice.fallback):
            if option is not None and (
                durations := model_spec(option.provider, "clips", option.model).durations
            ):
                allowed &= set(durations)
        return tuple(sorted(allowed))

    def longest_clip(self) -> int:
        """The longest clip every clip model of the job makes."""
        allowed = self.clip_durations()
        return allowed[-1] if allowed else MAX_DURATION_S

    def clip_length(self, wanted: int) -> int:
        """The clip length a segment of ``wanted`` seconds gets: the shortest one at least as long that every
        clip model of the job makes (``ValueError`` naming them when none does)."""
        allowed = self.clip_durations()
        longer = [d for d in allowed if d >= wanted]
        if not longer:
            choice = self.choice("clips")
            models = " and ".join(
                f"{o.provider} {o.model}" for o in (choice, choice.fallback) if o is not None
            )
            can = f"{', '.join(map(str, allowed))} s" if allowed else "no common length"
            raise ValueError(f"a {wanted}-s segment: {models} make clips of {can}")
        return longer[0]

    @property
    def resolution(self) -> tuple[int, int]:
        return RATIOS[self.ratio]

    def gated(self, stage: Stage) -> bool:
        return self.approval == "both" or self.approval == stage


class JobSpec(JobSettings):
    """A job: a script or explicit segments, and how to turn them into a video."""

    script: (
        Annotated[
            str,
            StringConstraints(strip_whitespace=True, min_length=1, max_length=100_000),
            AfterValidator(_visible),
        ]
        | None
    ) = Field(
        default=None,
        description=(
            "Plain text, split into segments on sentence boundaries (. ! ? …, and 。！？； in CJK text)."
        ),
    )
    segments: list[SegmentSpec] | None = Field(
        default=None, min_length=1, description="Explicit segments (instead of a script)."
    )

    @field_validator("segments")
    @classmethod
    def _segment_count(
        cls, value: list[SegmentSpec] | None, info: ValidationInfo
    ) -> list[SegmentSpec] | None:
        if value is None:
            return value
        cap = max_segments(info)
        if not 1 <= len(value) <= cap:
            raise ValueError(f"must have between 1 and {cap} segments, got {len(value)}")
        return value

    @model_validator(mode="after")
    def _script_xor_segments(self) -> JobSpec:
        if (self.script is None) == (self.segments is None):
            raise ValueError("give exactly one of 'script' or 'segments'")
        return self

    def settings(self) -> JobSettings:
        return JobSettings.of(self.model_dump())


class SegmentStatus(StrEnum):
    PENDING = "pending"
    IMAGE_READY = "image_ready"
    IMAGE_APPROVED = "image_approved"
    VIDEO_READY = "video_ready"
    VIDEO_APPROVED = "video_approved"
    FAILED = "failed"
    REJECTED = "rejected"


class VideoSegment(BaseModel):
    """A segment as the pipeline tracks it: 1-based ``index`` (what reviewers see and name in a redo).

    ``duration_s`` is the clip length asked of the clip model; a segment that follows its voice
    (``follows_voice``) is then fitted to exactly ``fitted_s`` in the video (its narration plus the voice's pad):
    the clip is trimmed, or its last frame held."""

    index: int = Field(ge=1)
    prompt: str
    motion_prompt: str | None = None
    narration: str | None = None
    duration_s: int
    seed: int
    follows_voice: bool = False
    fitted_s: float | None = Field(default=None, description="The segment's exact length in the video (s).")
    narration_key: str | None = Field(default=None, description="The spoken narration (audio).")
    narration_timing_key: str | None = Field(default=None, description="When each word is spoken (JSON).")
    narration_s: float | None = Field(default=None, description="How long the narration is spoken (s).")
    narration_provider: str | None = None
    narration_cache_hit: bool = False
    narration_started_at: datetime | None = None
    narration_finished_at: datetime | None = None
    status: SegmentStatus = SegmentStatus.PENDING
    image_key: str | None = None
    clip_key: str | None = None
    image_task_id: str | None = None
    clip_task_id: str | None = None
    image_provider: str | None = Field(default=None, description="The provider that made the image.")
    image_model: str | None = None
    clip_provider: str | None = Field(default=None, description="The provider that made the clip.")
    clip_model: str | None = None
    image_cache_hit: bool = False
    clip_cache_hit: bool = False
    credits: float = 0.0
    image_started_at: datetime | None = None
    image_finished_at: datetime | None = None
    clip_started_at: datetime | None = None
    clip_finished_at: datetime | None = None
    image_takes: list[str] = Field(
        default_factory=list,
        description="Every take's image key, take 1 first (empty with one take); image_key is the picked one.",
    )
    clip_takes: list[str] = Field(
        default_factory=list,
        description="Every take's clip key, take 1 first (empty with one take); clip_key is the picked one.",
    )
    image_pick: int = Field(default=1, ge=1, le=MAX_TAKES, description="The image take that goes forward.")
    clip_pick: int = Field(default=1, ge=1, le=MAX_TAKES, description="The clip take that goes forward.")

    @property
    def label(self) -> str:
        short = self.prompt if len(self.prompt) <= 40 else self.prompt[:39] + "…"
        return f'seg {self.index:03d} – "{short}"'

    def takes(self, stage: Stage) -> list[str]:
        """Every take's key at ``stage``, take 1 first (one take: the stage's key alone, if it has one)."""
        keys = self.image_takes if stage == "images" else self.clip_takes
        if keys:
            return list(keys)
        key = self.image_key if stage == "images" else self.clip_key
        return [key] if key else []


class Decision(BaseModel):
    """A reviewer's answer at a gate, with the audit trail (who, when, how, which round)."""

    stage: Stage
    decision: Literal["approve", "reject", "redo"]
    segments: list[int] = Field(default_factory=list)
    prompts: dict[int, str] = Field(default_factory=dict)
    narrations: dict[int, str] = Field(default_factory=dict, description="New narration per redone segment.")
    picks: dict[int, int] = Field(
        default_factory=dict,
        description="The take picked per segment (segment → take number; others: as were).",
    )
    note: str | None = None
    by: str | None = None
    via: Literal["ui", "review-page", "variable", "timeout", "auto"]
    at: datetime = Field(default_factory=utcnow)
    round: int = 1
    run_id: str | None = None
    opened_at: datetime | None = None


class FinalVideo(BaseModel):
    """The finished video as probed, and what was stored next to it."""

    key: str
    duration_s: float
    width: int
    height: int
    codec: str
    size_bytes: int
    fps: float | None = None
    frame_count: int | None = None
    streams: dict[str, int] = Field(default_factory=dict, description="Stream count by kind.")
    poster_key: str | None = None
    preview_key: str | None = None
    subtitles_key: str | None = None
    reencoded: dict[int, list[str]] = Field(
        default_factory=dict, description="Segments re-encoded to join (segment → why); the rest were copied."
    )
    transitions: int = 0
    spans: dict[int, tuple[float, float]] = Field(
        default_factory=dict, description="Where each segment is in the video (start s, end s)."
    )
    narration: dict[int, tuple[float, float]] = Field(
        default_factory=dict, description="Where each segment's spoken narration is heard (start s, end s)."
    )
    joined_by: str | None = Field(
        default=None,
        description=(
            "How the clips were joined: 'sample tables' (their indexes joined, media copied) or 'ffmpeg concat "
            "demuxer (why)'."
        ),
    )
    assembly_s: float | None = None


#: What a spend-ledger entry records. ``reserved`` (+credits, before the POST) and ``released`` (−credits, the
#: POST created nothing) move the total; the others only record what became of a paid provider task.
SpendEventKind = Literal[
    "reserved", "released", "submitted", "cancelled", "timed_out", "failed", "salvaged", "lost"
]


class SpendEvent(BaseModel):
    """One entry of a job's append-only spend ledger (``jobs/<job_id>/spend/<seq>.json``).

    Entry ``seq`` is created exclusively by a writer that has read entry ``seq - 1``, so ``total`` (the job's
    credits after this entry) is exact even with concurrent writers; the manifest carries a copy of every
    entry."""

    seq: int = Field(ge=1)
    event: SpendEventKind
    credits: float = Field(description="Change to the job's total: + reserved, − released, 0 otherwise.")
    total: float = Field(description="The job's credits after this entry.")
    run_id: str | None = None
    stage: SpendStage | None = None
    index: int | None = None
    provider_task_id: str | None = None
    record_id: str | None = Field(default=None, description="The provider-task record this entry belongs to.")
    paid: float | None = Field(
        default=None, description="For zero-credit entries: what the provider task they are about cost."
    )
    refund: Literal["unknown", "refunded", "none"] | None = Field(
        default=None, description="For cancelled/failed tasks: whether the provider gave the credits back."
    )
    note: str | None = None
    at: datetime = Field(default_factory=utcnow)


RunStatus = Literal["running", "succeeded", "rejected", "failed", "stopped"]


class RunRecord(BaseModel):
    """One run of a job, kept in the manifest's history for good."""

    run_id: str
    status: RunStatus = "running"
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    note: str | None = None
    credits_spent: float = 0.0
    final_key: str | None = None


class Manifest(BaseModel):
    """Everything a job produced, written to ``jobs/<job_id>/manifest.json``.

    ``job``, ``run_id``, ``status``, ``segments``, ``final`` and the gate/timing fields describe the latest
    run; ``runs``, ``decisions`` and ``spend`` keep every run's history (a new run appends, never replaces)."""

    job: JobSpec
    run_id: str | None = None
    status: Literal[
        "running", "awaiting_images", "awaiting_clips", "rejected", "succeeded", "failed", "stopped"
    ] = "running"
    segments: list[VideoSegment] = Field(default_factory=list)
    decisions: list[Decision] = Field(default_factory=list)
    runs: list[RunRecord] = Field(default_factory=list)
    spend: list[SpendEvent] = Field(default_factory=list, description="A copy of the job's spend ledger.")
    credits_spent: float = 0.0
    credits_lost: float = Field(
        default=0.0, description="Credits paid for provider outputs that could not be fetched any more."
    )
    credits_estimate: float = 0.0
    timings_s: dict[str, float] = Field(default_factory=dict)
    gates_opened_at: dict[str, datetime] = Field(default_factory=dict)
    final: FinalVideo | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def touch(self) -> Manifest:
        self.updated_at = utcnow()
        return self

    def run_record(self, run_id: str | None) -> RunRecord | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    def to_json(self) -> bytes:
        return self.model_dump_json(indent=2).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        return cls.model_validate_json(data)


def describe_validation_error(exc: Any) -> str:
    """One line per problem, each naming its field: ``segments.2.prompt: String should have at most …``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "job"
        lines.append(f"{loc}: {err['msg']}")
    return "; ".join(lines)
