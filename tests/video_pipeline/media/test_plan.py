"""Joining real clips, probed and decoded: stream copy when clips match, per-clip normalising when they
don't, crossfades that re-encode only their windows, flat cost from 1 to 200 clips."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import audio_rms, damaged, faststart, frame_hashes, make_clip
from video_pipeline.media import AssemblyError
from video_pipeline.media.finish import join
from video_pipeline.media.plan import Clip, plan_join, probe_clips, read_indexes
from video_pipeline.media.probe import probe

SIZE = (320, 180)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def matching(media: Path) -> list[Path]:
    """Three 2-s clips with the same stream parameters (keyframe every second)."""
    return [make_clip(media / f"m{n}.mp4", hue=60 * n) for n in range(3)]


def test_matching_clips_are_stream_copied(matching: list[Path], tmp_path: Path) -> None:
    clips = [Clip(n, path) for n, path in enumerate(matching, start=1)]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")
    assert plan.reencoded == {} and plan.joined_by == "sample tables"
    assert (result.width, result.height, result.codec, result.fps) == (320, 180, "h264", 24.0)
    assert result.frame_count == 3 * 48 and result.video_duration_s == 6.0
    # decoded frames are the sources' frames: nothing was re-encoded
    assert frame_hashes(tmp_path / "final.mp4") == [h for clip in matching for h in frame_hashes(clip)]
    assert faststart(tmp_path / "final.mp4")
    assert [(s.index, s.start_s, s.end_s) for s in plan.spans] == [(1, 0, 2), (2, 2, 4), (3, 4, 6)]
    assert not list(tmp_path.glob(".*.tmp*"))


def test_one_clip(matching: list[Path], tmp_path: Path) -> None:
    plan = plan_join([Clip(1, matching[0])], resolution=SIZE, workdir=tmp_path, transition_s=0.5)
    result = join(plan, tmp_path / "one.mp4")
    assert result.frame_count == 48 and plan.transition_pieces == 0
    assert frame_hashes(tmp_path / "one.mp4") == frame_hashes(matching[0])


def test_mixed_clips_normalise_only_the_odd_ones(matching: list[Path], media: Path, tmp_path: Path) -> None:
    """A redo on another provider: a square 30 fps clip and a bigger Constrained Baseline clip among
    storyboard-like ones. Only those two are re-encoded, to the majority's parameters."""
    square = make_clip(media / "square30.mp4", size=(240, 240), fps=30, hue=200)
    big = make_clip(media / "big-baseline.mp4", size=(640, 360), profile="baseline", hue=300)
    clips = [Clip(1, matching[0]), Clip(2, square), Clip(3, matching[1]), Clip(4, big), Clip(5, matching[2])]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")

    assert set(plan.reencoded) == {2, 4}
    assert plan.joined_by == "ffmpeg concat demuxer (normalised clips)"
    assert plan.reencoded[2] == ["size 240x240", "30 fps"]
    assert plan.reencoded[4] == ["size 640x360", "codec h264 Constrained Baseline"]
    assert (result.width, result.height, result.profile, result.fps, result.time_base) == (
        320,
        180,
        "High",
        24.0,
        "1/12288",
    )
    assert result.frame_count == 5 * 48 and result.video_duration_s == 10.0
    frames = frame_hashes(tmp_path / "final.mp4")
    assert frames[:48] == frame_hashes(matching[0])  # copied
    assert frames[96:144] == frame_hashes(matching[1])
    assert frames[192:] == frame_hashes(matching[2])
    assert frames[48:96] != frame_hashes(square)[:48]  # re-encoded (and resampled from 30 fps)


def test_no_clip_at_the_job_size_falls_back_to_defaults(media: Path, tmp_path: Path) -> None:
    odd = make_clip(media / "odd.mp4", size=(160, 160), fps=30)
    plan = plan_join([Clip(1, odd), Clip(2, odd)], resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "f.mp4")
    assert set(plan.reencoded) == {1, 2}
    assert (result.width, result.height, result.fps, result.frame_count) == (320, 180, 24.0, 96)


def test_clips_with_and_without_audio(matching: list[Path], media: Path, tmp_path: Path) -> None:
    """One clip has sound: the silent ones get a silent track (video still copied) and the sound stays
    with its picture."""
    voiced = make_clip(media / "voiced.mp4", hue=90, audio_rate=44100)
    clips = [Clip(1, matching[0]), Clip(2, voiced), Clip(3, matching[1])]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")

    assert plan.reencoded == {1: ["no audio"], 3: ["no audio"]}
    assert plan.joined_by == "ffmpeg concat demuxer (normalised clips)"
    assert result.audio is not None and (result.audio.sample_rate, result.audio.layout) == (44100, "mono")
    assert abs((result.audio_duration_s or 0) - result.video_duration_s) <= 1 / 24
    frames = frame_hashes(tmp_path / "final.mp4")
    assert frames[:48] == frame_hashes(matching[0]) and frames[48:96] == frame_hashes(voiced)
    silent1, tone, silent3 = audio_rms(tmp_path / "final.mp4", [(0.1, 1.9), (2.1, 3.9), (4.1, 5.9)])
    assert tone > 0.05 and silent1 < 0.001 and silent3 < 0.001


