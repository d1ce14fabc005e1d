"""Running ffmpeg: the binary bundled by imageio-ffmpeg (no system install), its errors and its time arguments."""

from __future__ import annotations

import subprocess
from fractions import Fraction


class FFmpegError(RuntimeError):
    pass


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def run_ffmpeg(args: list[str], *, timeout: float = 600, loglevel: str = "error") -> str:
    """Run ffmpeg; returns its stderr (where filters such as ``ebur128`` report), raises FFmpegError on failure."""
    command = [ffmpeg_exe(), "-hide_banner", "-loglevel", loglevel, "-nostdin", "-y", *args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise FFmpegError(f"ffmpeg timed out after {timeout:.0f} s") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise FFmpegError(f"ffmpeg failed (exit {result.returncode}): {tail}")
    return result.stderr


def seconds_arg(value: Fraction | float) -> str:
    """A time for an ffmpeg option or filter, in seconds to the microsecond."""
    return f"{float(value):.6f}"
