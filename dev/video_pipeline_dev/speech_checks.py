"""Checks of a finished video's voice, measured from the file itself: where ffmpeg's ``silencedetect`` hears
silence, the SRT's cues, the streams' lengths. Shared by the media tests and the end-to-end tests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.media.audio_track import track_duration
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.probe import probe
from video_pipeline.models import FinalVideo, Manifest

#: silencedetect's settings: quieter than -45 dBFS for at least 0.1 s is silence.
SILENCE_DB = -45
SILENCE_MIN_S = 0.1
#: How far a measured silence edge may be from the planned one (the engine's timings are within ~50 ms; AAC
#: frames are 21 ms).
EDGE_TOLERANCE_S = 0.08


def silences(path: Path) -> list[tuple[float, float]]:
    """The silent stretches of the file's audio, as ffmpeg's ``silencedetect`` reports them."""
    log = run_ffmpeg(
        ["-i", str(path), "-af", f"silencedetect=noise={SILENCE_DB}dB:d={SILENCE_MIN_S}", "-f", "null", "-"],
        loglevel="info",
    )
    starts = [float(v) for v in re.findall(r"silence_start: (-?[0-9.]+)", log)]
    ends = [float(v) for v in re.findall(r"silence_end: ([0-9.]+)", log)]
    if len(ends) < len(starts):  # silent to the end
        duration = track_duration(path) if path.suffix == ".wav" else probe(path).duration_s
        ends += [duration] * (len(starts) - len(ends))
    return list(zip(starts, ends, strict=True))


def silent_within(silent: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] that are silent."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in silent)


@dataclass(frozen=True)
class SrtCue:
    start_s: float
    end_s: float
    text: str


def srt_cues(text: str) -> list[SrtCue]:
    cues = []
    for block in text.strip().split("\n\n"):
        lines = block.splitlines()
        start, end = (_seconds(t) for t in lines[1].split(" --> "))
        cues.append(SrtCue(start, end, " ".join(lines[2:])))
    return cues


def _seconds(stamp: str) -> float:
    h, m, rest = stamp.strip().split(":")
    s, ms = rest.split(",")
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def check_voice(final_path: Path, final: FinalVideo) -> list[str]:
    """What is wrong with the voice of a finished video (empty: nothing): speech inside every narration's
    window, silence in every pad between and around them."""
    problems = []
    silent = silences(final_path)
    windows = sorted(final.narration.values())
    for start, end in windows:
        heard = (end - start) - silent_within(silent, start, end)
        if heard < 0.5 * (end - start):
            problems.append(f"narration {start:.2f}–{end:.2f} s: only {heard:.2f} s of sound")
    edges = [0.0, *[v for w in windows for v in w], final.duration_s]
    for pad_start, pad_end in zip(edges[::2], edges[1::2], strict=True):
        inner = (pad_start + EDGE_TOLERANCE_S, pad_end - EDGE_TOLERANCE_S)
        if inner[1] - inner[0] < SILENCE_MIN_S:
            continue
        loud = (inner[1] - inner[0]) - silent_within(silent, *inner)
        if loud > 0.02:
            problems.append(f"pad {pad_start:.2f}–{pad_end:.2f} s: {loud:.2f} s of sound")
    return problems


def check_av_sync(final_path: Path) -> float:
    """|audio − video| duration in seconds."""
    found = probe(final_path)
    return abs((found.audio_duration_s or 0.0) - found.video_duration_s)


def audio_codec(final_path: Path) -> str | None:
    found = probe(final_path)
    return found.audio.codec if found.audio is not None else None


def expected_length(manifest: Manifest, index: int) -> float:
    """A segment that follows its voice: lead + spoken narration + tail, at least 2 s."""
    segment = next(s for s in manifest.segments if s.index == index)
    voice = manifest.job.voice
    assert voice is not None and segment.narration_s is not None
    return max(2.0, voice.lead_s + segment.narration_s + voice.tail_s)
