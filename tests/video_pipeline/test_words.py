"""Word timings: the text cut into words, and every source of timings mapped onto them."""

from __future__ import annotations

import array

from video_pipeline.words import (
    FRAME_S,
    WordTiming,
    from_characters,
    from_events,
    scaled,
    sounding_frames,
    text_words,
    tightened,
)


def test_words_are_runs_without_spaces_and_cjk_characters_one_by_one() -> None:
    assert [w.text for w in text_words("It was 10:30, then 3.5 foxes.")] == [
        "It",
        "was",
        "10:30,",
        "then",
        "3.5",
        "foxes.",
    ]
    assert [w.text for w in text_words("狐狸，醒了。")] == ["狐", "狸，", "醒", "了。"]
    words = text_words("  two  words ")
    assert [(w.start, w.end) for w in words] == [(2, 5), (7, 12)]


def test_a_written_word_takes_its_earliest_spoken_event() -> None:
    text = "and 3.5 foxes"
    # The engine speaks "3.5" as three words: three events inside it.
    events = [(0, 0.0), (4, 0.3), (5, 0.5), (6, 0.7), (8, 1.0)]
    words = from_events(text, events, speech_start_s=0.0, speech_end_s=1.6)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [
        ("and", 0.0, 0.3),
        ("3.5", 0.3, 1.0),
        ("foxes", 1.0, 1.6),
    ]


def test_words_without_an_event_are_interpolated_and_times_never_go_back() -> None:
    text = "one two three four"
    words = from_events(text, [(0, 0.0), (14, 1.5)], speech_start_s=0.0, speech_end_s=2.0)
    starts = [w.start_s for w in words]
    assert starts[0] == 0.0 and starts[3] == 1.5
    assert 0.0 < starts[1] < starts[2] < 1.5
    assert all(w.end_s >= w.start_s for w in words)
    backwards = from_events("a b", [(0, 1.0), (2, 0.5)], speech_start_s=0.0, speech_end_s=2.0)
    assert backwards[1].start_s >= backwards[0].start_s


def test_character_timings_give_each_word_its_first_start_and_last_end() -> None:
    text = "hi you"
    starts = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    ends = [0.1, 0.15, 0.3, 0.4, 0.5, 0.6]
    words = from_characters(text, starts, ends, speech_end_s=0.6)
    assert [(w.text, w.start_s, w.end_s) for w in words] == [("hi", 0.0, 0.15), ("you", 0.3, 0.6)]


def test_scaled_moves_timings_onto_another_rendering() -> None:
    words = [WordTiming(text="a", start_s=1.0, end_s=2.0), WordTiming(text="b", start_s=2.0, end_s=3.0)]
    moved = scaled(words, (1.0, 3.0), (0.5, 4.5))
    assert [(w.start_s, w.end_s) for w in moved] == [(0.5, 2.5), (2.5, 4.5)]


def test_a_word_before_a_pause_ends_where_its_sound_does() -> None:
    rate = 1000
    samples = array.array("h", [1000] * 300 + [0] * 500 + [1000] * 200)  # sound, a pause, sound
    sound = sounding_frames(samples, rate, level=100)
    assert sound.bounds() == (0.0, 1.0)
    words = [WordTiming(text="end.", start_s=0.0, end_s=0.8), WordTiming(text="next", start_s=0.8, end_s=1.0)]
    tight = tightened(words, sound)
    assert tight[0].end_s == 0.3
    assert tight[1].end_s == 1.0
    silent = sounding_frames(array.array("h", [0] * 100), rate, level=100)
    assert silent.bounds() == (0.0, 0.0)
    assert tightened([WordTiming(text="x", start_s=0.0, end_s=0.05)], silent)[0].end_s == 0.05
    assert FRAME_S == 0.01
