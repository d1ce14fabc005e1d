"""Assembles a job's approved clips into ``final.mp4`` in storage, with its poster, preview and subtitles.

Storage is streamed through a temp directory (removed afterwards, also on failure): clips and the audio
track are downloaded to files, the finished files are uploaded from disk (one PUT or a multipart upload on
S3). Nothing holds a video in memory.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from video_pipeline.layout import JobLayout
from video_pipeline.media.finish import Segment, finish
from video_pipeline.media.thumbnails import animated_preview, poster_from_clip
from video_pipeline.media.voice_track import Spoken
from video_pipeline.models import FinalVideo, JobSpec, VideoSegment
from video_pipeline.narration import read_timing
from video_pipeline.storage import Storage
from video_pipeline.words import WordTiming

CONTENT_TYPES = {"gif": "image/gif", "webp": "image/webp"}


def assemble_job(storage: Storage, job: JobSpec, segments: list[VideoSegment]) -> FinalVideo:
    ordered = sorted(segments, key=lambda s: s.index)
    missing = [s.label for s in ordered if not s.clip_key]
    if missing:
        raise ValueError(f"cannot assemble: no clip for {', '.join(missing)}")
    options = job.finishing
    layout = JobLayout(job.job_id)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vp-assemble-") as tmp:
        workdir = Path(tmp)
        clips = workdir / "clips"
        clips.mkdir()
        lead = job.voice.lead_s if job.voice is not None else 0.0
        parts = [_part(storage, s, clips, lead) for s in ordered if s.clip_key]
        track = None
        if options.audio_key:
            suffix = Path(options.audio_key).suffix or ".audio"
            track = storage.download_to(options.audio_key, workdir / f"track{suffix}")
        out = workdir / "final.mp4"
        finished = finish(
            parts, out, options=options, resolution=job.resolution, workdir=workdir, audio_track=track
        )
        storage.put_file(layout.final, out, content_type="video/mp4")
        poster_key = preview_key = subtitles_key = None
        if finished.srt is not None:
            subtitles_key = layout.final_subtitles
            storage.put_file(subtitles_key, finished.srt, content_type="application/x-subrip")
        if options.poster:
            first = finished.plan.spans[0]
            poster = poster_from_clip(out, workdir / "poster.jpg", at_s=(first.start_s + first.end_s) / 2)
            poster_key = layout.final_poster
            storage.put_file(poster_key, poster, content_type="image/jpeg")
        if options.preview != "none":
            preview = animated_preview(
                out,
                workdir / f"preview.{options.preview}",
                video_s=finished.probe.video_duration_s,
                length_s=options.preview_s,
                fmt=options.preview,
            )
            preview_key = layout.final_preview(options.preview)
            storage.put_file(preview_key, preview, content_type=CONTENT_TYPES[options.preview])
    probe = finished.probe
    return FinalVideo(
        key=layout.final,
        duration_s=probe.duration_s,
        width=probe.width,
        height=probe.height,
        codec=probe.codec,
        size_bytes=probe.size_bytes,
        fps=round(probe.fps, 3),
        frame_count=probe.frame_count,
        streams=finished.streams,
        poster_key=poster_key,
        preview_key=preview_key,
        subtitles_key=subtitles_key,
        reencoded=finished.plan.reencoded,
        spans={span.index: (round(span.start_s, 3), round(span.end_s, 3)) for span in finished.plan.spans},
        narration={p.spoken.index: (round(p.at_s, 3), round(p.end_s, 3)) for p in finished.voice},
        transitions=finished.plan.transition_pieces,
        joined_by=finished.plan.joined_by,
        assembly_s=round(time.perf_counter() - started, 3),
    )


def _part(storage: Storage, segment: VideoSegment, folder: Path, lead_s: float) -> Segment:
    """A segment as ``finish`` takes it: its clip and, when its narration was spoken, the audio and its words."""
    assert segment.clip_key is not None
    clip = storage.download_to(segment.clip_key, folder / f"{segment.index:05d}.mp4")
    spoken = None
    words: tuple[WordTiming, ...] = ()
    if segment.narration_key and segment.narration_timing_key:
        timing = read_timing(storage, segment.narration_timing_key)
        audio = storage.download_to(
            segment.narration_key, folder / f"{segment.index:05d}{timing.audio_suffix}"
        )
        spoken = Spoken(segment.index, audio, timing.speech_start_s, timing.speech_end_s, lead_s)
        words = tuple(timing.words)
    fitted = segment.follows_voice and segment.fitted_s is not None
    return Segment(
        segment.index,
        clip,
        narration=segment.narration,
        planned_s=segment.fitted_s if fitted else float(segment.duration_s),
        spoken=spoken,
        words=words,
        fitted=fitted,
    )
