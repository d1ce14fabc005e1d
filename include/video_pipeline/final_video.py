"""Assembles a job's approved clips into ``final.mp4`` in storage, streaming through a temp directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

from video_pipeline.assembly import assemble
from video_pipeline.layout import JobLayout
from video_pipeline.models import FinalVideo, JobSpec, VideoSegment
from video_pipeline.storage import Storage


def assemble_job(storage: Storage, job: JobSpec, segments: list[VideoSegment]) -> FinalVideo:
    ordered = sorted(segments, key=lambda s: s.index)
    missing = [s.label for s in ordered if not s.clip_key]
    if missing:
        raise ValueError(f"cannot assemble: no clip for {', '.join(missing)}")
    target = JobLayout(job.job_id).final
    with tempfile.TemporaryDirectory(prefix="vp-assemble-") as tmp:
        workdir = Path(tmp)
        clips = [
            storage.download_to(s.clip_key, workdir / f"{s.index:03d}.mp4") for s in ordered if s.clip_key
        ]
        out = workdir / "final.mp4"
        probe = assemble(
            clips,
            out,
            expected_durations=[float(s.duration_s) for s in ordered],
            expected_resolution=job.resolution,
            workdir=workdir,
        )
        storage.put_file(target, out, content_type="video/mp4")
    return FinalVideo(
        key=target,
        duration_s=probe.duration_s,
        width=probe.width,
        height=probe.height,
        codec=probe.codec,
        size_bytes=probe.size_bytes,
    )
