"""Crossfades that re-encode only their windows.

For each boundary, the tail of one clip from its last clean keyframe before the fade and the head of the next
up to its first clean keyframe after the fade are decoded, crossfaded (``xfade``, ``acrossfade``) and encoded
as one short piece; the middle of every clip is copied between keyframes (concat ``inpoint``/``outpoint``). A
clip without a keyframe between its two fades is re-encoded with keyframes forced at the fade edges
(``normalise``). Each transition shortens the video by its duration (the clips overlap).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from video_pipeline.media.ffmpeg import run_ffmpeg, seconds_arg
from video_pipeline.media.probe import keyframes
from video_pipeline.media.target import Target, audio_encoder, video_encoder


@dataclass(frozen=True)
class Cuts:
    """Where a clip's copied middle starts (``head``, a keyframe) and ends (``tail``, a keyframe), in frames."""

    head: int
    tail: int
    tail_dts: Fraction | None


def clean_keyframes(path: Path, fps: Fraction) -> dict[int, Fraction]:
    """Keyframes a stream copy can start at: frame number → decoding time. A keyframe is clean when no
    later-decoded frame is shown before it (a closed GOP), so a part starting there decodes on its own."""
    found = keyframes(path)
    return {round(k.pts_s * fps): k.dts_s for k in found if k.clean}


def find_cuts(path: Path, frames: int, fps: Fraction, fade: int, *, head: bool, tail: bool) -> Cuts | None:
    """The copyable middle of a clip of ``frames`` frames that fades in (``head``) and/or out (``tail``) over
    ``fade`` frames; None when it has no clean keyframe where one is needed."""
    clean = clean_keyframes(path, fps)
    start = 0
    if head:
        start = min((f for f in clean if f >= fade), default=frames)
    end, end_dts = frames, None
    if tail:
        before = [f for f in clean if f <= frames - fade]
        if not before:
            return None
        end = max(before)
        end_dts = clean[end]
    if start > end:
        return None
    return Cuts(start, end, end_dts)


def encode_transition(
    left: Path,
    left_from: int,
    left_frames: int,
    right: Path,
    right_to: int,
    fade: int,
    target: Target,
    dest: Path,
) -> int:
    """Encode one transition window: ``left`` from frame ``left_from`` to its end, crossfaded into ``right``
    up to frame ``right_to``. Returns the piece's frame count."""
    fps = target.fps
    tail = left_frames - left_from
    offset = Fraction(tail - fade) / fps
    graph = [
        "[0:v]setpts=PTS-STARTPTS[l]",
        f"[1:v]trim=end_frame={right_to},setpts=PTS-STARTPTS[r]",
        f"[l][r]xfade=transition=fade:duration={seconds_arg(Fraction(fade) / fps)}:offset={seconds_arg(offset)},"
        f"format={target.pix_fmt}[v]",
    ]
    maps = ["-map", "[v]", *video_encoder(target)]
    if target.audio is not None:
        graph += [
            "[0:a]asetpts=PTS-STARTPTS[la]",
            f"[1:a]atrim=end={seconds_arg(Fraction(right_to) / fps)},asetpts=PTS-STARTPTS[ra]",
            f"[la][ra]acrossfade=d={seconds_arg(Fraction(fade) / fps)}[a]",
        ]
        maps += ["-map", "[a]", *audio_encoder(target)]
    else:
        maps.append("-an")
    run_ffmpeg(
        [
            "-ss",
            seconds_arg(Fraction(left_from) / fps),
            "-i",
            str(left),
            "-t",
            seconds_arg((Fraction(right_to) + Fraction(1, 2)) / fps),
            "-i",
            str(right),
            "-filter_complex",
            ";".join(graph),
            *maps,
            str(dest),
        ],
        timeout=300,
    )
    return tail + right_to - fade
