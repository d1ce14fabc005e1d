from __future__ import annotations

import pytest

from video_pipeline.models import JobSpec
from video_pipeline.segmentation import segments_for, split_script, split_sentences


def test_sentences_keep_abbreviations_and_break_paragraphs() -> None:
    text = 'Dr. Martha climbs the stairs. "Is it time?" she asks!\nThe light turns… Slowly.'
    assert split_sentences(text) == [
        "Dr. Martha climbs the stairs.",
        '"Is it time?"',
        "she asks!",
        "The light turns…",
        "Slowly.",
    ]


def test_sentences_are_packed_up_to_the_target() -> None:
    script = "One two three. Four five six. Seven eight nine ten. Eleven."
    segments = split_script(script, target_duration_s=3, words_per_second=2.5)  # 7 words per segment
    assert [s.prompt for s in segments] == ["One two three. Four five six.", "Seven eight nine ten. Eleven."]
    assert all(2 <= s.duration_s <= 10 for s in segments)
    assert segments[0].narration == segments[0].prompt


def test_a_very_long_sentence_is_cut_to_fit_the_longest_clip() -> None:
    sentence = " ".join(f"word{i}" for i in range(80)) + "."
    segments = split_script(sentence, target_duration_s=5)
    assert len(segments) >= 3
    assert all(len(s.prompt.split()) <= 25 and s.duration_s <= 10 for s in segments)
    assert " ".join(s.prompt for s in segments).split() == sentence.split()


def test_explicit_segments_pass_through_with_numbers_and_seeds() -> None:
    job = JobSpec.model_validate(
        {
            "job_id": "j",
            "title": "t",
            "seed": 100,
            "segments": [{"prompt": "a", "duration_s": 4}, {"prompt": "b"}],
        }
    )
    segments = segments_for(job)
    assert [(s.index, s.prompt, s.duration_s, s.seed) for s in segments] == [
        (1, "a", 4, 101),
        (2, "b", 5, 102),
    ]


def test_script_jobs_and_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    job = JobSpec.model_validate(
        {"job_id": "j", "title": "t", "script": "A. B. C. D.", "segment_duration_s": 2}
    )
    assert len(segments_for(job)) >= 1
    monkeypatch.setenv("VIDEO_PIPELINE_MAX_SEGMENTS", "2")
    long = JobSpec.model_validate(
        {
            "job_id": "j",
            "title": "t",
            "script": " ".join(f"Sentence number {i} is here." for i in range(10)),
            "segment_duration_s": 2,
        },
    )
    with pytest.raises(ValueError, match=r"script: yields \d+ segments, more than the cap of 2"):
        segments_for(long)
    empty = JobSpec.model_validate({"job_id": "j", "title": "t", "script": "... !"})
    with pytest.raises(ValueError, match="script: yields no segments"):
        segments_for(empty)
