"""Real media for the assembly tests: small generated clips and ways to look inside the results."""

from __future__ import annotations

import hashlib
import math
from array import array
from pathlib import Path

import av

from video_pipeline.ffmpeg import run_ffmpeg
from video_pipeline.mp4_join import read_track


def make_clip(
    dest: Path,
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 24,
    seconds: float = 2,
    hue: int = 0,
    gop: int = 24,
    profile: str = "high",
    audio_rate: int | None = None,
    audio_layout: str = "mono",
    source: str = "testsrc2",
    preset: str | None = None,
) -> Path:
    """A testsrc2 clip (moving pattern; ``hue`` tells clips apart; ``source="color"`` for a tiny one), H.264 with a keyframe every ``gop``
    frames, time base 1/12288 and the index first, like the storyboard provider; optionally a 440 Hz tone as AAC."""
    args = ["-f", "lavfi", "-i", f"{source}=s={size[0]}x{size[1]}:r={fps}:d={seconds}"]
    if audio_rate:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r={audio_rate}:d={seconds}"]
    args += [
        "-vf",
        f"hue=h={hue}",
        "-c:v",
        "libx264",
        "-preset",
        preset or ("ultrafast" if profile == "baseline" else "veryfast"),
        "-profile:v",
        profile,
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-video_track_timescale",
        "12288",
        "-movflags",
        "+faststart",
    ]
    if audio_rate:
        args += ["-c:a", "aac", "-ch_layout", audio_layout]
    run_ffmpeg([*args, str(dest)])
    return dest


def _luma(frame: av.VideoFrame) -> bytes:
    """The visible luma bytes, row by row (a plane's rows are padded to its line size)."""
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(
        data[y * plane.line_size : y * plane.line_size + frame.width] for y in range(frame.height)
    )


def frame_hashes(path: Path) -> list[str]:
    """A hash of every decoded frame's luma plane, in presentation order."""
    with av.open(str(path)) as container:
        return [hashlib.md5(_luma(frame)).hexdigest() for frame in container.decode(video=0)]


def frame_luma(path: Path, index: int) -> bytes:
    """The luma plane of frame ``index``."""
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position == index:
                return _luma(frame)
    raise IndexError(index)


def audio_rms(path: Path, windows: list[tuple[float, float]]) -> list[float]:
    """RMS level (0..1) of the first audio stream within each (start, end) window in seconds; each decoded
    frame (~20 ms) counts towards the window its middle falls in."""
    sums = [0.0] * len(windows)
    counts = [0] * len(windows)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                if out.pts is None or not out.samples:
                    continue
                samples = array("h", bytes(out.planes[0])[: out.samples * 2])
                middle = float(out.pts * (out.time_base or 0)) + out.samples / out.sample_rate / 2
                for w, (lo, hi) in enumerate(windows):
                    if lo <= middle < hi:
                        sums[w] += sum((v / 32768) ** 2 for v in samples)
                        counts[w] += len(samples)
    return [math.sqrt(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def subtitle_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text) of each non-empty ``mov_text`` sample (2-byte length, then UTF-8 text)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name == "mov_text"
        base = stream.time_base
        assert base is not None
        cues = []
        for packet in container.demux(stream):
            data = bytes(packet)
            if packet.pts is None or len(data) <= 2:
                continue
            length = int.from_bytes(data[:2], "big")
            start = float(packet.pts * base)
            cues.append(
                (
                    round(start, 3),
                    round(start + float((packet.duration or 0) * base), 3),
                    data[2 : 2 + length].decode(),
                )
            )
        return cues


def faststart(path: Path) -> bool:
    """The index (moov) comes before the media data (mdat): playback starts before the download ends."""
    head = path.read_bytes()[:1_000_000]
    return 0 <= head.find(b"moov") < head.find(b"mdat")


def damaged(clip: Path, dest: Path, sample: int, junk: bytes) -> Path:
    """A copy of ``clip`` with the start of ``sample`` (1-based) overwritten: the index still looks intact."""
    track = read_track(clip)
    assert len(track.runs) == 1  # the clips here store their samples back to back
    offset = track.runs[0].offset + sum(track.sizes[: sample - 1])
    data = bytearray(clip.read_bytes())
    data[offset : offset + len(junk)] = junk
    dest.write_bytes(bytes(data))
    return dest
