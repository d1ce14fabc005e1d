"""Re-encoding one clip to the join's target, on real clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import audio_rms, frame_hashes, make_clip
from video_pipeline.media import AssemblyError
from video_pipeline.media.normalise import normalise
from video_pipeline.media.probe import AudioLayout, keyframes, probe
from video_pipeline.media.target import Target

TARGET = Target(320, 180, "High", Fraction(24), 12288, None)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("normalise")


def test_another_size_and_rate_comes_out_as_the_target(media: Path, tmp_path: Path) -> None:
    square = make_clip(media / "square30.mp4", size=(240, 240), fps=30, profile="baseline")
    out = normalise(square, probe(square), TARGET, tmp_path / "n.mp4", segment=3, reencode_video=True)
    done = probe(out)
    assert done.stream_signature() == TARGET.stream_signature()
    assert done.frame_count == 48 and done.video_duration_s == 2.0  # 2 s at 24 fps


def test_keyframes_are_forced_where_transitions_need_them(media: Path, tmp_path: Path) -> None:
    long_gop = make_clip(media / "gop96.mp4", seconds=3, gop=96)
    out = normalise(
        long_gop,
        probe(long_gop),
        TARGET,
        tmp_path / "k.mp4",
        segment=1,
        reencode_video=True,
        keyframes_at=[6, 66],
    )
    shown = {round(k.pts_s * 24) for k in keyframes(out) if k.clean}
    assert {0, 6, 66} <= shown


def test_a_clip_whose_video_matches_keeps_it_and_gets_the_targets_audio(media: Path, tmp_path: Path) -> None:
    silent = make_clip(media / "silent.mp4")
    voiced_target = Target(320, 180, "High", Fraction(24), 12288, AudioLayout("aac", 48000, "stereo"))
    out = normalise(silent, probe(silent), voiced_target, tmp_path / "a.mp4", segment=2, reencode_video=False)
    assert frame_hashes(out) == frame_hashes(silent)  # the video is copied
    done = probe(out)
    assert done.audio == voiced_target.audio and done.stream_signature() == voiced_target.stream_signature()
    assert audio_rms(out, [(0.1, 1.9)]) == [0.0]  # a silent track


def test_a_clip_ffmpeg_cannot_read_fails_naming_its_segment(media: Path, tmp_path: Path) -> None:
    clip = make_clip(media / "gone.mp4")
    found = probe(clip)
    broken = tmp_path / "007.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(AssemblyError, match=r"^segment 7: could not normalise 007\.mp4: ffmpeg failed"):
        normalise(broken, found, TARGET, tmp_path / "n.mp4", segment=7, reencode_video=True)
