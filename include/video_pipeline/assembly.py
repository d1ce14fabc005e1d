"""Joins clips into one MP4 with ffmpeg's concat demuxer and a stream copy: the cost of copying the bytes.

Clips must share stream parameters (codec, profile, size, pixel format, fps, time base, audio layout); the
storyboard provider guarantees that. The result is probed and checked against the plan.
"""

from __future__ import annotations

import os
from pathlib import Path

from video_pipeline.ffmpeg import FFmpegError, VideoProbe, probe, run_ffmpeg


class AssemblyError(RuntimeError):
    pass


def _probe_clips(clips: list[Path]) -> list[VideoProbe]:
    probes = []
    for position, clip in enumerate(clips, start=1):
        try:
            probes.append(probe(clip))
        except (FFmpegError, OSError) as exc:
            raise AssemblyError(f"clip {position} ({clip.name}) is unreadable: {exc}") from None
    reference = probes[0].stream_signature()
    for position, (clip, clip_probe) in enumerate(zip(clips, probes, strict=True), start=1):
        if clip_probe.stream_signature() != reference:
            raise AssemblyError(
                f"clip {position} ({clip.name}) has stream parameters {clip_probe.stream_signature()} but clip 1 "
                f"has {reference}; clips must match to be joined with a stream copy"
            )
    return probes


def _concat_list(clips: list[Path], workdir: Path) -> Path:
    listing = workdir / "concat.txt"
    lines = ["ffconcat version 1.0"]
    for clip in clips:
        escaped = str(clip.resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
    listing.write_text("\n".join(lines) + "\n")
    return listing


def assemble(
    clips: list[Path],
    dest: Path,
    *,
    expected_durations: list[float],
    expected_resolution: tuple[int, int],
    workdir: Path,
) -> VideoProbe:
    """Concatenate ``clips`` into ``dest`` (atomically) and verify duration and resolution."""
    if not clips:
        raise AssemblyError("no clips to assemble")
    _probe_clips(clips)
    tmp = dest.with_name(f".{dest.name}.tmp.mp4")
    try:
        run_ffmpeg(
            [
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
                str(_concat_list(clips, workdir)),
                "-map",
                "0",
                "-c",
                "copy",
                "-movflags",
                "+faststart",
                str(tmp),
            ],
            timeout=1800,
        )
        result = probe(tmp)
        planned = sum(expected_durations)
        tolerance = 0.1 * len(expected_durations)
        if abs(result.duration_s - planned) > tolerance:
            raise AssemblyError(
                f"final video is {result.duration_s:.2f} s, planned {planned:.2f} s "
                f"(tolerance {tolerance:.1f} s)"
            )
        if (result.width, result.height) != expected_resolution:
            raise AssemblyError(
                f"final video is {result.width}x{result.height}, planned "
                f"{expected_resolution[0]}x{expected_resolution[1]}"
            )
        os.replace(tmp, dest)
    except FFmpegError as exc:
        raise AssemblyError(f"ffmpeg could not join the clips: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return probe(dest)
