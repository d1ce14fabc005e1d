"""What a media file holds, read with PyAV: streams, lengths, keyframes, subtitle samples, and the stream
signature that says whether two clips can be joined by a stream copy.

PyAV is imported where a file is probed: rendering with ffmpeg does not need it, and every Airflow task process
that imports this module would pay ~40 ms for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from video_pipeline.media.ffmpeg import FFmpegError


@dataclass(frozen=True)
class AudioLayout:
    """What must match for audio to be joined with a stream copy."""

    codec: str
    sample_rate: int
    layout: str


class StreamSignature(NamedTuple):
    """What must match for clips to be joined with a stream copy (fps rounded to the thousandth). Probed clips
    and the join's target (``target.Target``) are compared by it."""

    codec: str
    profile: str | None
    width: int
    height: int
    pix_fmt: str | None
    fps: float
    time_base: str
    audio: AudioLayout | None

    @classmethod
    def of(
        cls,
        codec: str,
        profile: str | None,
        width: int,
        height: int,
        pix_fmt: str | None,
        fps: float,
        time_base: str,
        audio: AudioLayout | None,
    ) -> StreamSignature:
        return cls(codec, profile, width, height, pix_fmt, round(fps, 3), time_base, audio)

    @property
    def video(self) -> StreamSignature:
        """The video part only (the audio is made to match separately)."""
        return self._replace(audio=None)


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
    video_duration_s: float = 0.0
    audio: AudioLayout | None = None
    audio_duration_s: float | None = None
    subtitle_streams: int = 0
    audio_streams: int = 0
    video_streams: int = 1

    def stream_signature(self) -> StreamSignature:
        return StreamSignature.of(
            self.codec,
            self.profile,
            self.width,
            self.height,
            self.pix_fmt,
            self.fps,
            self.time_base,
            self.audio,
        )


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or not time_base:
        return None
    return float(value * time_base)


def probe(path: Path) -> VideoProbe:
    """Probe a video file; raises FFmpegError if it is not a readable video."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise FFmpegError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.pix_fmt is None:
                raise FFmpegError(f"{path.name}: no decodable video (truncated or corrupt?)")
            frames = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            video_duration = _seconds(stream.duration, stream.time_base)
            if video_duration is None:
                video_duration = frames / float(rate) if rate else 0.0
            duration = container.duration / 1_000_000 if container.duration else video_duration
            audio = None
            audio_duration = None
            if container.streams.audio:
                astream = container.streams.audio[0]
                audio = AudioLayout(
                    codec=astream.codec_context.name,
                    sample_rate=int(astream.rate or 0),
                    layout=astream.layout.name,
                )
                audio_duration = _seconds(astream.duration, astream.time_base)
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
                has_audio=audio is not None,
                size_bytes=path.stat().st_size,
                video_duration_s=round(video_duration, 4),
                audio=audio,
                audio_duration_s=None if audio_duration is None else round(audio_duration, 4),
                subtitle_streams=len(container.streams.subtitles),
                audio_streams=len(container.streams.audio),
                video_streams=len(container.streams.video),
            )
    except av.error.FFmpegError as exc:
        raise FFmpegError(f"{path.name}: not a readable video ({exc})") from None


@dataclass(frozen=True)
class Keyframe:
    pts_s: Fraction
    dts_s: Fraction
    #: Nothing decoded after it is shown before it, nothing decoded before it is shown after it (a closed
    #: GOP boundary): a stream copy can start or end here.
    clean: bool


def keyframes(path: Path) -> list[Keyframe]:
    """The video keyframes' presentation and decoding times, read from the container (no decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            base = stream.time_base or Fraction(1, 1)
            packets = [
                (packet.pts, packet.dts if packet.dts is not None else packet.pts, packet.is_keyframe)
                for packet in container.demux(stream)
                if packet.pts is not None
            ]
    except av.error.FFmpegError as exc:
        raise FFmpegError(f"{path.name}: not a readable video ({exc})") from None
    # decode order: the latest pts before each packet, and the earliest pts from each packet on
    latest_before: list[float] = []
    highest = float("-inf")
    for pts, _, _ in packets:
        latest_before.append(highest)
        highest = max(highest, pts)
    earliest_from = [0.0] * len(packets)
    lowest = float("inf")
    for position in range(len(packets) - 1, -1, -1):
        lowest = min(lowest, packets[position][0])
        earliest_from[position] = lowest
    return sorted(
        (
            Keyframe(
                pts_s=pts * base,
                dts_s=dts * base,
                clean=latest_before[position] < pts and earliest_from[position] >= pts,
            )
            for position, (pts, dts, key) in enumerate(packets)
            if key
        ),
        key=lambda k: k.pts_s,
    )


def readable_frames(path: Path) -> int:
    """How many video packets can actually be read (a clip cut short after its index still promises all)."""
    import av

    count = 0
    try:
        with av.open(str(path)) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.size:
                    count += 1
    except (av.error.FFmpegError, IndexError, OSError):
        pass
    return count


def subtitle_samples(path: Path) -> list[tuple[float, float]]:
    """(start, end) of each subtitle sample that holds text, in seconds."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.subtitles:
            return []
        stream = container.streams.subtitles[0]
        base = stream.time_base or Fraction(1, 1000)
        return [
            (float(p.pts * base), float((p.pts + (p.duration or 0)) * base))
            for p in container.demux(stream)
            if p.pts is not None and p.size > 2  # mov_text writes empty samples for gaps
        ]
