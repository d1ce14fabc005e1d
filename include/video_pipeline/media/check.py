"""Checks a written video against its plan: frames, duration, size, streams, A/V sync, subtitle cues and each
clip's length against its segment's; and, when a join comes up short, names the clip to blame."""

from __future__ import annotations

from pathlib import Path

from video_pipeline.media import AssemblyError
from video_pipeline.media.captions import Cue
from video_pipeline.media.plan import JoinPlan
from video_pipeline.media.probe import VideoProbe, probe, readable_frames, subtitle_samples

#: How far a clip may be from its segment's planned length (providers round to whole frames or seconds).
LENGTH_TOLERANCE_S = 0.5
#: How far a subtitle sample may be from its cue (the track's time scale is milliseconds).
CUE_TOLERANCE_S = 0.002


def check_clip_lengths(plan: JoinPlan, planned_s: list[float | None]) -> None:
    """Each segment's clip (in plan order) against its planned length (None: not planned)."""
    for span, planned in zip(plan.spans, planned_s, strict=True):
        length = span.end_s - span.start_s
        if planned is not None and abs(length - planned) > LENGTH_TOLERANCE_S:
            raise AssemblyError(f"segment {span.index}: clip is {length:.2f} s, planned {planned:g} s")


def probe_written(plan: JoinPlan, path: Path) -> VideoProbe:
    """Probe the joined file; if it holds fewer frames than planned, name the clip whose frames cannot all
    be read (the plan's own check then reports any other shortfall)."""
    result = probe(path)
    if result.frame_count != plan.frame_count:
        diagnose(plan)
    return result


def diagnose(plan: JoinPlan) -> None:
    """After a failed or short join: raise naming the first clip whose frames cannot all be read."""
    for index, path, promised in plan.sources:
        readable = readable_frames(path)
        if readable < promised:
            raise AssemblyError(
                f"segment {index}: clip {path.name} is truncated or corrupt: {readable} of {promised} frames readable"
            )


def check_joined(result: VideoProbe, plan: JoinPlan) -> None:
    """The joined video must have exactly the planned frames, size and duration (within one frame); a miss
    says how the clips were joined (through ffmpeg: naming the clip whose index the table join refused)."""
    frame = 1 / float(plan.target.fps)
    how = f" (joined by {plan.joined_by})"
    if result.frame_count != plan.frame_count:
        raise AssemblyError(f"final video has {result.frame_count} frames, planned {plan.frame_count}{how}")
    if abs(result.video_duration_s - plan.duration_s) > frame + 1e-3:
        raise AssemblyError(
            f"final video is {result.video_duration_s:.3f} s, planned {plan.duration_s:.3f} s{how}"
        )
    if (result.width, result.height) != (plan.target.width, plan.target.height):
        raise AssemblyError(
            f"final video is {result.width}x{result.height}, planned {plan.target.width}x{plan.target.height}"
        )


def check_finished(
    result: VideoProbe, path: Path, plan: JoinPlan, streams: dict[str, int], cues: list[Cue]
) -> None:
    """The finished file against the plan: the join's checks, the planned ``streams`` (video, audio, subtitle
    counts), audio within a frame of the video, and one subtitle sample per cue at its times; a mismatch
    raises AssemblyError saying what differs."""
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
        samples = subtitle_samples(path)
        if len(samples) != len(cues) or any(
            abs(start - cue.start_s) > CUE_TOLERANCE_S or abs(end - cue.end_s) > CUE_TOLERANCE_S
            for (start, end), cue in zip(samples, cues, strict=False)
        ):
            raise AssemblyError(
                f"subtitle track has cues {samples}, planned {[(c.start_s, c.end_s) for c in cues]}"
            )
