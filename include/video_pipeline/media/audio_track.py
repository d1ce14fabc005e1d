"""The job's audio track (narration or music) and the voice track mixed under the video: loudness-normalised,
cut or padded to the video's exact length; music ducks under the voice.

Loudness is normalised with ffmpeg's ``loudnorm`` in its single-pass (dynamic) mode to the job's target
(EBU R128 integrated loudness, true peak -1.5 dBTP): one pass over the audio only, no analysis pass. A track
longer than the video is cut with a short fade-out; a shorter one is padded with silence. If the clips have
sound of their own, the track goes under it (-6 dB) and the mix is normalised.

A track is user content, and ffmpeg's demuxers can open other files: an HLS playlist (``.m3u8``) or a concat
list names files anywhere on the machine, and probing picks the demuxer from the bytes, not the name. So the
track's extension picks exactly one demuxer (``AUDIO_DEMUXERS``), which is forced, is the only one allowed
(``format_whitelist``), and may read only the local file itself (``protocol_whitelist=file``): a playlist
stored as ``music.mp3`` is read as MP3 and refused as not audio, and opens nothing else.

PyAV is imported where a track is opened: ``models`` imports this module for the extension table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from video_pipeline.media.ffmpeg import FFmpegError

if TYPE_CHECKING:
    from video_pipeline.storage import Storage

#: Audio track extension → the one ffmpeg demuxer that reads it. ``mov`` is the MP4/M4A demuxer (external
#: data references stay off: ``enable_drefs`` defaults to 0); ``aac`` is raw ADTS; Ogg carries Vorbis or Opus.
AUDIO_DEMUXERS: dict[str, str] = {
    "mp3": "mp3",
    "m4a": "mov",
    "aac": "aac",
    "wav": "wav",
    "flac": "flac",
    "ogg": "ogg",
    "oga": "ogg",
    "opus": "ogg",
}
#: Refused before download at validation: a track is music or narration, not an archive.
MAX_TRACK_BYTES = 1 << 30


def demuxer_for(name: str | Path) -> str:
    """The demuxer for a track's file name or storage key; ValueError naming the allowed types otherwise."""
    suffix = PurePosixPath(str(name)).suffix.lower().lstrip(".")
    if suffix not in AUDIO_DEMUXERS:
        allowed = ", ".join(sorted(AUDIO_DEMUXERS))
        raise ValueError(
            f"'{PurePosixPath(str(name)).name}' is not an audio file type this pipeline reads ({allowed})"
        )
    return AUDIO_DEMUXERS[suffix]


def open_options(path: Path) -> dict[str, str]:
    """libavformat options that confine opening ``path`` to its own demuxer and the local file."""
    return {"format_whitelist": demuxer_for(path), "protocol_whitelist": "file"}


def input_args(path: Path) -> list[str]:
    """ffmpeg input arguments for the track: its demuxer forced and whitelisted, local file only."""
    demuxer = demuxer_for(path)
    return ["-f", demuxer, "-format_whitelist", demuxer, "-protocol_whitelist", "file", "-i", str(path)]


SAMPLE_RATE = 48000
LAYOUT = "stereo"
TRUE_PEAK_DB = -1.5
FADE_OUT_S = 1.0
UNDER_DB = -6


def track_duration(path: Path) -> float:
    """Seconds of audio in ``path``; raises FFmpegError if it has no readable audio (or is not a type we read)."""
    import av

    try:
        demuxer = demuxer_for(path)
    except ValueError as exc:
        raise FFmpegError(str(exc)) from None
    try:
        with av.open(str(path), format=demuxer, options=open_options(path)) as container:
            if not container.streams.audio:
                raise FFmpegError(f"{path.name}: no audio stream")
            stream = container.streams.audio[0]
            # A forced demuxer takes any bytes; what it found must look like audio (flac reads junk as a
            # stream of 0 channels).
            if not stream.codec_context.sample_rate or not stream.codec_context.channels:
                raise FFmpegError(f"{path.name}: not a readable audio file (no sample rate or channels)")
            if stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            elif container.duration:
                seconds = container.duration / 1_000_000
            else:
                seconds = sum(frame.samples for frame in container.decode(stream)) / float(stream.rate or 1)
    except av.error.FFmpegError as exc:
        reason = getattr(exc, "strerror", None) or exc  # without the file's path
        raise FFmpegError(f"{path.name}: not a readable audio file ({reason})") from None
    if seconds <= 0:
        raise FFmpegError(f"{path.name}: no audio in it (0 s)")
    return seconds


