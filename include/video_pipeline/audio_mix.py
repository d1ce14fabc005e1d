"""The job's audio track (narration or music) mixed under the video: loudness-normalised, cut or padded to
the video's exact length.

Loudness is normalised with ffmpeg's ``loudnorm`` in its single-pass (dynamic) mode to the job's target
(EBU R128 integrated loudness, true peak -1.5 dBTP): one pass over the audio only, no analysis pass. A track
longer than the video is cut with a short fade-out; a shorter one is padded with silence. If the clips have
sound of their own, the track goes under it (-6 dB) and the mix is normalised.
"""

from __future__ import annotations

from pathlib import Path

import av

from video_pipeline.ffmpeg import FFmpegError

SAMPLE_RATE = 48000
LAYOUT = "stereo"
TRUE_PEAK_DB = -1.5
FADE_OUT_S = 1.0
UNDER_DB = -6


def track_duration(path: Path) -> float:
    """Seconds of audio in ``path``; raises FFmpegError if it has no readable audio."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise FFmpegError(f"{path.name}: no audio stream")
            stream = container.streams.audio[0]
            if stream.duration and stream.time_base:
                return float(stream.duration * stream.time_base)
            if container.duration:
                return container.duration / 1_000_000
            return sum(frame.samples for frame in container.decode(stream)) / float(stream.rate or 1)
    except av.error.FFmpegError as exc:
        raise FFmpegError(f"{path.name}: not a readable audio file ({exc})") from None


def mix_graph(
    *,
    track: str,
    track_s: float,
    duration_s: float,
    loudness_lufs: float,
    body: str | None = None,
) -> str:
    """A filter graph from the track's input label (``[2:a]``), and the clips' own (aligned) audio if any,
    to ``[mix]``: exactly ``duration_s`` long, 48 kHz stereo."""
    end = f"{duration_s:.6f}"
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts={LAYOUT}"
    bed = [fmt, f"atrim=end={end}", "asetpts=PTS-STARTPTS"]
    if track_s > duration_s:
        fade = min(FADE_OUT_S, duration_s / 4)
        bed.append(f"afade=t=out:st={duration_s - fade:.6f}:d={fade:.6f}")
    normalise = f"loudnorm=I={loudness_lufs:g}:TP={TRUE_PEAK_DB:g}:LRA=11,aresample={SAMPLE_RATE},{fmt}"
    to_length = f"apad,atrim=end={end}"
    if body is None:
        return f"{track}{','.join(bed)},{normalise},{to_length}[mix]"
    return (
        f"{track}{','.join(bed)},volume={UNDER_DB}dB[bed];"
        f"{body},{fmt}[body];"
        f"[body][bed]amix=inputs=2:duration=first:normalize=0,{normalise},{to_length}[mix]"
    )


def encoder() -> list[str]:
    return ["-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ch_layout", LAYOUT]
