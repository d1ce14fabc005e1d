"""ffmpeg (the binary bundled by imageio-ffmpeg, no system install) and probing with PyAV."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av


class FFmpegError(RuntimeError):
    pass


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(args: list[str], *, timeout: float = 600) -> None:
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FFmpegError(f"ffmpeg timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise FFmpegError(f"ffmpeg failed (exit {result.returncode}): {tail}")


@dataclass(frozen=True)
class VideoProbe:
    duration_s: float
    width: int
    height: int
    codec: str
    profile: str | None
    pix_fmt: str | None
    fps: float
    time_base: str
    frame_count: int
    has_audio: bool
    size_bytes: int

    def stream_signature(self) -> tuple[object, ...]:
        """What must match for clips to be joined with a stream copy."""
        return (
            self.codec,
            self.profile,
            self.width,
            self.height,
            self.pix_fmt,
            round(self.fps, 3),
            self.time_base,
            self.has_audio,
        )


def probe(path: Path) -> VideoProbe:
    """Probe a video file; raises FFmpegError if it is not a readable video."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FFmpegError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.pix_fmt is None:
                raise FFmpegError(f"{path.name}: no decodable video (truncated or corrupt?)")
            frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            ctx = stream.codec_context
            return VideoProbe(
                duration_s=round(duration, 3),
                width=ctx.width,
                height=ctx.height,
                codec=ctx.name,
                profile=ctx.profile,
                pix_fmt=ctx.pix_fmt,
                fps=float(rate),
                time_base=str(stream.time_base),
                frame_count=int(frames),
                has_audio=bool(container.streams.audio),
                size_bytes=path.stat().st_size,
            )
    except av.error.FFmpegError as exc:
        raise FFmpegError(f"{path.name}: not a readable video ({exc})") from None
