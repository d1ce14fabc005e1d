"""From approved clips to the finished MP4, on local files: join, captions, audio track, one final pass, checks.

Everything after the per-clip work in ``assembly`` happens in one pass over the media where it can. Without
audio, the join itself writes the finished file (``assembly.write_video``; the sample-table join also writes
the captions track). Otherwise an ffmpeg pass reads the joined video (the concat demuxer over the clips, or
the file joined by sample tables): the video is stream-copied, the SRT is muxed as a ``mov_text`` track, the
audio (clips' own and/or the job's track) is encoded, and the index is written at the front, in space
reserved for it (``write_mp4``: playback starts before the download ends, without ``+faststart``'s second
pass). The result is probed and checked against
the plan (frames, duration, size, streams, A/V sync); it replaces ``dest`` only if every check passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from video_pipeline import audio_mix
from video_pipeline.assembly import (
    AssemblyError,
    Clip,
    JoinPlan,
    aligned_audio,
    audio_output,
    check_joined,
    plan_join,
    samples_planned,
    video_input,
    write_checked,
    write_mp4,
    write_video,
)
from video_pipeline.ffmpeg import FFmpegError, VideoProbe
from video_pipeline.models import Finishing
from video_pipeline.subtitles import Cue, caption_image, caption_text, cues_for, write_srt


@dataclass(frozen=True)
class Segment:
    index: int
    clip: Path
    narration: str | None = None
    planned_s: float | None = None


#: How far a clip may be from its segment's planned length (providers round to whole frames or seconds).
LENGTH_TOLERANCE_S = 0.5


def _check_lengths(segments: list[Segment], plan: JoinPlan) -> None:
    for segment, span in zip(segments, plan.spans, strict=True):
        length = span.end_s - span.start_s
        if segment.planned_s is not None and abs(length - segment.planned_s) > LENGTH_TOLERANCE_S:
            raise AssemblyError(
                f"segment {segment.index}: clip is {length:.2f} s, planned {segment.planned_s:g} s"
            )


@dataclass(frozen=True)
class Finished:
    probe: VideoProbe
    plan: JoinPlan
    cues: list[Cue]
    srt: Path | None
    streams: dict[str, int]


def _subtitle_packets(path: Path) -> list[tuple[float, float]]:
    """(start, end) of each subtitle sample, in seconds."""
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


def verify(result: VideoProbe, path: Path, plan: JoinPlan, streams: dict[str, int], cues: list[Cue]) -> None:
    """Check the finished file against the plan; a mismatch raises AssemblyError saying what differs."""
    check_joined(result, plan)
    found = {
        "video": result.video_streams,
        "audio": result.audio_streams,
        "subtitle": result.subtitle_streams,
    }
    if found != streams:
        raise AssemblyError(f"final video has streams {found}, planned {streams}")
    frame = 1 / float(plan.target.fps)
    if streams["audio"]:
        audio_s = result.audio_duration_s or 0.0
        if abs(audio_s - result.video_duration_s) > frame:
            raise AssemblyError(
                f"audio and video are out of sync: audio {audio_s:.3f} s, video {result.video_duration_s:.3f} s "
                f"(more than one frame, {frame * 1000:.0f} ms, apart)"
            )
    if streams["subtitle"]:
        samples = _subtitle_packets(path)
        if len(samples) != len(cues) or any(
            abs(start - cue.start_s) > 0.002 or abs(end - cue.end_s) > 0.002
            for (start, end), cue in zip(samples, cues, strict=False)
        ):
            raise AssemblyError(
                f"subtitle track has cues {samples}, planned {[(c.start_s, c.end_s) for c in cues]}"
            )


def finish(
    segments: list[Segment],
    dest: Path,
    *,
    options: Finishing,
    resolution: tuple[int, int],
    workdir: Path,
    audio_track: Path | None = None,
) -> Finished:
    """Assemble ``segments`` (in order) into ``dest`` with the finishing ``options``."""
    narration = {s.index: text for s in segments if (text := caption_text(s.narration or ""))}
    burn = options.subtitles == "burned"
    captions = workdir / "captions"
    if burn and narration:
        captions.mkdir(parents=True, exist_ok=True)
    clips = [
        Clip(
            s.index,
            s.clip,
            caption_image(narration[s.index], resolution, captions / f"{s.index:05d}.png")
            if burn and s.index in narration
            else None,
        )
        for s in segments
    ]
    plan = plan_join(clips, resolution=resolution, workdir=workdir, transition_s=options.transition_s)
    _check_lengths(segments, plan)
    cues = cues_for(plan.spans, narration, plan.transition_s) if options.subtitles == "soft" else []
    srt = write_srt(cues, workdir / "final.srt") if cues else None

    streams = {
        "video": 1,
        "audio": int(audio_track is not None or plan.has_audio),
        "subtitle": int(srt is not None),
    }

    def write(tmp: Path) -> None:
        if streams["audio"] or (srt is not None and plan.tables is None):
            _remux(plan, tmp, workdir=workdir, srt=srt, audio_track=audio_track, options=options, cues=cues)
        else:
            write_video(plan, tmp, captions=[(c.start_s, c.end_s, c.text) for c in cues])

    result = write_checked(
        plan,
        dest,
        write,
        lambda result, tmp: verify(result, tmp, plan, streams, cues),
        "finish the video",
    )
    return Finished(probe=result, plan=plan, cues=cues, srt=srt, streams=streams)


def _remux(
    plan: JoinPlan,
    dest: Path,
    *,
    workdir: Path,
    srt: Path | None,
    audio_track: Path | None,
    options: Finishing,
    cues: list[Cue],
) -> None:
    """The ffmpeg pass that adds the captions track and the audio to the joined video."""
    inputs = video_input(plan, workdir)
    maps = ["-map", "0:v:0", "-c:v", "copy"]
    graph = ""
    if srt is not None:
        inputs += ["-i", str(srt)]
    if audio_track is not None:
        try:
            track_s = audio_mix.track_duration(audio_track)
        except FFmpegError as exc:
            raise AssemblyError(f"audio track: {exc}") from None
        track_input = inputs.count("-i")
        inputs += audio_mix.input_args(audio_track)  # its own demuxer only, and no other file
        graph = audio_mix.mix_graph(
            track=f"[{track_input}:a:0]",
            track_s=track_s,
            duration_s=plan.duration_s,
            loudness_lufs=options.loudness_lufs,
            body=f"[0:a:0]{aligned_audio(plan)}" if plan.has_audio else None,
        )
        maps += ["-map", "[mix]", *audio_mix.encoder()]
    elif plan.has_audio:
        graph = f"[0:a:0]{aligned_audio(plan)}[mix]"
        maps += ["-map", "[mix]", *audio_output(plan)]
    if srt is not None:
        maps += ["-map", "1:s:0", "-c:s", "mov_text", "-metadata:s:s:0", "language=und"]
    write_mp4(
        [*inputs, *(["-filter_complex", graph] if graph else []), *maps],
        dest,
        samples=samples_planned(plan, extra=len(cues) + int(audio_track is not None)),
    )
