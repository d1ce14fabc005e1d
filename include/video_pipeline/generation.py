"""One segment's image or clip: content-addressed cache first, then the provider, then the job's layout.

The cache key covers everything that determines the output, so a re-run of the same job (or a redo that
restores an earlier prompt) costs no provider call. Outputs are written to the cache and then copied to the
job's layout, both atomically: a reader never sees a partial image or clip.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from video_pipeline.layout import JobLayout, cache_key
from video_pipeline.models import JobSpec, SegmentStatus, VideoSegment
from video_pipeline.providers.base import ClipRequest, ImageRequest, LocalProvider
from video_pipeline.storage import Storage


def image_request(job: JobSpec, segment: VideoSegment) -> ImageRequest:
    return ImageRequest(
        prompt=segment.prompt, seed=segment.seed, ratio=job.ratio, model=job.image_model, index=segment.index
    )


def clip_request(job: JobSpec, segment: VideoSegment, image_sha256: str) -> ClipRequest:
    return ClipRequest(
        prompt=segment.motion_prompt or segment.prompt,
        seed=segment.seed,
        ratio=job.ratio,
        model=job.video_model,
        duration_s=segment.duration_s,
        index=segment.index,
        image_sha256=image_sha256,
    )


def sha256_of(storage: Storage, key: str) -> str:
    digest = hashlib.sha256()
    with storage.open_read(key) as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def generate_image(
    storage: Storage, job: JobSpec, segment: VideoSegment, provider: LocalProvider
) -> VideoSegment:
    """Render (or reuse) the segment's image and store it at ``jobs/<id>/images/NNN.png``."""
    request = image_request(job, segment)
    cached = cache_key("images", request.cache_fields(provider.name))
    hit = storage.exists(cached)
    if not hit:
        with tempfile.TemporaryDirectory(prefix="vp-image-") as tmp:
            path = provider.render_image(request, Path(tmp) / "image.png")
            storage.put_file(cached, path, content_type="image/png")
    target = JobLayout(job.job_id).image(segment.index)
    storage.copy(cached, target)
    return segment.model_copy(
        update={
            "image_key": target,
            "image_cache_hit": hit,
            "status": SegmentStatus.IMAGE_READY,
            "credits": segment.credits + (0.0 if hit else provider.estimate_image_credits(request)),
        }
    )


def animate_segment(
    storage: Storage, job: JobSpec, segment: VideoSegment, provider: LocalProvider
) -> VideoSegment:
    """Turn the segment's approved image into a clip at ``jobs/<id>/clips/NNN.mp4``."""
    if not segment.image_key or not storage.exists(segment.image_key):
        raise FileNotFoundError(
            f"{segment.label}: image object {segment.image_key!r} is missing from {storage.url}; "
            "regenerate the image before animating it"
        )
    request = clip_request(job, segment, sha256_of(storage, segment.image_key))
    cached = cache_key("clips", request.cache_fields(provider.name))
    hit = storage.exists(cached)
    if not hit:
        with tempfile.TemporaryDirectory(prefix="vp-clip-") as tmp:
            image = storage.download_to(segment.image_key, Path(tmp) / "image.png")
            path = provider.render_clip(request, image, Path(tmp) / "clip.mp4")
            storage.put_file(cached, path, content_type="video/mp4")
    target = JobLayout(job.job_id).clip(segment.index)
    storage.copy(cached, target)
    return segment.model_copy(
        update={
            "clip_key": target,
            "clip_cache_hit": hit,
            "status": SegmentStatus.VIDEO_READY,
            "credits": segment.credits + (0.0 if hit else provider.estimate_clip_credits(request)),
        }
    )
