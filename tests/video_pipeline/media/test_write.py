"""Writing the joined video, index first, into a temp file that replaces the destination only when the block
that writes and checks it succeeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import faststart, frame_hashes, make_clip, subtitle_cues
from video_pipeline.media import AssemblyError, write
from video_pipeline.media.ffmpeg import FFmpegError, run_ffmpeg
from video_pipeline.media.plan import Clip, JoinPlan, plan_join
from video_pipeline.media.probe import probe
from video_pipeline.media.write import output_for, samples_planned, write_join, write_mp4, write_video

SIZE = (320, 180)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    media = tmp_path_factory.mktemp("write")
    return [make_clip(media / f"{n:03d}.mp4", hue=90 * n) for n in (1, 2)]


@pytest.fixture
def plan(clips: list[Path], tmp_path: Path) -> JoinPlan:
    return plan_join([Clip(1, clips[0]), Clip(2, clips[1])], resolution=SIZE, workdir=tmp_path / "work")


def test_the_plain_join_writes_the_index_first(plan: JoinPlan, clips: list[Path], tmp_path: Path) -> None:
    dest = tmp_path / "joined.mp4"
    write_join(plan, dest)
    assert faststart(dest) and frame_hashes(dest) == frame_hashes(clips[0]) + frame_hashes(clips[1])


def test_captions_go_into_the_table_join(plan: JoinPlan, tmp_path: Path) -> None:
    assert plan.tables is not None
    dest = tmp_path / "captioned.mp4"
    write_video(plan, dest, captions=[(0.5, 1.5, "Hello.")])
    assert subtitle_cues(dest) == [(0.5, 1.5, "Hello.")]
    plan.tables = None  # the concat demuxer's join has no captions track of its own
    with pytest.raises(ValueError, match="sample-table join only"):
        write_video(plan, dest, captions=[(0.5, 1.5, "Hello.")])


def test_a_reservation_too_small_for_the_index_falls_back_to_a_second_pass(
    plan: JoinPlan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(write, "MOOV_BASE_BYTES", 64)
    dest = tmp_path / "fallback.mp4"
    args = [*write.concat_input(plan), "-map", "0:v:0", "-c:v", "copy"]
    with pytest.raises(FFmpegError, match="reserved_moov_size is too small"):  # 64 bytes cannot hold it
        run_ffmpeg([*args, "-moov_size", "64", str(dest)])
    write_mp4(args, dest, samples=0)
    assert faststart(dest) and probe(dest).frame_count == 96


def test_samples_planned_counts_frames_audio_packets_and_cues(plan: JoinPlan) -> None:
    assert samples_planned(plan) == 96  # no audio: the video frames only
    audio_packets = -(-4 * 48_000 // 1024) + 2 * 2  # 4 s of 1024-sample packets, and priming per clip
    assert samples_planned(plan, extra=2) == 96 + audio_packets + 4


def fail_inside(plan: JoinPlan, dest: Path, error: Exception) -> None:
    with output_for(plan, dest, "finish the video"):
        raise error


def join_into(plan: JoinPlan, dest: Path) -> None:
    with output_for(plan, dest, "join the clips") as tmp:
        write_join(plan, tmp)


def test_the_output_replaces_the_destination_only_after_the_block(plan: JoinPlan, tmp_path: Path) -> None:
    dest = tmp_path / "final.mp4"
    dest.write_bytes(b"old")
    with output_for(plan, dest, "join the clips") as tmp:
        write_join(plan, tmp)
        assert dest.read_bytes() == b"old"
    assert probe(dest).frame_count == 96
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_says_what_failed_and_leaves_the_old_file(plan: JoinPlan, tmp_path: Path) -> None:
    dest = tmp_path / "final.mp4"
    dest.write_bytes(b"old")
    with pytest.raises(AssemblyError, match=r"^could not finish the video: ffmpeg failed \(exit 1\): boom"):
        fail_inside(plan, dest, FFmpegError("ffmpeg failed (exit 1): boom"))
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_names_the_clip_that_lost_frames(clips: list[Path], tmp_path: Path) -> None:
    gone = tmp_path / "002.mp4"
    gone.write_bytes(clips[1].read_bytes())
    plan = plan_join([Clip(1, clips[0]), Clip(2, gone)], resolution=SIZE, workdir=tmp_path / "work")
    gone.unlink()
    with pytest.raises(AssemblyError, match=r"^segment 2: clip 002\.mp4 is truncated or corrupt: 0 of 48"):
        join_into(plan, tmp_path / "final.mp4")
    assert not (tmp_path / "final.mp4").exists()
