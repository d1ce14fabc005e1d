"""From approved clips to the finished MP4, on local files: captions, the join, the voice, the audio track,
checks.

Each step is called from here in turn, and hands back what it made: captions rendered for burning
(``captions``), the join planned (``plan``: clips that follow their narration trimmed or held to it), clip
lengths checked, the narrations placed and the voice track written (``voice_track``), the soft-subtitle cues
(timed to the heard words) and SRT written, the video written into a temp file (``write``: by the join itself, or one ffmpeg pass that adds captions and
audio), probed and checked against the plan (``check``). The temp file replaces ``dest`` only if every
check passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from video_pipeline.media.captions import (
    Cue,
    caption_image,
    caption_text,
    cues_for,
    heard_words,
    word_cues,
    write_srt,
)
from video_pipeline.media.check import check_clip_lengths, check_finished, check_joined, probe_written
from video_pipeline.media.plan import Clip, JoinPlan, plan_join
from video_pipeline.media.probe import VideoProbe
from video_pipeline.media.voice_track import Placed, Spoken, place, write_voice_track
from video_pipeline.media.write import output_for, write_finished, write_join, write_video
from video_pipeline.models import Finishing
from video_pipeline.words import WordTiming


@dataclass(frozen=True)
class Segment:
    """One segment to finish: its clip, its narration text, its planned length, and — when the narration was
    spoken — the speech (``spoken``) and its words (seconds in the narration's file). ``fitted`` says the clip
    is trimmed or held to exactly ``planned_s``."""

    index: int
    clip: Path
    narration: str | None = None
    planned_s: float | None = None
    spoken: Spoken | None = None
    words: tuple[WordTiming, ...] = ()
    fitted: bool = False


@dataclass(frozen=True)
class Finished:
    probe: VideoProbe
    plan: JoinPlan
    cues: list[Cue]
    srt: Path | None
    streams: dict[str, int]
    voice: list[Placed] = field(default_factory=list)


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
    clips = _clips(segments, narration if options.subtitles == "burned" else {}, resolution, workdir)
    plan = plan_join(clips, resolution=resolution, workdir=workdir, transition_s=options.transition_s)
    check_clip_lengths(plan, [s.planned_s for s in segments])
    placed = place(plan.spans, {s.index: s.spoken for s in segments if s.spoken is not None})
    voice = write_voice_track(placed, plan.duration_s, workdir / "voice.wav") if placed else None
    words = {s.index: list(s.words) for s in segments}
    heard = {p.spoken.index: heard_words(p, words[p.spoken.index]) for p in placed}
    cues = cues_for(plan.spans, narration, plan.transition_s, heard) if options.subtitles == "soft" else []
    srt = write_srt(cues, workdir / "final.srt") if cues else None
    streams = {
        "video": 1,
        "audio": int(audio_track is not None or voice is not None or plan.has_audio),
        "subtitle": int(srt is not None),
    }
    with output_for(plan, dest, "finish the video") as tmp:
        if streams["audio"] or (srt is not None and plan.tables is None):
            write_finished(
                plan,
                tmp,
                workdir=workdir,
                srt=srt,
                track=audio_track,
                loudness_lufs=options.loudness_lufs,
                cue_count=len(cues),
                voice=voice,
            )
        else:
            write_video(plan, tmp, captions=[(c.start_s, c.end_s, c.text) for c in cues])
        result = probe_written(plan, tmp)
        check_finished(result, tmp, plan, streams, cues)
    result = replace(result, size_bytes=dest.stat().st_size)
    return Finished(probe=result, plan=plan, cues=cues, srt=srt, streams=streams, voice=placed)


def _clips(
    segments: list[Segment], burned: dict[int, str], resolution: tuple[int, int], workdir: Path
) -> list[Clip]:
    """The segments as the join takes them, each with its ``burned`` caption rendered as overlay images: one per
    few spoken words, each shown while they are heard, when its narration was spoken; else one for the whole
    segment."""
    captions = workdir / "captions"
    if burned:
        captions.mkdir(parents=True, exist_ok=True)
    clips = []
    for s in segments:
        overlay: Path | None = None
        timed: tuple[tuple[Path, float, float], ...] = ()
        if s.index in burned and s.spoken is not None and s.words:
            timed = tuple(
                (
                    caption_image(cue.text, resolution, captions / f"{s.index:05d}-{n:03d}.png"),
                    cue.start_s,
                    cue.end_s,
                )
                for n, cue in enumerate(word_cues(s.index, _in_segment(s)))
            )
        elif s.index in burned:
            overlay = caption_image(burned[s.index], resolution, captions / f"{s.index:05d}.png")
        clips.append(
            Clip(s.index, s.clip, overlay, timed_overlays=timed, length_s=s.planned_s if s.fitted else None)
        )
    return clips


def _in_segment(segment: Segment) -> list[WordTiming]:
    """A spoken segment's words in the segment's own time: after its lead, cut at its planned length."""
    assert segment.spoken is not None
    spoken = segment.spoken
    length = segment.planned_s or float("inf")
    heard = min(spoken.speech_end_s, spoken.speech_start_s + max(0.0, length - spoken.lead_s))
    placed = Placed(spoken, spoken.lead_s, spoken.speech_start_s, heard, cut=heard < spoken.speech_end_s)
    return heard_words(placed, list(segment.words))


def join(plan: JoinPlan, dest: Path) -> VideoProbe:
    """The plain join of a plan, without captions or a track: written atomically, probed and checked."""
    with output_for(plan, dest, "join the clips") as tmp:
        write_join(plan, tmp)
        result = probe_written(plan, tmp)
        check_joined(result, plan)
    return replace(result, size_bytes=dest.stat().st_size)
