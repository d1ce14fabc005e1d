"""The finished video, probed and decoded: soft and burned captions, the audio track, crossfades, checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.video_pipeline.media.media_files import (
    audio_rms,
    faststart,
    frame_hashes,
    frame_luma,
    make_clip,
    subtitle_cues,
)
from video_pipeline.media import AssemblyError
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.finish import Segment, finish
from video_pipeline.models import Finishing

SIZE = (320, 180)
NARRATION = {1: "Dawn comes slowly to the meadow.", 3: "Breakfast, and home."}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    media = tmp_path_factory.mktemp("finishing")
    return [make_clip(media / f"{n:03d}.mp4", hue=70 * n) for n in (1, 2, 3)]


def segments(clips: list[Path]) -> list[Segment]:
    return [Segment(n, path, NARRATION.get(n), planned_s=2) for n, path in enumerate(clips, start=1)]


def tone(dest: Path, seconds: float, volume: float = 0.05) -> Path:
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-af", f"volume={volume}", str(dest)])
    return dest


def integrated_loudness(path: Path) -> float:
    report = run_ffmpeg(
        ["-i", str(path), "-map", "0:a", "-af", "ebur128", "-f", "null", "-"], loglevel="info"
    )
    summary = report[report.rindex("Integrated loudness:") :]
    return float(summary.split("I:", 1)[1].split("LUFS", 1)[0])


def test_soft_subtitles_timed_to_segments(clips: list[Path], tmp_path: Path) -> None:
    done = finish(
        segments(clips), tmp_path / "final.mp4", options=Finishing(), resolution=SIZE, workdir=tmp_path
    )
    assert done.streams == {"video": 1, "audio": 0, "subtitle": 1}
    assert done.probe.subtitle_streams == 1 and done.probe.frame_count == 144
    assert subtitle_cues(tmp_path / "final.mp4") == [(0.0, 2.0, NARRATION[1]), (4.0, 6.0, NARRATION[3])]
    assert done.plan.reencoded == {}  # soft captions re-encode nothing
    assert done.plan.joined_by == "sample tables"  # which also wrote the captions track: no ffmpeg pass
    assert frame_hashes(tmp_path / "final.mp4") == [h for c in clips for h in frame_hashes(c)]
    assert faststart(tmp_path / "final.mp4")
    assert done.srt is not None and done.srt.read_text().startswith("1\n00:00:00,000 --> 00:00:02,000\nDawn")


def test_burned_subtitles_are_in_the_picture(clips: list[Path], tmp_path: Path) -> None:
    soft, burned = tmp_path / "soft.mp4", tmp_path / "burned.mp4"
    finish(segments(clips), soft, options=Finishing(subtitles="none"), resolution=SIZE, workdir=tmp_path)
    done = finish(
        segments(clips),
        burned,
        options=Finishing(subtitles="burned"),
        resolution=SIZE,
        workdir=tmp_path / "b",
    )
    assert done.streams == {"video": 1, "audio": 0, "subtitle": 0}
    assert done.plan.reencoded == {1: ["burned captions"], 3: ["burned captions"]}
    width = SIZE[0]
    plain, captioned = frame_luma(soft, 24), frame_luma(burned, 24)  # segment 1, narrated
    with Image.open(tmp_path / "b" / "captions" / "00001.png") as caption:
        box = caption.getchannel("A").getbbox()  # the caption band
    assert box is not None and box[1] > SIZE[1] // 2

    def mean_difference(rows: range) -> float:
        pixels = [(y * width + x) for y in rows for x in range(box[0], box[2])]
        return sum(abs(plain[p] - captioned[p]) for p in pixels) / len(pixels)

    # inside the caption band the picture changed a lot; above it only by re-encoding noise
    assert mean_difference(range(box[1], box[3])) > 20
    assert mean_difference(range(0, box[1] - 4)) < 3
    assert frame_hashes(burned)[48:96] == frame_hashes(clips[1])  # segment 2 has no narration: copied


def test_crossfade_moves_cues_to_mid_fade(clips: list[Path], tmp_path: Path) -> None:
    done = finish(
        segments(clips),
        tmp_path / "final.mp4",
        options=Finishing(transition_s=0.5),
        resolution=SIZE,
        workdir=tmp_path,
    )
    assert done.probe.frame_count == 144 - 2 * 12 and done.plan.transition_pieces == 2
    assert subtitle_cues(tmp_path / "final.mp4") == [(0.0, 1.75, NARRATION[1]), (3.25, 5.0, NARRATION[3])]


@pytest.mark.parametrize("track_s", [3.0, 9.0])
def test_audio_track_is_mixed_normalised_and_fitted(
    clips: list[Path], tmp_path: Path, track_s: float
) -> None:
    """A quiet tone shorter (padded with silence) or longer (cut, faded) than the 6-s video."""
    track = tone(tmp_path / "track.wav", track_s)
    done = finish(
        segments(clips),
        tmp_path / "final.mp4",
        options=Finishing(audio_key="assets/track.wav", loudness_lufs=-16),
        resolution=SIZE,
        workdir=tmp_path,
        audio_track=track,
    )
    result = done.probe
    assert done.streams == {"video": 1, "audio": 1, "subtitle": 1}
    assert result.audio is not None and (result.audio.codec, result.audio.sample_rate) == ("aac", 48000)
    assert abs((result.audio_duration_s or 0) - 6.0) <= 1 / 24
    assert abs(integrated_loudness(tmp_path / "final.mp4") - (-16)) <= 1.5
    playing, after = audio_rms(tmp_path / "final.mp4", [(0.5, 2.5), (3.5, 5.5)])
    assert playing > 0.05
    assert (after < 0.001) if track_s < 6 else (after > 0.05)
    assert frame_hashes(tmp_path / "final.mp4") == [h for c in clips for h in frame_hashes(c)]


def test_unreadable_audio_track_fails_clearly(clips: list[Path], tmp_path: Path) -> None:
    bad = tmp_path / "track.mp3"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(AssemblyError, match=r"^audio track: track.mp3"):
        finish(
            segments(clips),
            tmp_path / "final.mp4",
            options=Finishing(audio_key="a/track.mp3"),
            resolution=SIZE,
            workdir=tmp_path,
            audio_track=bad,
        )
    assert not (tmp_path / "final.mp4").exists()


def test_clip_far_from_its_planned_length_is_named(clips: list[Path], tmp_path: Path) -> None:
    parts = segments(clips)
    parts[1] = Segment(2, clips[1], planned_s=5)
    with pytest.raises(AssemblyError, match=r"^segment 2: clip is 2.00 s, planned 5 s"):
        finish(parts, tmp_path / "final.mp4", options=Finishing(), resolution=SIZE, workdir=tmp_path)
