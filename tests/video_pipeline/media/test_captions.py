"""Cue timing, SRT text and caption images."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image

from video_pipeline.media.captions import Cue, caption_image, caption_text, cues_for, write_srt
from video_pipeline.media.plan import Span

SPANS = [Span(1, 0.0, 5.0), Span(2, 4.5, 9.5), Span(3, 9.0, 14.0)]  # 0.5-s crossfades


def test_cues_follow_segments_and_skip_silent_ones() -> None:
    cues = cues_for([Span(1, 0, 3), Span(2, 3, 5), Span(3, 5, 10)], {1: "One.", 3: "  Three.  "})
    assert cues == [Cue(1, 0, 3, "One."), Cue(3, 5, 10, "Three.")]


def test_cues_change_half_way_through_a_crossfade() -> None:
    cues = cues_for(SPANS, {1: "a", 2: "b", 3: "c"}, transition_s=0.5)
    assert [(c.start_s, c.end_s) for c in cues] == [(0, 4.75), (4.75, 9.25), (9.25, 14.0)]


def test_srt(tmp_path: Path) -> None:
    srt = write_srt(
        [Cue(1, 0, 2.5, "Dawn."), Cue(3, 3661.25, 3663, "Late, with a comma")], tmp_path / "a.srt"
    )
    assert srt.read_text() == (
        "1\n00:00:00,000 --> 00:00:02,500\nDawn.\n\n2\n01:01:01,250 --> 01:01:03,000\nLate, with a comma\n"
    )


def test_caption_image_is_a_transparent_frame_with_a_bottom_band(tmp_path: Path) -> None:
    path = caption_image("A red fox wakes at dawn in a frosty meadow, " * 3, (1280, 720), tmp_path / "c.png")
    with Image.open(path) as image:
        assert image.size == (1280, 720) and image.mode == "RGBA"
        box = image.getchannel("A").getbbox()
        assert box is not None and box[1] > 720 // 2 and box[3] <= 720  # bottom half only
        assert box[2] - box[0] < 1280  # wrapped inside the frame
        assert image.getpixel((640, 10)) == (0, 0, 0, 0)


def demuxed_cues(srt: Path) -> list[tuple[float, float, str]]:
    """What ffmpeg's SRT reader (the one that muxes the soft track) makes of the file: (start, end, text)."""
    import av

    with av.open(str(srt)) as container:
        stream = container.streams.subtitles[0]
        base = float(stream.time_base or 0)
        return [
            (packet.pts * base, (packet.pts + packet.duration) * base, bytes(packet).decode())
            for packet in container.demux(stream)
            if packet.size and packet.pts is not None and packet.duration is not None
        ]


def test_a_narration_with_blank_lines_and_a_timing_line_is_one_cue(tmp_path: Path) -> None:
    """The audit's case: a blank line, a number and a timing line in a narration made a 9-hour cue."""
    injected = "Dawn.\n\n2\n00:00:00,000 --> 09:00:00,000\nInjected."
    cues = cues_for([Span(1, 0, 2), Span(2, 2, 4)], {1: injected, 2: "Dusk."})
    read = demuxed_cues(write_srt(cues, tmp_path / "a.srt"))
    assert [(start, end) for start, end, _ in read] == [(0, 2), (2, 4)]
    assert read[0][2] == "Dawn. 2 00:00:00,000 → 09:00:00,000 Injected."


def test_caption_text_is_one_line_without_control_characters() -> None:
    assert caption_text("  One\r\ntwo\rthree\n\n\nfour\x00five\x1b\x85six\u2028seven\t ") == (
        "One two three four five six seven"
    )
    assert caption_text("a --> b ---> c -> d") == "a → b → c -> d"
    assert caption_text("\n\r\x00 \t") == ""
    assert caption_text("狐 🦊 é") == "狐 🦊 é"


#: Pieces narration is made of in the randomized test below: line breaks of every kind, timing lines and
#: arrows, digits-only lines, control and separator characters, markup, and ordinary text.
NARRATION_PIECES = [
    "\n", "\r", "\r\n", "\n\n", "\n \n", "-->", "--->", " --> ", "->", "00:00:00,000", "09:00:00,000",
    "1:2:3,4", "1", "42", "\x00", "\x01", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\t", "\v", "\f",
    " ", "a", "Fox", "é", "狐", "🦊", "<b>", "</i>", "{\\an8}", ",", ".", ":", "\u200b",
]  # fmt: skip


def test_any_narration_makes_exactly_one_cue_per_segment(tmp_path: Path) -> None:
    rng = random.Random(20260930)
    for case in range(250):
        count = rng.randint(1, 5)
        spans = [Span(i, 2.0 * (i - 1), 2.0 * i) for i in range(1, count + 1)]
        narration = {
            i: "".join(rng.choice(NARRATION_PIECES) for _ in range(rng.randint(0, 14)))
            for i in range(1, count + 1)
            if rng.random() < 0.9
        }
        cues = cues_for(spans, narration)
        expected = [i for i, text in sorted(narration.items()) if caption_text(text)]
        assert [c.index for c in cues] == expected, narration
        if not cues:
            continue  # no narration to show: no subtitle file (finish() writes none)
        read = demuxed_cues(write_srt(cues, tmp_path / f"{case}.srt"))
        assert [(start, end) for start, end, _ in read] == [(c.start_s, c.end_s) for c in cues], narration
        assert [text for _, _, text in read] == [c.text for c in cues], narration