def test_crossfade_with_clip_audio_stays_in_sync(matching: list[Path], media: Path, tmp_path: Path) -> None:
    """Copied middles cut at keyframes and crossfaded windows, with sound: the tone stays under its picture
    and the audio ends with the video."""
    voiced = make_clip(media / "voiced3.mp4", seconds=3, hue=90, audio_rate=48000)
    silent = [make_clip(media / f"silent3-{n}.mp4", seconds=3, hue=40 * n) for n in range(2)]
    clips = [Clip(1, silent[0]), Clip(2, voiced), Clip(3, silent[1])]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path, transition_s=0.25)
    result = join(plan, tmp_path / "final.mp4")
    assert plan.transition_pieces == 2 and result.frame_count == 3 * 72 - 2 * 6
    assert abs((result.audio_duration_s or 0) - result.video_duration_s) <= 1 / 24
    # spans: 1 = [0, 3), 2 = [2.75, 5.75), 3 = [5.5, 8.5); fades in the overlaps
    before, tone, after = audio_rms(tmp_path / "final.mp4", [(0.1, 2.6), (3.1, 5.4), (5.9, 8.4)])
    assert tone > 0.05 and before < 0.001 and after < 0.001


def test_crossfade_reencodes_only_the_windows(media: Path, tmp_path: Path) -> None:
    """3-s clips with a keyframe every second, 0.25-s fades: the first and last seconds around each boundary
    are re-encoded as transition pieces; every other frame is the source's."""
    sources = [make_clip(media / f"x{n}.mp4", seconds=3, hue=120 * n) for n in range(3)]
    plan = plan_join(
        [Clip(n, p) for n, p in enumerate(sources, start=1)],
        resolution=SIZE,
        workdir=tmp_path,
        transition_s=0.25,
    )
    result = join(plan, tmp_path / "final.mp4")
    fade = 6  # frames
    assert plan.reencoded == {} and plan.transition_pieces == 2
    assert plan.joined_by == "ffmpeg concat demuxer (transitions)"
    assert result.frame_count == 3 * 72 - 2 * fade
    assert [(s.start_s, s.end_s) for s in plan.spans] == [(0, 3), (2.75, 5.75), (5.5, 8.5)]
    out = frame_hashes(tmp_path / "final.mp4")
    src = [frame_hashes(p) for p in sources]
    # clip 1 is copied up to its keyframe at 1 s, then piece 1 = clip 1 [1 s, 3 s) faded into clip 2 [0, 1 s);
    # clip 2 [1 s, 2 s) is copied; piece 2 = clip 2 [2 s, 3 s) into clip 3 [0, 1 s); clip 3 [1 s, 3 s) copied
    piece1, piece2 = 48 + 24 - fade, 24 + 24 - fade
    assert out[:24] == src[0][:24]
    assert out[24 + piece1 : 24 + piece1 + 24] == src[1][24:48]
    assert out[-48:] == src[2][24:]
    assert len(out) == 24 + piece1 + 24 + piece2 + 48
    middle_of_fade = 24 + 48 - fade // 2
    assert out[middle_of_fade] not in (set(src[0]) | set(src[1]))


def test_clip_without_keyframe_between_fades_is_reencoded(media: Path, tmp_path: Path) -> None:
    long_gop = make_clip(media / "gop96.mp4", seconds=3, gop=96, hue=30)
    sources = [make_clip(media / f"y{n}.mp4", seconds=3, hue=99 * n) for n in range(2)]
    clips = [Clip(1, sources[0]), Clip(2, long_gop), Clip(3, sources[1])]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path, transition_s=0.5)
    result = join(plan, tmp_path / "final.mp4")
    assert plan.reencoded == {2: ["no keyframe between its transitions"]}
    assert result.frame_count == 3 * 72 - 2 * 12


