"""The job spec's voice and ``duration_s: "auto"``, a redo's new narration, and what gate 1 shows of the
narration: each checked before any spend, errors naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from video_pipeline.approval import DecisionError, parse_form_answer, parse_variable_value
from video_pipeline.contact_sheets import ContactSheet
from video_pipeline.costs import stage_estimates
from video_pipeline.gate_form import GatePreview, PreviewItem, gate_body
from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.segmentation import segments_for


def spec(**changes: Any) -> dict[str, Any]:
    return {
        "job_id": "v",
        "title": "Voice",
        "segments": [{"prompt": "a fox", "narration": "Dawn comes.", "duration_s": "auto"}],
        **changes,
    }


def test_the_voice_is_offline_by_default_and_null_turns_it_off() -> None:
    job = JobSpec.model_validate(spec())
    assert job.voice is not None and job.voice.provider == "espeak" and job.voice.pad_s == 0.75
    assert job.voice.request("hi").language == "en-us"
    assert JobSpec.model_validate(spec(voice=None)).voice is None
    off = JobSpec.model_validate(spec(voice={"provider": "none"}))
    assert off.voice is None and JobSpec.model_validate(off.model_dump(mode="json")).voice is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"voice": {"provider": "storyboard"}}, "voice"),
        ({"voice": {"provider": "espeak", "language": "xx-zz"}}, "voice"),
        ({"voice": {"speed": 9}}, "voice.speed"),
        ({"voice": {"lead_s": -1}}, "voice.lead_s"),
        ({"voice": {"provider": "espeak", "colour": "red"}}, "voice.colour"),
        ({"segments": [{"prompt": "a fox", "duration_s": "auto"}]}, "segments.0"),
        (
            {"segments": [{"prompt": "a fox", "narration": "x", "duration_s": "soon"}]},
            "segments.0.duration_s",
        ),
    ],
)
def test_a_voice_or_length_it_cannot_have_is_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        JobSpec.model_validate(spec(**change))
    assert any(".".join(map(str, e["loc"])).startswith(field) for e in raised.value.errors())


def test_script_jobs_follow_their_voice_by_default() -> None:
    script = "The lighthouse has stood for two hundred years. Every night its beam sweeps the water."
    voiced = segments_for(JobSpec.model_validate({"job_id": "s", "title": "S", "script": script}))
    assert all(s.follows_voice and s.fitted_s for s in voiced)
    silent = segments_for(
        JobSpec.model_validate({"job_id": "s", "title": "S", "script": script, "voice": None})
    )
    assert not any(s.follows_voice for s in silent)


def test_a_paid_voice_is_estimated_and_budgeted_like_the_other_stages() -> None:
    job = JobSpec.model_validate(spec(voice={"provider": "openai"}, budget_credits=1))
    estimates = stage_estimates(job, segments_for(job))
    assert estimates["narration"] == pytest.approx(0.0015 * len("Dawn comes."))
    assert (
        stage_estimates(JobSpec.model_validate(spec()), segments_for(JobSpec.model_validate(spec())))[
            "narration"
        ]
        == 0
    )


def test_a_redo_may_give_new_narrations_by_variable_or_form() -> None:
    request = parse_variable_value('{"decision": "redo", "narrations": {"2": "  A new line.  "}}')
    assert request.segments == [2] and request.narrations == {2: "A new line."}
    form = parse_form_answer(["Redo segments"], {"narrations": ["3: Something else."], "segments": ["1"]})
    assert form.segments == [1, 3] and form.narrations == {3: "Something else."}
    with pytest.raises(DecisionError):
        parse_form_answer(["Redo segments"], {"narrations": ["three: no number"]})
    with pytest.raises(DecisionError):
        parse_variable_value('{"decision": "redo", "narrations": {"2": "   "}}')


def test_gate_1_shows_each_spoken_length_links_its_audio_and_flags_a_cut() -> None:
    job = JobSpec.model_validate(spec())
    segments = [
        VideoSegment(
            index=1,
            prompt="a fox",
            narration="Dawn comes.",
            duration_s=2,
            seed=1,
            follows_voice=True,
            fitted_s=1.95,
            narration_s=1.2,
            narration_key="jobs/v/narration/001.wav",
            image_key="jobs/v/images/001.png",
        ),
        VideoSegment(
            index=2,
            prompt="a stream",
            narration="A very long line.",
            duration_s=2,
            seed=2,
            narration_s=3.1,
            narration_key="jobs/v/narration/002.wav",
            image_key="jobs/v/images/002.png",
        ),
    ]
    preview = GatePreview(
        [ContactSheet(1, "jobs/v/preview/sheet.jpg", (1, 2))],
        [PreviewItem(s.index, str(s.image_key), str(s.image_key)) for s in segments],
    )
    body = gate_body(
        job,
        "images",
        segments,
        preview,
        lambda key: f"https://previews.test/{key}",
        variable_key="k",
        credits_spent=0,
        next_stage_estimate=0,
        changed=[],
    )
    assert "[1.2 s](https://previews.test/jobs/v/narration/001.wav) of 1.95 s" in body
    assert "#1 1.2 s, #2 3.1 s" in body
    assert "Longer than their segments (cut at the segment's end): #2." in body
    assert "**cut**" in body
