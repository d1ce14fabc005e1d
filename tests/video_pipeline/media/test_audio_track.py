"""The job's audio track is opened by the demuxer its type names, and by nothing else: a playlist or concat
list stored as a track cannot make ffmpeg or PyAV read a file outside the storage root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media import AssemblyError
from video_pipeline.media.audio_track import AUDIO_DEMUXERS, demuxer_for, input_args, track_duration
from video_pipeline.media.ffmpeg import FFmpegError, run_ffmpeg
from video_pipeline.media.finish import Segment, finish
from video_pipeline.models import Finishing

#: Encoder arguments for a one-second tone of each accepted type.
ENCODE = {
    "mp3": [],
    "m4a": [],
    "aac": [],
    "wav": [],
    "flac": [],
    "ogg": ["-c:a", "libvorbis"],
    "oga": ["-c:a", "flac"],
    "opus": ["-c:a", "libopus"],
}


def tone(dest: Path, seconds: float = 1.0, *codec: str) -> Path:
    run_ffmpeg(["-f", "lavfi", "-i", f"sine=f=440:d={seconds}", *codec, str(dest)])
    return dest


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Audio outside the storage root that no job may read (2 s long, so a read is measurable)."""
    return tone(tmp_path_factory.mktemp("outside-the-root") / "secret.mp3", 2.0)


def hls_playlist(dest: Path, target: Path) -> Path:
    dest.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{target}\n#EXT-X-ENDLIST\n")
    return dest


def concat_list(dest: Path, target: Path) -> Path:
    dest.write_text(f"ffconcat version 1.0\nfile '{target}'\n")
    return dest


def test_every_accepted_type_opens(tmp_path: Path) -> None:
    assert set(ENCODE) == set(AUDIO_DEMUXERS)
    for extension, codec in ENCODE.items():
        track = tone(tmp_path / f"track.{extension}", 1.0, *codec)
        assert abs(track_duration(track) - 1.0) < 0.1, extension
        upper = track.rename(tmp_path / f"TRACK.{extension.upper()}")
        assert abs(track_duration(upper) - 1.0) < 0.1, extension


def test_a_playlist_reaches_other_files_when_ffmpeg_picks_the_demuxer(secret: Path, tmp_path: Path) -> None:
    """The hazard itself, with this ffmpeg: probing a stored .m3u8 reads the file it names."""
    playlist = hls_playlist(tmp_path / "track.m3u8", secret)
    out = tmp_path / "read.wav"
    run_ffmpeg(["-i", str(playlist), str(out)])
    assert abs(track_duration(out) - 2.0) < 0.1


@pytest.mark.parametrize("extension", sorted(AUDIO_DEMUXERS))
@pytest.mark.parametrize("kind", [hls_playlist, concat_list], ids=["hls", "concat"])
def test_a_playlist_named_as_audio_opens_nothing(
    secret: Path, tmp_path: Path, extension: str, kind: object
) -> None:
    track = kind(tmp_path / f"track.{extension}", secret)  # type: ignore[operator]
    with pytest.raises(FFmpegError, match=f"track.{extension}"):
        track_duration(track)
    out = tmp_path / "read.wav"
    with pytest.raises(FFmpegError):
        run_ffmpeg([*input_args(track), str(out)])
    assert not out.exists() or out.stat().st_size < 1000  # at most a header: nothing of the secret


@pytest.mark.parametrize(
    "name", ["track.m3u8", "track.m3u", "track.txt", "track.mp4", "track", "track.mp3.m3u8"]
)
def test_other_types_are_refused_by_name(secret: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not an audio file type"):
        demuxer_for(name)
    track = hls_playlist(tmp_path / name, secret)
    with pytest.raises(FFmpegError, match="not an audio file type"):
        track_duration(track)


def test_assembly_with_a_playlist_as_its_track_fails_before_writing(secret: Path, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "001.mp4", hue=40)
    for name in ("track.mp3", "track.m3u8"):
        track = hls_playlist(tmp_path / name, secret)
        with pytest.raises(AssemblyError, match=f"audio track: .*{name}"):
            finish(
                [Segment(1, clip, None, planned_s=2)],
                tmp_path / "final.mp4",
                options=Finishing(subtitles="none"),
                resolution=(320, 180),
                workdir=tmp_path,
                audio_track=track,
            )
        assert not (tmp_path / "final.mp4").exists()
