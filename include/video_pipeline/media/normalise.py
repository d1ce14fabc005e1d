"""Re-encodes one clip to the join's target, one small ffmpeg run per clip: scaled to fit, padded to the target
frame, resampled to the target fps, with its caption burned in and keyframes forced where transitions need
them; or, when only its audio differs, its video copied and its audio resampled (or a silent track added)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from video_pipeline.media import AssemblyError
from video_pipeline.media.ffmpeg import FFmpegError, run_ffmpeg, seconds_arg
from video_pipeline.media.probe import VideoProbe
from video_pipeline.media.target import Target, audio_encoder, audio_format_filter, video_encoder


def normalise(
    source: Path,
    clip_probe: VideoProbe,
    target: Target,
    dest: Path,
    *,
    segment: int,
    overlay: Path | None = None,
    timed_overlays: tuple[tuple[Path, float, float], ...] = (),
    reencode_video: bool,
    keyframes_at: list[int] | None = None,
    length: Fraction | None = None,
) -> Path:
    """Bring one clip to the target: re-encode its video (fit, pad, fps, pixel format, time base, ``overlay``
    and ``timed_overlays`` (each shown from–to its clip times),
    forced keyframes at the given frame numbers, trimmed or its last frame held to ``length`` seconds) or copy
    it, and give it the target's audio. Errors name ``segment``."""
    inputs = ["-i", str(source)]
    graph = []
    maps: list[str] = []
    if reencode_video:
        w, h = target.width, target.height
        chain = (
            f"[0:v]scale={w}:{h}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={target.fps},format={target.pix_fmt}"
        )
        if length is not None and length > Fraction(clip_probe.video_duration_s).limit_denominator(100_000):
            chain += f",tpad=stop_mode=clone:stop_duration={seconds_arg(length)}"  # hold the last frame
        layers: list[tuple[Path, tuple[float, float] | None]] = (
            [(overlay, None)] if overlay is not None else []
        )
        layers += [(image, (start, end)) for image, start, end in timed_overlays]
        if layers:
            graph.append(f"{chain}[l0]")
            for n, (image, window) in enumerate(layers, start=1):
                inputs += ["-i", str(image)]
                enable = f":enable='between(t,{window[0]:.3f},{window[1]:.3f})'" if window else ""
                graph.append(f"[l{n - 1}][{n}:v]overlay=0:0{enable}[l{n}]")
            graph.append(f"[l{len(layers)}]format={target.pix_fmt}[v]")  # yuv420 blend: no RGB round trip
        else:
            graph.append(f"{chain}[v]")
        maps += ["-map", "[v]", *video_encoder(target)]
        if keyframes_at:
            # a quarter frame early, so the frame itself is the first at or after each time
            times = ",".join(seconds_arg((Fraction(f) - Fraction(1, 4)) / target.fps) for f in keyframes_at)
            maps += ["-force_key_frames", times]
    else:
        maps += ["-map", "0:v:0", "-c:v", "copy"]
    if target.audio is None:
        maps.append("-an")
    else:
        if clip_probe.audio is None:
            a = target.audio
            audio_source = f"[{inputs.count('-i')}:a]"
            inputs += ["-f", "lavfi", "-i", f"anullsrc=r={a.sample_rate}:cl={a.layout}"]
        else:
            audio_source = "[0:a:0]"
        graph.append(f"{audio_source}{audio_format_filter(target)}[a]")
        maps += ["-map", "[a]", *audio_encoder(target)]
    duration = seconds_arg(
        length if length is not None else Fraction(clip_probe.video_duration_s).limit_denominator(100_000)
    )
    args = [*inputs, "-filter_complex", ";".join(graph), *maps, "-t", duration, str(dest)]
    try:
        run_ffmpeg(args, timeout=900)
    except FFmpegError as exc:
        raise AssemblyError(f"segment {segment}: could not normalise {source.name}: {exc}") from None
    return dest
