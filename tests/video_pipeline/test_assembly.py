"""Assembly on real clips, probed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from video_pipeline.assembly import AssemblyError, assemble
from video_pipeline.ffmpeg import probe, run_ffmpeg
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.storyboard import FPS, StoryboardProvider


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("assembly")
    provider = StoryboardProvider()
    out = []
    for index in range(1, 5):
        image = provider.render_image(
            ImageRequest(prompt=f"scene {index}", seed=index, ratio="960:960", model="m", index=index),
            tmp / f"{index}.png",
        )
        request = ClipRequest(
            prompt="p",
            seed=index,
            ratio="960:960",
            model="m",
            duration_s=2,
            index=index,
            image_sha256=str(index),
        )
        out.append(provider.render_clip(request, image, tmp / f"{index:03d}.mp4"))
    return out


def test_stream_copy_join(clips: list[Path], tmp_path: Path) -> None:
    result = assemble(
        clips,
        tmp_path / "final.mp4",
        expected_durations=[2.0] * 4,
        expected_resolution=(960, 960),
        workdir=tmp_path,
    )
    assert (result.width, result.height, result.codec) == (960, 960, "h264")
    assert abs(result.duration_s - 8.0) <= 0.1
    assert result.frame_count == 8 * FPS
    assert not list(tmp_path.glob(".*.tmp*"))


def test_one_clip(clips: list[Path], tmp_path: Path) -> None:
    result = assemble(
        clips[:1],
        tmp_path / "one.mp4",
        expected_durations=[2.0],
        expected_resolution=(960, 960),
        workdir=tmp_path,
    )
    assert result.frame_count == 2 * FPS


def test_mismatched_clip_is_named(clips: list[Path], tmp_path: Path) -> None:
    odd = tmp_path / "odd.mp4"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=640x640:d=2:r=24",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(odd),
        ]
    )
    with pytest.raises(AssemblyError, match=r"clip 3 \(odd.mp4\) has stream parameters"):
        assemble(
            [clips[0], clips[1], odd],
            tmp_path / "f.mp4",
            expected_durations=[2.0] * 3,
            expected_resolution=(960, 960),
            workdir=tmp_path,
        )
    assert not (tmp_path / "f.mp4").exists()


def test_corrupt_clip_is_named(clips: list[Path], tmp_path: Path) -> None:
    broken = tmp_path / "002.mp4"
    shutil.copy(clips[1], broken)
    broken.write_bytes(broken.read_bytes()[:2000])
    with pytest.raises(AssemblyError, match=r"clip 2 \(002.mp4\) is unreadable"):
        assemble(
            [clips[0], broken],
            tmp_path / "f.mp4",
            expected_durations=[2.0, 2.0],
            expected_resolution=(960, 960),
            workdir=tmp_path,
        )


def test_wrong_plan_fails(clips: list[Path], tmp_path: Path) -> None:
    with pytest.raises(AssemblyError, match=r"planned 10\.00 s"):
        assemble(
            clips[:2],
            tmp_path / "f.mp4",
            expected_durations=[5.0, 5.0],
            expected_resolution=(960, 960),
            workdir=tmp_path,
        )
    with pytest.raises(AssemblyError, match="planned 1280x720"):
        assemble(
            clips[:2],
            tmp_path / "f.mp4",
            expected_durations=[2.0, 2.0],
            expected_resolution=(1280, 720),
            workdir=tmp_path,
        )
    assert probe(clips[0]).width == 960
