"""The checks on a written video, on real files that do not match their plan."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media import AssemblyError
from video_pipeline.media.check import check_clip_lengths, check_finished, check_joined, diagnose
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.finish import join
from video_pipeline.media.plan import Clip, plan_join
from video_pipeline.media.probe import probe

SIZE = (320, 180)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    media = tmp_path_factory.mktemp("check")
    return [make_clip(media / f"{n:03d}.mp4", hue=70 * n) for n in (1, 2)]


def test_result_is_checked_against_the_plan(clips: list[Path], tmp_path: Path) -> None:
    plan = plan_join([Clip(1, clips[0]), Clip(2, clips[1])], resolution=SIZE, workdir=tmp_path)
    result = join(plan, tmp_path / "final.mp4")
    plan.frame_count += 1
    with pytest.raises(AssemblyError, match="final video has 96 frames, planned 97"):
        check_joined(result, plan)
    plan.frame_count -= 1
    plan.duration_s += 0.5
    with pytest.raises(AssemblyError, match=r"final video is 4.000 s, planned 4.500 s"):
        check_joined(result, plan)


def test_finished_check_refuses_missing_streams_and_drift(clips: list[Path], tmp_path: Path) -> None:
    plan = plan_join([Clip(1, clips[0])], resolution=SIZE, workdir=tmp_path)
    with pytest.raises(AssemblyError, match=r"streams \{'video': 1, 'audio': 0, 'subtitle': 0\}, planned"):
        check_finished(probe(clips[0]), clips[0], plan, {"video": 1, "audio": 1, "subtitle": 0}, [])
    drifting = tmp_path / "drift.mp4"  # 2 s of picture, 1.5 s of sound
    run_ffmpeg(
        ["-i", str(clips[0]), "-f", "lavfi", "-i", "sine=d=1.5", "-c:v", "copy", "-c:a", "aac", str(drifting)]
    )
    with pytest.raises(AssemblyError, match=r"audio and video are out of sync: audio 1\.5"):
        check_finished(probe(drifting), drifting, plan, {"video": 1, "audio": 1, "subtitle": 0}, [])


def test_clip_lengths_within_half_a_second_of_the_plan_pass(clips: list[Path], tmp_path: Path) -> None:
    plan = plan_join([Clip(4, clips[0]), Clip(5, clips[1])], resolution=SIZE, workdir=tmp_path)
    check_clip_lengths(plan, [2.4, None])
    with pytest.raises(AssemblyError, match=r"^segment 5: clip is 2.00 s, planned 2.6 s"):
        check_clip_lengths(plan, [2, 2.6])


def test_diagnose_names_the_clip_that_lost_frames(clips: list[Path], tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    whole.write_bytes(clips[1].read_bytes())
    plan = plan_join([Clip(1, clips[0]), Clip(2, whole)], resolution=SIZE, workdir=tmp_path)
    diagnose(plan)  # every promised frame is readable: nothing to blame
    whole.write_bytes(clips[1].read_bytes()[:1000])
    with pytest.raises(AssemblyError, match=r"^segment 2: clip whole\.mp4 is truncated or corrupt: 0 of 48"):
        diagnose(plan)