def check_stored_track(storage: Storage, key: str) -> float:
    """Before anything is spent: the track ``key`` is an audio type, exists, is at most ``MAX_TRACK_BYTES`` and
    opens as audio with its own demuxer. Returns its length in seconds; ValueError naming the field otherwise."""
    field = "finishing.audio_key"
    try:
        suffix = PurePosixPath(key).suffix
        demuxer_for(key)
    except ValueError as exc:
        raise ValueError(f"{field}: {exc}") from None
    if not storage.exists(key):
        raise ValueError(f"{field}: there is no '{key}' in storage ({storage.url}); upload the track first")
    size = storage.size(key)
    if size > MAX_TRACK_BYTES:
        raise ValueError(
            f"{field}: '{key}' is {size} bytes, over the {MAX_TRACK_BYTES}-byte limit for a track"
        )
    with tempfile.TemporaryDirectory(prefix="vp-track-") as tmp:
        local = storage.download_to(key, Path(tmp) / f"track{suffix}")
        try:
            return track_duration(local)
        except FFmpegError as exc:
            reason = str(exc).removeprefix(f"{local.name}:").strip()
            raise ValueError(f"{field}: '{key}': {reason}") from None


#: Music ducks under speech: a compressor keyed by the voice (threshold about -30 dBFS, 8:1), quick to duck and
#: slow to come back, so the music does not pump between words.
DUCK = "sidechaincompress=threshold=0.03:ratio=8:attack=15:release=400"


def mix_graph(
    *,
    duration_s: float,
    loudness_lufs: float,
    track: str | None = None,
    track_s: float = 0.0,
    body: str | None = None,
    voice: str | None = None,
) -> str:
    """A filter graph to ``[mix]``, exactly ``duration_s`` long, 48 kHz stereo, loudness-normalised: the job's
    ``track`` (music or narration, from its input label such as ``[2:a]``), the clips' own aligned audio
    (``body``) and the voice track (``voice``), each optional. Under anything else the track plays at
    ``UNDER_DB``, and under the voice it also ducks while speech is heard."""
    end = f"{duration_s:.6f}"
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts={LAYOUT}"
    normalise = f"loudnorm=I={loudness_lufs:g}:TP={TRUE_PEAK_DB:g}:LRA=11,aresample={SAMPLE_RATE},{fmt}"
    to_length = f"apad,atrim=end={end}"
    chains: list[str] = []
    mixed: list[str] = []
    if body is not None:
        chains.append(f"{body},{fmt}[body]")
        mixed.append("[body]")
    if voice is not None:
        chains.append(f"{voice}{fmt},atrim=end={end},asetpts=PTS-STARTPTS,asplit=2[speech][key]")
        mixed.append("[speech]")
    if track is not None:
        bed = [fmt, f"atrim=end={end}", "asetpts=PTS-STARTPTS"]
        if track_s > duration_s:
            fade = min(FADE_OUT_S, duration_s / 4)
            bed.append(f"afade=t=out:st={duration_s - fade:.6f}:d={fade:.6f}")
        if mixed:
            bed.append(f"volume={UNDER_DB}dB")
        chains.append(f"{track}{','.join(bed)}[bed]")
        if voice is not None:
            chains.append(f"[bed][key]{DUCK}[ducked]")
            mixed.append("[ducked]")
        else:
            mixed.append("[bed]")
    elif voice is not None:
        chains.append("[key]anullsink")
    if not mixed:
        raise ValueError("nothing to mix")
    if len(mixed) == 1:
        chains.append(f"{mixed[0]}{normalise},{to_length}[mix]")
    else:
        chains.append(
            f"{''.join(mixed)}amix=inputs={len(mixed)}:duration=first:normalize=0,{normalise},{to_length}[mix]"
        )
    return ";".join(chains)


def encoder() -> list[str]:
    return ["-c:a", "aac", "-b:a", "192k", "-ar", str(SAMPLE_RATE), "-ch_layout", LAYOUT]
