"""``assemble_job``: clips from storage to final.mp4, poster, preview and subtitles in storage."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from PIL import Image

from tests.video_pipeline.media.media_files import make_clip, subtitle_cues
from video_pipeline.layout import JobLayout
from video_pipeline.media.assemble import assemble_job
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.probe import probe
from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.storage import LocalStorage


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    media = tmp_path_factory.mktemp("final-video")
    return [make_clip(media / f"{n}.mp4", size=(1280, 720), seconds=2, hue=100 * n, gop=48) for n in range(2)]


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where assemble_job's temp directory goes, to check it is removed."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    return scratch


def stored_job(
    storage: LocalStorage, clips: list[Path], count: int, finishing: dict[str, object], narrated: bool = True
) -> tuple[JobSpec, list[VideoSegment]]:
    layout = JobLayout("fox")
    segments = []
    for index in range(1, count + 1):
        storage.put_file(layout.clip(index), clips[index % len(clips)])
        segments.append(
            VideoSegment(
                index=index,
                prompt=f"shot {index}",
                narration=f"Line {index}." if narrated and index % 2 else None,
                duration_s=2,
                seed=index,
                clip_key=layout.clip(index),
            )
        )
    spec = JobSpec.model_validate(
        {
            "job_id": "fox",
            "title": "Fox",
            "segments": [{"prompt": s.prompt, "duration_s": 2} for s in segments],
            "finishing": finishing,
        },
        context={"max_segments": 1000},
    )
    return spec, segments


def test_final_video_with_everything(clip_files: list[Path], tmp_path: Path, scratch: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    run_ffmpeg(["-f", "lavfi", "-i", "sine=f=330:d=4", str(tmp_path / "music.wav")])
    storage.put_file("assets/music.wav", tmp_path / "music.wav")
    spec, segments = stored_job(storage, clip_files, 3, {"audio_key": "assets/music.wav"})

    final = assemble_job(storage, spec, list(reversed(segments)))  # order comes from the segment numbers

    layout = JobLayout("fox")
    assert final.key == layout.final and final.streams == {"video": 1, "audio": 1, "subtitle": 1}
    assert (final.width, final.height, final.codec, final.fps) == (1280, 720, "h264", 24.0)
    assert final.frame_count == 3 * 48 and final.transitions == 0 and final.reencoded == {}
    assert final.joined_by == "sample tables"  # then one ffmpeg pass mixed the music in
    assert final.poster_key == layout.final_poster and final.preview_key == layout.final_preview("gif")
    assert final.subtitles_key == layout.final_subtitles
    local = storage.download_to(layout.final, tmp_path / "final.mp4")
    assert probe(local).frame_count == final.frame_count and final.size_bytes == local.stat().st_size
    assert [text for _, _, text in subtitle_cues(local)] == ["Line 1.", "Line 3."]
    assert storage.get_bytes(layout.final_subtitles).decode().count("-->") == 2
    with Image.open(storage.path_for(layout.final_poster)) as poster:
        assert (poster.format, poster.size) == ("JPEG", (1280, 720))
    with Image.open(storage.path_for(layout.final_preview("gif"))) as gif:
        assert gif.format == "GIF" and getattr(gif, "n_frames", 1) > 10 and gif.size[0] == 320
    assert list(scratch.iterdir()) == []  # temp dir removed


def test_one_segment_webp_no_poster(clip_files: list[Path], tmp_path: Path, scratch: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    spec, segments = stored_job(
        storage, clip_files, 1, {"poster": False, "preview": "webp", "subtitles": "none"}
    )
    final = assemble_job(storage, spec, segments)
    assert final.frame_count == 48 and final.streams == {"video": 1, "audio": 0, "subtitle": 0}
    assert final.poster_key is None and final.subtitles_key is None
    assert final.preview_key == "jobs/fox/final-preview.webp" and storage.exists(final.preview_key)
    assert not storage.exists(JobLayout("fox").final_poster)
    assert list(scratch.iterdir()) == []


@pytest.mark.slow  # 200 segments, end to end through storage
def test_two_hundred_segments(tmp_path: Path, scratch: Path) -> None:
    tiny = [
        make_clip(tmp_path / f"c{n}.mp4", size=(1280, 720), seconds=2, gop=48, source="color", hue=n * 90)
        for n in range(2)
    ]
    storage = LocalStorage(tmp_path / "store")
    spec, segments = stored_job(storage, tiny, 200, {"preview": "none", "poster": False})
    final = assemble_job(storage, spec, segments)
    assert final.frame_count == 200 * 48 and final.reencoded == {} and final.joined_by == "sample tables"
    assert abs(final.duration_s - 400.0) < 0.05
    assert final.streams == {"video": 1, "audio": 0, "subtitle": 1}
    local = storage.download_to(final.key, tmp_path / "final.mp4")
    cues = subtitle_cues(local)
    assert len(cues) == 100 and cues[-1] == (396.0, 398.0, "Line 199.")
    assert list(scratch.iterdir()) == []


def test_missing_clip_is_refused(clip_files: list[Path], tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    spec, segments = stored_job(storage, clip_files, 2, {})
    segments[1].clip_key = None
    with pytest.raises(ValueError, match=r"no clip for seg 002"):
        assemble_job(storage, spec, segments)
