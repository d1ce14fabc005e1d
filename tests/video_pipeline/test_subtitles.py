"""Cue timing, SRT text and caption images."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from video_pipeline.assembly import Span
from video_pipeline.subtitles import Cue, caption_image, cues_for, write_srt

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
