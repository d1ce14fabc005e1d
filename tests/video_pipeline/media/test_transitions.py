"""Crossfade windows, on real clips with a keyframe every second (24 frames)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media.probe import probe
from video_pipeline.media.target import Target
from video_pipeline.media.transitions import Cuts, clean_keyframes, encode_transition, find_cuts

FPS = Fraction(24)
TARGET = Target(320, 180, "High", FPS, 12288, None)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    media = tmp_path_factory.mktemp("transitions")
    return [make_clip(media / f"{n}.mp4", seconds=3, hue=120 * n) for n in range(2)]


def test_clean_keyframes_by_frame_number(clips: list[Path]) -> None:
    assert sorted(clean_keyframes(clips[0], FPS)) == [0, 24, 48]


def test_the_copied_middle_lies_between_keyframes_outside_the_fades(clips: list[Path]) -> None:
    middle = find_cuts(clips[0], 72, FPS, 6, head=True, tail=True)
    assert middle is not None and (middle.head, middle.tail) == (24, 48)
    assert middle.tail_dts == clean_keyframes(clips[0], FPS)[48]
    assert find_cuts(clips[0], 72, FPS, 6, head=False, tail=True) == Cuts(0, 48, middle.tail_dts)
    assert find_cuts(clips[0], 72, FPS, 6, head=True, tail=False) == Cuts(24, 72, None)


def test_without_a_keyframe_between_the_fades_there_is_no_copied_middle(tmp_path: Path) -> None:
    long_gop = make_clip(tmp_path / "gop96.mp4", seconds=3, gop=96)
    assert find_cuts(long_gop, 72, FPS, 6, head=True, tail=True) is None  # to be re-encoded with keyframes
    # the first clip fades out only: its window starts at its first frame, nothing is copied before it
    assert find_cuts(long_gop, 72, FPS, 6, head=False, tail=True) == Cuts(
        0, 0, clean_keyframes(long_gop, FPS)[0]
    )


def test_a_window_is_the_tail_crossfaded_into_the_head(clips: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "xfade.mp4"
    frames = encode_transition(clips[0], 48, 72, clips[1], 24, 6, TARGET, dest)
    assert frames == 24 + 24 - 6  # the overlap is counted once
    done = probe(dest)
    assert done.frame_count == frames and done.stream_signature() == TARGET.stream_signature()