def test_unreadable_clip_fails_naming_the_segment(matching: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "007.mp4"
    broken.write_bytes(matching[1].read_bytes()[:200])  # cut inside the index
    with pytest.raises(AssemblyError, match=r"^segment 7: clip 007.mp4 is unreadable"):
        plan_join(
            [Clip(6, matching[0]), Clip(7, broken), Clip(8, matching[2])], resolution=SIZE, workdir=tmp_path
        )


def test_truncated_clip_fails_naming_the_segment(matching: list[Path], tmp_path: Path) -> None:
    """The index is intact and promises 48 frames, the media data stops half-way: planning fails before any
    work, naming the segment (not a position in a list) and how much of it is there."""
    broken = tmp_path / "007.mp4"
    data = matching[1].read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        AssemblyError, match=r"^segment 7: clip 007.mp4 is truncated or corrupt: \d+ of 48 frames readable"
    ):
        plan_join(
            [Clip(6, matching[0]), Clip(7, broken), Clip(8, matching[2])], resolution=SIZE, workdir=tmp_path
        )
    assert not list(tmp_path.glob("*.mp4"))[1:]  # only the broken clip itself


def test_corrupt_clip_fails_naming_the_segment(matching: list[Path], tmp_path: Path) -> None:
    """Media overwritten behind an intact index (a bad download, a disk error): the join names the segment
    and the frame, and leaves nothing."""
    broken = damaged(matching[1], tmp_path / "007.mp4", sample=30, junk=bytes(32))
    plan = plan_join(
        [Clip(6, matching[0]), Clip(7, broken), Clip(8, matching[2])], resolution=SIZE, workdir=tmp_path
    )
    with pytest.raises(
        AssemblyError, match=r"^segment 7: clip 007.mp4 is corrupt: frame 30's data does not match the index"
    ):
        join(plan, tmp_path / "final.mp4")
    assert not (tmp_path / "final.mp4").exists() and not list(tmp_path.glob(".*.tmp*"))


@pytest.mark.slow  # 200 segments
def test_two_hundred_segments(media: Path, tmp_path: Path) -> None:
    """200 tiny clips (four distinct files, each listed 50 times) join with the exact frame count."""
    tiny = [
        make_clip(media / f"tiny{n}.mp4", size=(64, 36), seconds=0.5, gop=12, hue=90 * n) for n in range(4)
    ]
    clips = [Clip(n, path) for n, path in zip(range(1, 201), itertools.cycle(tiny), strict=False)]
    plan = plan_join(clips, resolution=(64, 36), workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")
    assert plan.reencoded == {} and plan.joined_by == "sample tables"
    assert result.frame_count == 200 * 12
    assert result.video_duration_s == 100.0
    assert plan.spans[-1].start_s == 99.5


def test_failed_join_leaves_nothing(matching: list[Path], tmp_path: Path) -> None:
    gone = tmp_path / "gone.mp4"
    shutil.copy(matching[0], gone)
    plan = plan_join([Clip(1, gone), Clip(2, matching[1])], resolution=SIZE, workdir=tmp_path)
    gone.unlink()
    with pytest.raises(AssemblyError, match=r"segment 1: clip gone\.mp4 is truncated or corrupt: 0 of 48"):
        join(plan, tmp_path / "final.mp4")
    assert not (tmp_path / "final.mp4").exists() and not list(tmp_path.glob(".*.tmp*"))
    assert probe(matching[0]).frame_count == 48


def test_clips_of_one_kind_are_probed_once_and_measured_by_their_index(media: Path) -> None:
    """Clips with the same decoder configuration take one probe's parameters and their own lengths from their
    indexes: the result is what probing each of them gives."""
    kinds = [
        make_clip(media / "len1.mp4", seconds=1, hue=10),
        make_clip(media / "len3.mp4", seconds=3, hue=20),
        make_clip(media / "len25.mp4", seconds=2.5, hue=30),
        make_clip(media / "fps30a.mp4", fps=30, seconds=1, hue=40),
        make_clip(media / "fps30b.mp4", fps=30, seconds=2, hue=50),
        make_clip(media / "voiced-kind.mp4", audio_rate=48000),  # no index to use: probed on its own
    ]
    clips = [Clip(n, path) for n, path in enumerate(kinds, start=1)]
    indexes = read_indexes(clips)
    assert [isinstance(i, str) for i in indexes] == [False] * 5 + [True]
    assert probe_clips(clips, indexes) == [probe(path) for path in kinds]


def test_clips_from_another_encoder_join_through_ffmpeg(
    matching: list[Path], media: Path, tmp_path: Path
) -> None:
    """Same stream parameters, different encoder settings (another parameter set: 2 reference frames):
    copied all the same, by the concat demuxer."""
    other = media / "other-encoder.mp4"
    make_clip(other, hue=200, preset="faster")
    clips = [Clip(1, matching[0]), Clip(2, other)]
    plan = plan_join(clips, resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")
    assert plan.reencoded == {}
    assert (
        plan.joined_by
        == "ffmpeg concat demuxer (clip 2 (other-encoder.mp4) has another decoder configuration than clip 1)"
    )
    assert frame_hashes(tmp_path / "final.mp4") == frame_hashes(matching[0]) + frame_hashes(other)
    assert result.frame_count == 96
