from __future__ import annotations

import random
import time
import unicodedata

import pytest

from video_pipeline.models import MAX_DURATION_S, MAX_PROMPT_CHARS, JobSpec, SegmentSpec, is_invisible
from video_pipeline.segmentation import segments_for, split_script, split_sentences, spoken_seconds

ZH = (
    "灯塔在悬崖上矗立了两百年。每天晚上，它的光束扫过漆黑的海面。玛莎在黄昏时爬上一百一十二级台阶，"
    "就像她父亲当年一样！她修剪灯芯，擦亮巨大的透镜。远处，一艘渔船调头回家。今晚的暴风雨来得早……灯光依旧。"
)


def seconds(segment: SegmentSpec) -> int:
    """A split segment's length: whole seconds (the script was split without a voice to follow)."""
    assert isinstance(segment.duration_s, int)
    return segment.duration_s


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
    assert all(2 <= seconds(s) <= 10 for s in segments)
    assert segments[0].narration == segments[0].prompt


def test_a_very_long_sentence_is_cut_to_fit_the_longest_clip() -> None:
    sentence = " ".join(f"word{i}" for i in range(80)) + "."
    segments = split_script(sentence, target_duration_s=5)
    assert len(segments) >= 3
    assert all(len(s.prompt.split()) <= 25 and seconds(s) <= 10 for s in segments)
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
    with pytest.raises(
        ValueError, match=r"script: yields \d+ segments, more than the cap of 2 \(VIDEO_PIPELINE"
    ):
        segments_for(long)
    empty = JobSpec.model_validate({"job_id": "j", "title": "t", "script": "... !"})
    with pytest.raises(ValueError, match="script: yields no segments"):
        segments_for(empty)


def word_chars(text: str) -> str:
    """What a script says: its letters, digits and symbols, in order (no spaces, punctuation or invisibles)."""
    return "".join(c for c in text if unicodedata.category(c)[0] in "LNS" and not is_invisible(c))


def test_a_chinese_script_splits_on_full_width_stops() -> None:
    """The audit's case: no spaces, so the whole script was one sentence, cut to one 1000-character prompt."""
    assert split_sentences(ZH)[:3] == [
        "灯塔在悬崖上矗立了两百年。",
        "每天晚上，它的光束扫过漆黑的海面。",
        "玛莎在黄昏时爬上一百一十二级台阶，就像她父亲当年一样！",
    ]
    segments = split_script(ZH * 40, target_duration_s=5)
    assert len(segments) > 40
    assert "".join(s.prompt for s in segments) == ZH * 40  # CJK text is joined without spaces
    assert all(s.prompt.endswith(("。", "！", "…")) for s in segments)  # cut at sentence ends only
    assert all(2 <= seconds(s) <= MAX_DURATION_S for s in segments)


def test_stops_between_scripts_and_cjk_ellipses() -> None:
    assert split_sentences("Dr. Smith said hi.你好！Yes… 他走了…然后；最后。Wait…what? 3.14 is pi.") == [
        "Dr. Smith said hi.",
        "你好！",
        "Yes…",
        "他走了…",
        "然后；",
        "最后。",
        "Wait…what?",
        "3.14 is pi.",
    ]
    assert split_sentences("「走吧。」他说。") == [
        "「走吧。」",
        "他说。",
    ]  # a closing bracket stays with its stop


def test_japanese_and_korean() -> None:
    ja = "猫が窓辺で眠っている。外では雨が降り始めた！" * 10
    assert "".join(s.prompt for s in split_script(ja, 4)) == ja
    ko = "고양이가 창가에서 자고 있다. 밖에는 비가 내리기 시작했다! " * 10  # Hangul is written with spaces
    segments = split_script(ko, 4)
    assert len(segments) > 1 and word_chars("".join(s.prompt for s in segments)) == word_chars(ko)


def test_a_long_run_without_spaces_or_stops_is_cut_never_dropped() -> None:
    for script in ("ก" * 3000, "狐" * 3000, "x" * 5000, "a" * 39 + "," + "b" * 2000):
        segments = split_script(script, target_duration_s=5)
        assert "".join(s.prompt for s in segments) == script
        assert all(len(s.prompt) <= MAX_PROMPT_CHARS and seconds(s) <= MAX_DURATION_S for s in segments)
        assert all(spoken_seconds(s.prompt) <= MAX_DURATION_S for s in segments)


#: What the randomized scripts below are made of: words, CJK, text without spaces, stops of every kind,
#: clause marks, closers, abbreviations, digits, emoji, line breaks and invisible characters.
PIECES = [
    "fox", "lighthouse", "Martha", "internationalization", "e.g.", "Dr.", "3.14", "42", "🦊", "ß", "é",
    "灯", "塔", "猫", "が", "ア", "고양이", "ก", "ขนม", "x" * 60, "狐" * 30,
    ".", "!", "?", "…", "...", "?!", "。", "！", "？", "；", "．", "……", ",", ";", ":", "，", "、", "：",
    "\"", "”", "」", "「", ")", "—",
    " ", " ", " ", "  ", "\n", "\n\n", "\r\n", "\t", "\u3000", "\u200b", "\u2028",
]  # fmt: skip


def random_script(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, rng.choice([10, 100, 600]))))


def test_segments_keep_every_character_of_the_script_and_fit_the_limits() -> None:
    rng = random.Random(18)
    for _ in range(300):
        script = random_script(rng)
        target = rng.randint(2, 10)
        segments = split_script(script, target_duration_s=target)
        said = "".join(s.prompt for s in segments)
        assert word_chars(said) == word_chars(script), script  # nothing lost, nothing added, same order
        for segment in segments:
            assert 1 <= len(segment.prompt) <= MAX_PROMPT_CHARS, script
            assert segment.narration == segment.prompt
            assert 2 <= seconds(segment) <= MAX_DURATION_S
            assert spoken_seconds(segment.prompt) <= MAX_DURATION_S + 1e-9, segment.prompt


def test_a_script_at_the_size_limit_splits_quickly() -> None:
    rng = random.Random(7)
    script = "".join(rng.choice(PIECES) for _ in range(40_000))[:100_000]
    started = time.perf_counter()
    segments = split_script(script, target_duration_s=5)
    assert time.perf_counter() - started < 2.0
    assert word_chars("".join(s.prompt for s in segments)) == word_chars(script)


def test_a_script_over_the_segment_cap_is_refused_naming_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDEO_PIPELINE_MAX_SEGMENTS", "5")
    job = JobSpec.model_validate({"job_id": "j", "title": "t", "script": ZH * 3, "segment_duration_s": 2})
    with pytest.raises(ValueError, match=r"more than the cap of 5 \(VIDEO_PIPELINE_MAX_SEGMENTS\)"):
        segments_for(job)
