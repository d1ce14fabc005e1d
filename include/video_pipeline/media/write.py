"""Writes the joined or finished MP4 with its index (moov) first, in one pass, into a temp file that replaces
the destination only once the caller's checks pass (``output_for``).

Without audio, the join itself writes the file: by sample tables when the plan allows (``table_join``, which
also writes the captions track), else with ffmpeg's concat demuxer (stream copy). With audio, or captions the
table join cannot write, one ffmpeg pass (``write_finished``) reads the joined video (the concat demuxer over
the clips, or the file joined by sample tables): the video is stream-copied, the SRT is muxed as a
``mov_text`` track, the audio (the clips' own and/or the job's track) is encoded, and the index is written at
the front, in space reserved for it (``write_mp4``: playback starts before the download ends, without
``+faststart``'s second pass).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

from video_pipeline.atomic_write import atomic_write
from video_pipeline.media import AssemblyError, audio_track, table_join
from video_pipeline.media.check import diagnose
from video_pipeline.media.ffmpeg import FFmpegError, run_ffmpeg, seconds_arg
from video_pipeline.media.plan import JoinPlan
from video_pipeline.media.target import audio_encoder

#: Bytes of MP4 index per sample (sizes, offsets, timing, sync entries), generously; plus a fixed part.
MOOV_BYTES_PER_SAMPLE = 24
MOOV_BASE_BYTES = 65_536

Captions = list[tuple[float, float, str]]  # (start s, end s, text), in order, not overlapping


@contextmanager
def output_for(plan: JoinPlan, dest: Path, what: str) -> Iterator[Path]:
    """A temp path to write and check the joined video in; it replaces ``dest`` when the block ends without
    error. A failed or short join names the clip to blame (else says it could not ``what``), and nothing is
    left behind."""
    try:
        with atomic_write(dest) as tmp:
            yield tmp
    except (FFmpegError, OSError) as exc:
        diagnose(plan)
        raise AssemblyError(f"could not {what}: {exc}") from None


def samples_planned(plan: JoinPlan, extra: int = 0) -> int:
    """Video frames, audio packets (of ~1024 samples) and ``extra`` (subtitle cues) the output will index."""
    audio = 0
    if plan.target.audio is not None or extra:
        audio = math.ceil(plan.duration_s * 48_000 / 1024) + 2 * len(plan.sources)
    return plan.frame_count + audio + 2 * extra


def write_mp4(args: list[str], dest: Path, *, samples: int, timeout: float = 3600) -> None:
    """Write an MP4 whose index (moov) comes first, in one pass: space for it is reserved up front from the
    planned sample count (``-moov_size``). ``+faststart`` would write the file and then move it all again;
    it is the fallback if the reservation turns out too small."""
    reserve = MOOV_BASE_BYTES + MOOV_BYTES_PER_SAMPLE * samples
    try:
        run_ffmpeg([*args, "-moov_size", str(reserve), str(dest)], timeout=timeout)
    except FFmpegError as exc:
        if "reserved_moov_size is too small" not in str(exc):
            raise
        run_ffmpeg([*args, "-movflags", "+faststart", str(dest)], timeout=timeout)


def concat_input(plan: JoinPlan) -> list[str]:
    """ffmpeg input options that read the joined clips."""
    return ["-f", "concat", "-safe", "0", "-i", str(plan.listing)]


def aligned_audio(plan: JoinPlan) -> str:
    """Filters for the joined audio: decoded samples are padded or dropped to follow their timestamps (each
    clip's sound starts with its picture), then cut to the video's exact length."""
    end = seconds_arg(Fraction(plan.frame_count) / plan.target.fps)
    return f"aresample=async=1:first_pts=0,apad,atrim=end={end}"


def write_join(plan: JoinPlan, dest: Path) -> None:
    """The plain join: the video stream-copied, audio (if any) re-aligned and re-encoded, index first."""
    if not plan.has_audio:
        write_video(plan, dest)
        return
    audio = ["-map", "0:a:0", "-af", aligned_audio(plan), *audio_encoder(plan.target)]
    write_mp4(
        [*concat_input(plan), "-map", "0:v:0", "-c:v", "copy", *audio], dest, samples=samples_planned(plan)
    )


def write_video(plan: JoinPlan, dest: Path, captions: Captions | None = None) -> None:
    """Write the joined video without audio, index first: by sample tables when the plan allows (with a
    timed-text track of ``captions``), else with ffmpeg's concat demuxer (stream copy; captions are then
    muxed by ``write_finished``)."""
    if plan.tables is not None:
        _write_tables(plan, dest, captions)
    elif captions:
        raise ValueError("captions are written by the sample-table join only")
    else:
        write_mp4(
            [*concat_input(plan), "-map", "0:v:0", "-c:v", "copy", "-an"], dest, samples=samples_planned(plan)
        )


def write_finished(
    plan: JoinPlan,
    dest: Path,
    *,
    workdir: Path,
    srt: Path | None,
    track: Path | None,
    loudness_lufs: float,
    cue_count: int,
    voice: Path | None = None,
) -> None:
    """The ffmpeg pass that adds the captions track (``srt``) and the audio (the clips' own, aligned, the voice
    track and/or the job's ``track``, mixed and normalised to ``loudness_lufs``) to the joined video."""
    inputs = _video_input(plan, workdir)
    maps = ["-map", "0:v:0", "-c:v", "copy"]
    graph = ""
    if srt is not None:
        inputs += ["-i", str(srt)]
    if track is not None or voice is not None:
        track_label, track_s = None, 0.0
        if track is not None:
            try:
                track_s = audio_track.track_duration(track)
            except FFmpegError as exc:
                raise AssemblyError(f"audio track: {exc}") from None
            track_label = f"[{inputs.count('-i')}:a:0]"
            inputs += audio_track.input_args(track)  # its own demuxer only, and no other file
        voice_label = None
        if voice is not None:
            voice_label = f"[{inputs.count('-i')}:a:0]"
            inputs += audio_track.input_args(voice)  # written by voice_track: a WAV, read as one
        graph = audio_track.mix_graph(
            track=track_label,
            track_s=track_s,
            voice=voice_label,
            duration_s=plan.duration_s,
            loudness_lufs=loudness_lufs,
            body=f"[0:a:0]{aligned_audio(plan)}" if plan.has_audio else None,
        )
        maps += ["-map", "[mix]", *audio_track.encoder()]
    elif plan.has_audio:
        graph = f"[0:a:0]{aligned_audio(plan)}[mix]"
        maps += ["-map", "[mix]", *audio_encoder(plan.target)]
    if srt is not None:
        maps += ["-map", "1:s:0", "-c:s", "mov_text", "-metadata:s:s:0", "language=und"]
    write_mp4(
        [*inputs, *(["-filter_complex", graph] if graph else []), *maps],
        dest,
        samples=samples_planned(plan, extra=cue_count + int(track is not None or voice is not None)),
    )


def _video_input(plan: JoinPlan, workdir: Path) -> list[str]:
    """ffmpeg input options whose input 0 is the joined video (and, from the concat demuxer, the clips' audio)."""
    if plan.tables is None:
        return concat_input(plan)
    video = workdir / "joined-video.mp4"
    _write_tables(plan, video)
    return ["-i", str(video)]


def _write_tables(plan: JoinPlan, dest: Path, captions: Captions | None = None) -> None:
    assert plan.tables is not None
    try:
        table_join.write_joined(plan.tables, dest, captions=captions)
    except table_join.Corrupt as exc:
        index = next(index for index, path, _ in plan.sources if path == exc.path)
        raise AssemblyError(f"segment {index}: clip {exc.path.name} is corrupt: {exc}") from None
