"""The voice track: every narrated segment's speech placed where its segment is in the video, as one WAV that
the finishing pass mixes (``audio_track.mix_graph``).

Each narration is heard from its segment's start plus the voice's lead (``lead_s``); only its speech is used
(the silence a voice leaves before and after it in its file is cut), and it stops at its segment's end, or
where the next narration starts, whichever is first (a narration longer than a fixed-length segment is cut,
with a short fade; the gate shows it). Between narrations the track is digital silence, so a pad is silent.

The track is written sample by sample in order (48 kHz mono 16-bit PCM): each narration decoded and resampled
by PyAV, silence written as zeros; memory holds one narration at a time. A 500-segment video needs no
500-input filter graph.
"""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.media import AssemblyError
from video_pipeline.media.audio_track import demuxer_for, open_options
from video_pipeline.media.plan import Span

SAMPLE_RATE = 48000
_SAMPLE_BYTES = 2
#: A narration cut by its segment's end fades out over this long.
CUT_FADE_S = 0.05


@dataclass(frozen=True)
class Spoken:
    """One segment's narration: its audio file, where its speech starts and ends in it (s), and the silence
    before it in the segment (s)."""

    index: int
    audio: Path
    speech_start_s: float
    speech_end_s: float
    lead_s: float


@dataclass(frozen=True)
class Placed:
    """Where a narration is heard in the video: from ``at_s``, its file's ``from_s``–``to_s``; ``cut`` when its
    segment ended before its speech did."""

    spoken: Spoken
    at_s: float
    from_s: float
    to_s: float
    cut: bool

    @property
    def end_s(self) -> float:
        return self.at_s + (self.to_s - self.from_s)


def place(spans: list[Span], spoken: dict[int, Spoken]) -> list[Placed]:
    """Each narration on the video's timeline, in order, never overlapping the next."""
    placed: list[Placed] = []
    voiced = [(span, spoken[span.index]) for span in spans if span.index in spoken]
    for n, (span, narration) in enumerate(voiced):
        at = span.start_s + narration.lead_s
        stop = span.end_s
        if n + 1 < len(voiced):
            following_span, following = voiced[n + 1]
            stop = min(stop, following_span.start_s + following.lead_s)
        length = narration.speech_end_s - narration.speech_start_s
        heard = max(0.0, min(length, stop - at))
        placed.append(
            Placed(
                narration,
                round(at, 6),
                narration.speech_start_s,
                narration.speech_start_s + heard,
                cut=heard + 1e-3 < length,
            )
        )
    return placed


def _pcm(placed: Placed) -> bytes:
    """The heard part of a narration as 48 kHz mono s16 PCM (faded out over its last ``CUT_FADE_S`` when cut)."""
    import av

    path = placed.spoken.audio
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[bytes] = []
    try:
        with av.open(str(path), format=demuxer_for(path), options=open_options(path)) as container:
            stream = container.streams.audio[0]
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(bytes(out.planes[0])[: out.samples * _SAMPLE_BYTES])
            for out in resampler.resample(None):
                chunks.append(bytes(out.planes[0])[: out.samples * _SAMPLE_BYTES])
    except (av.error.FFmpegError, IndexError, ValueError) as exc:
        raise AssemblyError(
            f"segment {placed.spoken.index}: narration {path.name} is unreadable: {exc}"
        ) from None
    pcm = b"".join(chunks)
    first = round(placed.from_s * SAMPLE_RATE) * _SAMPLE_BYTES
    last = round(placed.to_s * SAMPLE_RATE) * _SAMPLE_BYTES
    heard = pcm[first:last]
    if placed.cut:
        heard = _faded(heard)
    return heard


def _faded(pcm: bytes) -> bytes:
    samples = memoryview(bytearray(pcm)).cast("h")
    fade = min(len(samples), round(CUT_FADE_S * SAMPLE_RATE))
    for n in range(fade):
        at = len(samples) - fade + n
        samples[at] = int(samples[at] * (fade - n) / fade)
    return samples.tobytes()


def write_voice_track(placed: list[Placed], duration_s: float, dest: Path) -> Path:
    """The voice track: exactly ``duration_s`` long, each narration where ``place`` put it, silence elsewhere."""
    total = round(duration_s * SAMPLE_RATE)
    written = 0
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(_SAMPLE_BYTES)
        out.setframerate(SAMPLE_RATE)
        for piece in placed:
            start = min(total, round(piece.at_s * SAMPLE_RATE))
            if start > written:
                out.writeframes(bytes((start - written) * _SAMPLE_BYTES))
                written = start
            pcm = _pcm(piece)[: (total - written) * _SAMPLE_BYTES]
            out.writeframes(pcm)
            written += len(pcm) // _SAMPLE_BYTES
        if total > written:
            out.writeframes(bytes((total - written) * _SAMPLE_BYTES))
    return dest
