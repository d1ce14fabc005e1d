"""What a media file holds, read with PyAV, on real files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media.ffmpeg import FFmpegError, run_ffmpeg
from video_pipeline.media.probe import (
    AudioLayout,
    StreamSignature,
    keyframes,
    probe,
    readable_frames,
    subtitle_samples,
)


@pytest.fixture(scope="module")
def voiced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("probe") / "voiced.mp4", seconds=3, audio_rate=44100)


def test_a_clip_with_audio(voiced: Path) -> None:
    found = probe(voiced)
    assert (found.width, found.height, found.codec, found.profile, found.pix_fmt) == (
        320,
        180,
        "h264",
        "High",
        "yuv420p",
    )
    assert (found.fps, found.time_base, found.frame_count, found.video_duration_s) == (
        24.0,
        "1/12288",
        72,
        3.0,
    )
    assert found.audio == AudioLayout("aac", 44100, "mono") and found.has_audio
    assert (found.video_streams, found.audio_streams, found.subtitle_streams) == (1, 1, 0)
    assert found.audio_duration_s is not None and abs(found.audio_duration_s - 3.0) < 0.05
    assert found.size_bytes == voiced.stat().st_size


def test_the_stream_signature_is_what_a_stream_copy_needs_to_match(voiced: Path, tmp_path: Path) -> None:
    other = make_clip(tmp_path / "other-picture.mp4", seconds=1, hue=120, audio_rate=44100)
    assert probe(other).stream_signature() == probe(voiced).stream_signature()  # length and picture differ
    signature = probe(voiced).stream_signature()
    assert signature.video == signature._replace(audio=None) and signature.audio is not None
    assert StreamSignature.of("h264", "High", 2, 2, "yuv420p", 23.9760239, "1/24000", None).fps == 23.976


def test_keyframes_are_read_from_the_container(voiced: Path) -> None:
    found = keyframes(voiced)  # a keyframe every 24 frames, closed GOPs
    assert [float(k.pts_s) for k in found] == [0.0, 1.0, 2.0]
    assert all(k.clean and k.dts_s < k.pts_s for k in found)  # B-frames: decoded a little before shown


def test_readable_frames_counts_what_a_truncated_file_still_holds(voiced: Path, tmp_path: Path) -> None:
    assert readable_frames(voiced) == 72
    cut = tmp_path / "cut.mp4"
    data = voiced.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert 0 < readable_frames(cut) < 72
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert readable_frames(junk) == 0


def test_a_file_that_is_not_a_video_is_an_ffmpeg_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("hello")
    with pytest.raises(FFmpegError, match=r"^notes\.mp4: not a readable video"):
        probe(text)
    sound = tmp_path / "tone.m4a"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=d=0.2", str(sound)])
    with pytest.raises(FFmpegError, match=r"^tone\.m4a: no video stream"):
        probe(sound)


def test_subtitle_samples_with_text(voiced: Path, tmp_path: Path) -> None:
    assert subtitle_samples(voiced) == []
    srt = tmp_path / "cues.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,250\nOne.\n\n2\n00:00:02,000 --> 00:00:02,750\nTwo.\n")
    captioned = tmp_path / "captioned.mp4"
    run_ffmpeg(
        [
            "-i",
            str(voiced),
            "-i",
            str(srt),
            "-map",
            "0",
            "-map",
            "1",
            "-c",
            "copy",
            "-c:s",
            "mov_text",
            str(captioned),
        ]
    )
    assert subtitle_samples(captioned) == [(0.5, 1.25), (2.0, 2.75)]  # the gaps between them hold no text
