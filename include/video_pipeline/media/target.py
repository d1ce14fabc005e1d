"""The stream parameters every piece of a join has (``Target``), how they are chosen from the clips, why a clip
differs from them, and the encoder options that produce them.

The target is the parameters most clips already have at the job's resolution, so that most clips are copied
and only the others are re-encoded (``normalise``); x264 must be able to produce it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from video_pipeline.media.probe import AudioLayout, StreamSignature, VideoProbe

#: The parameters used when no clip can serve as the target (the offline provider's).
DEFAULT_FPS = Fraction(24)
DEFAULT_TIMESCALE = 12288
DEFAULT_AUDIO = AudioLayout(codec="aac", sample_rate=48000, layout="stereo")
#: x264 profile names as probed → the ``-profile:v`` that makes x264 produce them.
X264_PROFILES = {"High": "high", "Main": "main", "Constrained Baseline": "baseline"}
AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "opus": "libopus"}


@dataclass(frozen=True)
class Target:
    """The stream parameters every piece of the join has."""

    width: int
    height: int
    profile: str
    fps: Fraction
    timescale: int
    audio: AudioLayout | None
    codec: str = "h264"
    pix_fmt: str = "yuv420p"

    def stream_signature(self) -> StreamSignature:
        """What a clip's probe must show to be copied into the join as it is."""
        fps, time_base = float(self.fps), f"1/{self.timescale}"
        return StreamSignature.of(
            self.codec, self.profile, self.width, self.height, self.pix_fmt, fps, time_base, self.audio
        )

    def frames(self, seconds: Fraction | float) -> int:
        return round(Fraction(seconds) * self.fps)


def choose_target(probes: list[VideoProbe], resolution: tuple[int, int]) -> Target:
    """The most common video parameters among clips at the job's resolution that x264 can reproduce (ties:
    the earliest clip); the most common audio layout among clips with audio (audio is never dropped)."""
    usable = [
        p
        for p in probes
        if (p.width, p.height) == resolution
        and p.codec == "h264"
        and p.profile in X264_PROFILES
        and p.pix_fmt == "yuv420p"
        and p.fps > 0
        and p.time_base.startswith("1/")
    ]
    if usable:
        top = Counter(p.stream_signature().video for p in usable).most_common(1)[0][0]
        chosen = next(p for p in usable if p.stream_signature().video == top)
        fps = Fraction(chosen.fps).limit_denominator(1001)
        timescale = int(chosen.time_base.split("/")[1])
        profile = str(chosen.profile)
    else:
        fps, timescale, profile = DEFAULT_FPS, DEFAULT_TIMESCALE, "High"
    layouts = [p.audio for p in probes if p.audio is not None]
    audio = Counter(layouts).most_common(1)[0][0] if layouts else None
    if audio is not None and audio.codec not in AUDIO_ENCODERS:
        audio = DEFAULT_AUDIO
    return Target(resolution[0], resolution[1], profile, fps, timescale, audio)


def differences(clip_probe: VideoProbe, target: Target) -> tuple[list[str], list[str]]:
    """Why a clip cannot be copied as it is: (video reasons, audio reasons)."""
    video = []
    if (clip_probe.width, clip_probe.height) != (target.width, target.height):
        video.append(f"size {clip_probe.width}x{clip_probe.height}")
    if (clip_probe.codec, clip_probe.profile) != (target.codec, target.profile):
        video.append(f"codec {clip_probe.codec} {clip_probe.profile}")
    if clip_probe.pix_fmt != target.pix_fmt:
        video.append(f"pixel format {clip_probe.pix_fmt}")
    if round(clip_probe.fps, 3) != round(float(target.fps), 3):
        video.append(f"{clip_probe.fps:g} fps")
    if clip_probe.time_base != f"1/{target.timescale}":
        video.append(f"time base {clip_probe.time_base}")
    audio = []
    if clip_probe.audio != target.audio:
        if clip_probe.audio is None:
            audio.append("no audio")
        elif target.audio is None:  # pragma: no cover - choose_target keeps audio whenever a clip has it
            audio.append("audio")
        else:
            a = clip_probe.audio
            audio.append(f"audio {a.codec} {a.sample_rate} Hz {a.layout}")
    return video, audio


def video_encoder(target: Target) -> list[str]:
    """ffmpeg output options that encode video with the target's parameters."""
    return [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-profile:v",
        X264_PROFILES[target.profile],
        "-pix_fmt",
        target.pix_fmt,
        "-g",
        str(max(1, round(2 * target.fps))),
        "-video_track_timescale",
        str(target.timescale),
    ]


def audio_encoder(target: Target) -> list[str]:
    """ffmpeg output options that encode audio with the target's layout (the target must have audio)."""
    assert target.audio is not None
    return [
        "-c:a",
        AUDIO_ENCODERS[target.audio.codec],
        "-b:a",
        "192k",
        "-ar",
        str(target.audio.sample_rate),
        "-ch_layout",
        target.audio.layout,
    ]


def audio_format_filter(target: Target) -> str:
    """Filters that bring decoded audio to the target's rate and layout, padded with silence."""
    assert target.audio is not None
    return (
        f"aresample={target.audio.sample_rate},"
        f"aformat=sample_rates={target.audio.sample_rate}:channel_layouts={target.audio.layout},apad"
    )
