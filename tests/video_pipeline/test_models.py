from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from video_pipeline.models import (
    CONTENT_FIELDS,
    FinalVideo,
    Finishing,
    JobSettings,
    JobSpec,
    Manifest,
    SegmentSpec,
    describe_validation_error,
    has_visible_text,
)
from video_pipeline.segmentation import segments_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"


def job(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "job_id": "fox-1",
        "title": "Fox",
        "segments": [{"prompt": "a fox", "duration_s": 3}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    JobSpec.model_validate(json.loads(path.read_text()))


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("path traversal job_id", job(job_id="../x"), "job_id"),
    ("slash in job_id", job(job_id="a/b"), "job_id"),
    ("upper-case job_id", job(job_id="Fox"), "job_id"),
    ("empty job_id", job(job_id=""), "job_id"),
    ("job_id too long", job(job_id="a" * 64), "job_id"),
    ("missing job_id", job(job_id=...), "job_id"),
    ("blank title", job(title="   "), "title"),
    ("zero segments", job(segments=[]), "segments"),
    ("prompt of 2000 chars", job(segments=[{"prompt": "x" * 2000}]), "segments.0.prompt"),
    ("blank prompt", job(segments=[{"prompt": "  "}]), "segments.0.prompt"),
    ("duration too short", job(segments=[{"prompt": "a", "duration_s": 1}]), "segments.0.duration_s"),
    ("duration too long", job(segments=[{"prompt": "a", "duration_s": 11}]), "segments.0.duration_s"),
    ("unsupported ratio", job(ratio="4:3"), "ratio"),
    ("unknown approval mode", job(approval="sometimes"), "approval"),
    ("unknown provider", job(provider="sora"), "provider"),
    ("unknown field", job(colour="red"), "colour"),
    ("unknown segment field", job(segments=[{"prompt": "a", "speed": 2}]), "segments.0.speed"),
    ("script and segments", job(script="Hello there."), "script"),
    ("neither script nor segments", job(segments=None), "script"),
    ("negative seed", job(seed=-1), "seed"),
    ("negative budget", job(budget_credits=-5), "budget_credits"),
    ("retired video model", job(video_model="gen3a_turbo"), "video_model"),
    ("gate timeout zero", job(gate_timeout=0), "gate_timeout"),
    ("on_gate_timeout nonsense", job(on_gate_timeout="maybe"), "on_gate_timeout"),
    ("segments not a list", job(segments="a fox"), "segments"),
    ("transition too long", job(finishing={"transition_s": 1.5}), "finishing.transition_s"),
    ("negative transition", job(finishing={"transition_s": -0.1}), "finishing.transition_s"),
    ("unknown subtitle mode", job(finishing={"subtitles": "karaoke"}), "finishing.subtitles"),
    ("audio key escaping the root", job(finishing={"audio_key": "../secrets.mp3"}), "finishing.audio_key"),
    ("absolute audio key", job(finishing={"audio_key": "/etc/passwd"}), "finishing.audio_key"),
    ("unknown finishing field", job(finishing={"music": "a.mp3"}), "finishing.music"),
    ("loudness out of range", job(finishing={"loudness_lufs": 0}), "finishing.loudness_lufs"),
    ("unknown preview format", job(finishing={"preview": "mp4"}), "finishing.preview"),
    # strict types: JSON's own types only, nothing coerced
    ("boolean seed", job(seed=True), "seed"),
    ("string seed", job(seed="7"), "seed"),
    ("float seed", job(seed=7.5), "seed"),
    ("string duration", job(segments=[{"prompt": "a", "duration_s": "4"}]), "segments.0.duration_s"),
    ("boolean duration", job(segments=[{"prompt": "a", "duration_s": True}]), "segments.0.duration_s"),
    ("string budget", job(budget_credits="50"), "budget_credits"),
    ("boolean gate timeout", job(gate_timeout=True), "gate_timeout"),
    (
        "string segment duration",
        job(segment_duration_s="4", script="A.", segments=None),
        "segment_duration_s",
    ),
    ("boolean transition", job(finishing={"transition_s": True}), "finishing.transition_s"),
    ("string transition", job(finishing={"transition_s": "0.5"}), "finishing.transition_s"),
    ("string poster flag", job(finishing={"poster": "false"}), "finishing.poster"),
    ("number poster flag", job(finishing={"poster": 1}), "finishing.poster"),
    ("number as prompt", job(segments=[{"prompt": 5}]), "segments.0.prompt"),
    ("number as title", job(title=5), "title"),
    # text that shows nothing
    ("zero-width prompt", job(segments=[{"prompt": "\u200b\u200c\u200d\u2060\ufeff"}]), "segments.0.prompt"),
    ("hangul-filler prompt", job(segments=[{"prompt": "\u3164 \u115f"}]), "segments.0.prompt"),
    ("control-character prompt", job(segments=[{"prompt": "\x00\x1b\x7f"}]), "segments.0.prompt"),
    ("zero-width title", job(title="\u200b"), "title"),
    ("zero-width script", job(script="\u200b \ufeff", segments=None), "script"),
    # an audio track is one of the audio types, read by that type's demuxer only
    ("playlist as audio track", job(finishing={"audio_key": "assets/music.m3u8"}), "finishing.audio_key"),
    ("concat list as audio track", job(finishing={"audio_key": "assets/list.txt"}), "finishing.audio_key"),
    ("audio key without a type", job(finishing={"audio_key": "assets/music"}), "finishing.audio_key"),
    ("video as audio track", job(finishing={"audio_key": "jobs/x/final.mp4"}), "finishing.audio_key"),
]


@pytest.mark.parametrize(("case", "spec", "field"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_specs_name_the_field(case: str, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(spec)
    assert field in describe_validation_error(info.value), describe_validation_error(info.value)


def test_segment_cap_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = job(segments=[{"prompt": f"p{i}"} for i in range(4)])
    with pytest.raises(ValidationError, match="between 1 and 3 segments"):
        JobSpec.model_validate(spec, context={"max_segments": 3})
    monkeypatch.setenv("VIDEO_PIPELINE_MAX_SEGMENTS", "2")
    with pytest.raises(ValidationError, match="between 1 and 2 segments"):
        JobSpec.model_validate(spec)
    monkeypatch.delenv("VIDEO_PIPELINE_MAX_SEGMENTS")
    assert len(JobSpec.model_validate(spec).segments or []) == 4


def test_defaults_and_helpers() -> None:
    spec = JobSpec.model_validate(job())
    assert spec.resolution == (1280, 720)
    assert spec.approval == "both"
    assert spec.on_gate_timeout == "reject"
    assert spec.gated("images") and spec.gated("clips")
    assert JobSpec.model_validate(job(approval="images")).gated("clips") is False
    assert SegmentSpec(prompt="  padded  ").prompt == "padded"


def test_settings_are_the_spec_without_its_content() -> None:
    spec = JobSpec.model_validate(job(budget_credits=50, approval="clips"))
    settings = spec.settings()
    assert type(settings) is JobSettings
    dumped = settings.model_dump()
    assert CONTENT_FIELDS.isdisjoint(dumped)
    assert dumped == {k: v for k, v in spec.model_dump().items() if k not in CONTENT_FIELDS}
    # a segment task accepts either: the settings, or a whole spec (its content left out)
    assert JobSettings.of(spec.model_dump(mode="json")) == settings == JobSettings.of(dumped)
    with pytest.raises(ValidationError, match="budget_credit"):
        JobSettings.of({**dumped, "budget_credit": 5})  # a typo is still refused


def test_finishing_defaults() -> None:
    finishing = JobSpec.model_validate(job()).finishing
    assert finishing == Finishing()
    assert (finishing.transition_s, finishing.subtitles, finishing.audio_key) == (0, "soft", None)
    assert (finishing.poster, finishing.preview) == (True, "gif")
    custom = JobSpec.model_validate(job(finishing={"transition_s": 0.5, "audio_key": "assets/music.mp3"}))
    assert custom.finishing.transition_s == 0.5 and custom.finishing.audio_key == "assets/music.mp3"


def test_manifest_round_trip() -> None:
    manifest = Manifest(job=JobSpec.model_validate(job()))
    again = Manifest.from_json(manifest.to_json())
    assert again == manifest


def test_manifest_records_the_final_videos_files() -> None:
    manifest = Manifest(job=JobSpec.model_validate(job()))
    manifest.final = FinalVideo(
        key="jobs/fox-1/final.mp4",
        duration_s=3.0,
        width=1280,
        height=720,
        codec="h264",
        size_bytes=1000,
        poster_key="jobs/fox-1/final-poster.jpg",
        preview_key="jobs/fox-1/final-preview.gif",
        subtitles_key="jobs/fox-1/final.srt",
        reencoded={1: ["burned captions"]},
    )
    again = Manifest.from_json(manifest.to_json())
    assert again.final == manifest.final and again.final is not None
    assert again.final.reencoded == {1: ["burned captions"]}
    # a manifest written before these fields existed still loads
    old = json.loads(manifest.to_json())
    for name in ("poster_key", "preview_key", "subtitles_key", "reencoded", "streams", "fps"):
        del old["final"][name]
    assert Manifest.model_validate(old).final is not None


def test_refusals_name_the_allowed_audio_types() -> None:
    with pytest.raises(ValidationError) as info:
        JobSpec.model_validate(job(finishing={"audio_key": "assets/music.m3u8"}))
    message = describe_validation_error(info.value)
    assert "music.m3u8" in message and "mp3" in message and "wav" in message


@pytest.mark.parametrize("name", ["a.mp3", "a.M4A", "b/c.aac", "d.wav", "e.flac", "f.ogg", "g.opus", "h.oga"])
def test_audio_tracks_of_each_type_are_accepted(name: str) -> None:
    assert JobSpec.model_validate(job(finishing={"audio_key": name})).finishing.audio_key == name


def test_json_numbers_pass_where_the_form_sends_them() -> None:
    """The trigger form's number fields send JSON numbers (an integer where a float is declared, too)."""
    spec = JobSpec.model_validate(
        job(seed=4_294_967_295, budget_credits=0, finishing={"transition_s": 1, "loudness_lufs": -16})
    )
    assert spec.finishing.transition_s == 1.0 and spec.seed == 4_294_967_295
    assert JobSpec.model_validate_json(json.dumps(job(gate_timeout=60))).gate_timeout == 60


INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u00ad",
    "\u202e",
    "\u3164",
    "\u2800",
    "\u0301",
]
SPACES = [" ", "\t", "\n", "\r", "\u00a0", "\u2003", "\u3000", "\u2028", "\x0b"]
VISIBLE = ["a", "Z", "7", "狐", "。", "é", "🦊", "-", "ß", "ア"]


def test_a_prompt_needs_a_visible_character_whatever_surrounds_it() -> None:
    rng = random.Random(14)
    for _ in range(400):
        blank = "".join(rng.choice(INVISIBLE + SPACES) for _ in range(rng.randint(1, 12)))
        with pytest.raises(ValidationError, match=r"visible characters|at least 1 character"):
            SegmentSpec.model_validate({"prompt": blank})
        cut = rng.randint(0, len(blank))
        shown = blank[:cut] + rng.choice(VISIBLE) + blank[cut:]
        assert has_visible_text(SegmentSpec.model_validate({"prompt": shown}).prompt)


def test_optional_texts_that_show_nothing_are_no_text() -> None:
    segment = SegmentSpec.model_validate(
        {"prompt": "a", "motion_prompt": "\u200b ", "narration": "\ufeff\u2060"}
    )
    assert segment.motion_prompt is None and segment.narration is None
    kept = SegmentSpec.model_validate({"prompt": "a", "motion_prompt": " pan left ", "narration": "Dawn."})
    assert (kept.motion_prompt, kept.narration) == ("pan left", "Dawn.")


# -- provider and model per stage --------------------------------------------------------------------------


def staged(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "staged", "title": "t", "segments": [{"prompt": "p", "duration_s": 3}], **overrides}
    )


def test_the_shorthand_gives_both_stages_one_provider_and_its_default_models() -> None:
    spec = staged(provider="runway", video_model="gen4.5")
    assert (spec.choice("images").provider, spec.choice("images").model) == ("runway", "gen4_image")
    assert (spec.choice("clips").provider, spec.choice("clips").model) == ("runway", "gen4.5")
    default = staged()
    assert default.provider == "storyboard" and default.choice("clips").fallback is None


def test_each_stage_may_name_its_provider_model_and_fallback() -> None:
    spec = staged(
        images={"provider": "runway"},
        clips={"provider": "storyboard", "fallback": {"provider": "runway", "model": "gen4_turbo"}},
    )
    assert spec.choice("images").provider == "runway"
    clips = spec.choice("clips")
    assert (clips.provider, clips.model) == ("storyboard", "ken-burns")
    assert clips.fallback is not None and (clips.fallback.provider, clips.fallback.model) == (
        "runway",
        "gen4_turbo",
    )


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"provider": "pixie"}, "provider", "no provider 'pixie'"),
        ({"provider": "runway", "video_model": "gen4_image"}, "video_model", "no clips model 'gen4_image'"),
        ({"images": {"provider": "runway", "model": "gen4_turbo"}}, "images", "no images model"),
        (
            {"clips": {"provider": "runway", "fallback": {"provider": "nope"}}},
            "clips.fallback",
            "no provider",
        ),
        ({"images": {"provider": "runway", "extra": 1}}, "images.extra", "Extra inputs"),
        ({"images": {"provider": "Runway!"}}, "images.provider", "pattern"),
    ],
)
def test_unknown_providers_and_models_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        staged(**overrides)
    described = describe_validation_error(caught.value)
    assert field in described and message in described


def test_segment_lengths_map_to_what_every_clip_model_of_the_job_makes() -> None:
    spec = staged(provider="runway")
    assert spec.clip_length(3) == 3  # Runway makes 2–10 s
    assert [s.duration_s for s in segments_for(spec)] == [3]
