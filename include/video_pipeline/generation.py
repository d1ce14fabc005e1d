"""One segment's image or clip: content-addressed cache first, then the provider, then the job's layout.

The cache key covers everything that determines the output, so a re-run of the same job (or a redo that
restores an earlier prompt) costs no provider call. Outputs go to the cache and are then copied to the job's
layout, both atomically: a reader never sees a partial image or clip. Local providers render inline
(``generate_image`` / ``animate_segment``); remote ones submit, wait, and call :func:`store` with the download.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from video_pipeline.layout import CacheKind, JobLayout, cache_key, content_hash
from video_pipeline.models import JobSettings, ProviderChoice, SegmentStatus, Stage, VideoSegment
from video_pipeline.outputs import OutputRejected, verify_output
from video_pipeline.providers.base import ClipRequest, ImageRequest, LocalProvider
from video_pipeline.providers.port import RemoteClient
from video_pipeline.storage import Storage
from video_pipeline.takes import merge_takes, take_seed


@dataclass(frozen=True)
class Planned:
    """What a segment's step will produce, and where it is cached and stored."""

    kind: CacheKind
    request: ImageRequest | ClipRequest
    provider: str
    digest: str
    cache_key: str
    target: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, to carry the plan from submission to completion (a deferral's kwargs, the record)."""
        return {
            "kind": self.kind,
            "request": self.request.model_dump(mode="json"),
            "provider": self.provider,
            "digest": self.digest,
            "cache_key": self.cache_key,
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Planned:
        kind = data["kind"]
        if kind not in ("images", "clips"):
            raise ValueError(f"unknown output kind {kind!r}")
        request_type = ImageRequest if kind == "images" else ClipRequest
        return cls(
            kind,
            request_type.model_validate(data["request"]),
            str(data["provider"]),
            str(data["digest"]),
            str(data["cache_key"]),
            str(data["target"]),
        )

    def with_seed(self, seed: int) -> Planned:
        """The same output slot (digest, cache key) asked of the provider with another seed: after
        ``INTERNAL.BAD_OUTPUT`` the cache still answers for the requested inputs."""
        return replace(self, request=self.request.model_copy(update={"seed": seed}))


def image_request(job: JobSettings, segment: VideoSegment, choice: ProviderChoice) -> ImageRequest:
    return ImageRequest(
        prompt=segment.prompt,
        seed=segment.seed,
        ratio=job.ratio,
        model=str(choice.model),
        index=segment.index,
    )


def clip_request(
    job: JobSettings, segment: VideoSegment, image_sha256: str, choice: ProviderChoice
) -> ClipRequest:
    return ClipRequest(
        prompt=segment.motion_prompt or segment.prompt,
        seed=segment.seed,
        ratio=job.ratio,
        model=str(choice.model),
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


def _planned(kind: CacheKind, request: ImageRequest | ClipRequest, provider: str, target: str) -> Planned:
    fields = request.cache_fields(provider)
    return Planned(kind, request, provider, content_hash(fields), cache_key(kind, fields), target)


def plan_image(
    job: JobSettings, segment: VideoSegment, choice: ProviderChoice | None = None, take: int = 1
) -> Planned:
    """The segment's image (take ``take``: its own seed and key), by the stage's provider and model (or
    ``choice``: its fallback)."""
    choice = choice or job.choice("images")
    request = image_request(job, segment, choice)
    request = request.model_copy(update={"seed": take_seed(request.seed, take)})
    target = JobLayout(job.job_id).take_key("images", segment.index, take)
    return _planned("images", request, choice.provider, target)


def plan_clip(
    storage: Storage,
    job: JobSettings,
    segment: VideoSegment,
    choice: ProviderChoice | None = None,
    take: int = 1,
) -> Planned:
    """The segment's clip (take ``take``) from its picked image. Fails clearly if that image is missing:
    animating nothing would waste a paid call."""
    if not segment.image_key or not storage.exists(segment.image_key):
        raise FileNotFoundError(
            f"{segment.label}: image object {segment.image_key!r} is missing from {storage.url}; "
            "regenerate the image before animating it"
        )
    choice = choice or job.choice("clips")
    request = clip_request(job, segment, sha256_of(storage, segment.image_key), choice)
    request = request.model_copy(update={"seed": take_seed(request.seed, take)})
    target = JobLayout(job.job_id).take_key("clips", segment.index, take)
    return _planned("clips", request, choice.provider, target)


def _done(planned: Planned, segment: VideoSegment, *, hit: bool, task_id: str | None) -> VideoSegment:
    made_by = {"provider": planned.provider, "model": planned.request.model}
    prefix = "image" if planned.kind == "images" else "clip"
    update: dict[str, Any] = {f"{prefix}_{field}": value for field, value in made_by.items()}
    update[f"{prefix}_key"] = planned.target
    update[f"{prefix}_cache_hit"] = hit
    update["status"] = SegmentStatus.IMAGE_READY if planned.kind == "images" else SegmentStatus.VIDEO_READY
    if task_id:
        update[f"{prefix}_task_id"] = task_id
    return segment.model_copy(update=update)


def reuse(storage: Storage, planned: Planned, segment: VideoSegment) -> VideoSegment | None:
    """The cached output copied into the job's layout, or None on a cache miss. Costs no provider call."""
    if not storage.exists(planned.cache_key):
        return None
    storage.copy(planned.cache_key, planned.target)
    return _done(planned, segment, hit=True, task_id=None)


def store(
    storage: Storage,
    planned: Planned,
    segment: VideoSegment,
    path: Path,
    *,
    task_id: str | None,
) -> VideoSegment:
    """Check a freshly generated output, then put it into the cache and the job's layout. (Credits are not
    carried here: the manifest takes them from the spend ledger.)

    The cache is served for good without another provider call, so nothing enters it unchecked:
    :func:`~video_pipeline.outputs.verify_output` decodes the image or probes the clip first and raises
    :class:`~video_pipeline.outputs.OutputRejected` (nothing stored) when it is not what it should be.
    """
    verify_output(planned.kind, path)
    content_type = "image/png" if planned.kind == "images" else "video/mp4"
    storage.put_file(planned.cache_key, path, content_type=content_type)
    storage.copy(planned.cache_key, planned.target)
    return _done(planned, segment, hit=False, task_id=task_id)


def fetch_and_store(
    storage: Storage,
    planned: Planned,
    segment: VideoSegment,
    client: RemoteClient,
    url: str,
    *,
    task_id: str | None,
) -> VideoSegment:
    """Download a provider task's output from ``url`` into a temporary folder, then :func:`store` it."""
    with tempfile.TemporaryDirectory(prefix="vp-output-") as tmp:
        suffix = ".png" if planned.kind == "images" else ".mp4"
        path = client.download(url, Path(tmp) / f"output{suffix}", kind=planned.kind)
        return store(storage, planned, segment, path, task_id=task_id)


def collect(
    storage: Storage, planned: Planned, segment: VideoSegment, client: RemoteClient, task_id: str
) -> VideoSegment:
    """A succeeded provider task's output in the job's layout: from the cache when it is there already (the
    salvage sweep fetched it, or the same output was made elsewhere: no download), else fetched now (its URL
    expires), checked and stored.

    Raises :class:`~video_pipeline.outputs.OutputRejected` (nothing cached) when the task has no output or
    the download or its check refuses it, and the client's ``ProviderError`` (``RESUBMIT`` when the URL
    expired)."""
    if (cached := reuse(storage, planned, segment)) is not None:
        return cached
    # Asked for right before the download: output URLs are signed and expire, so none travels in an event.
    outputs = client.outputs(task_id)
    if not outputs:
        raise OutputRejected(f"{planned.provider} task {task_id} succeeded without an output")
    return fetch_and_store(storage, planned, segment, client, outputs[0], task_id=task_id)


def local_choice(job: JobSettings, stage: Stage, provider: LocalProvider) -> ProviderChoice:
    """The stage's choice that names this local provider: the stage's own, or its fallback (a local fallback
    of a remote provider), with the provider's default model when the choice names none."""
    choice = job.choice(stage)
    for option in (choice, choice.fallback):
        if option is not None and option.provider == provider.name:
            return ProviderChoice(provider=option.provider, model=option.model)
    return ProviderChoice(provider=provider.name, model=provider.default_models[stage])


def generate_image(
    storage: Storage, job: JobSettings, segment: VideoSegment, provider: LocalProvider, take: int = 1
) -> VideoSegment:
    """Render (or reuse) take ``take`` of the segment's image and store it (take 1 at
    ``jobs/<id>/images/NNN.png``)."""
    planned = plan_image(job, segment, local_choice(job, "images", provider), take)
    if (hit := reuse(storage, planned, segment)) is not None:
        return hit
    assert isinstance(planned.request, ImageRequest)
    with tempfile.TemporaryDirectory(prefix="vp-image-") as tmp:
        path = provider.render_image(planned.request, Path(tmp) / "image.png")
        return store(storage, planned, segment, path, task_id=None)


def animate_segment(
    storage: Storage, job: JobSettings, segment: VideoSegment, provider: LocalProvider, take: int = 1
) -> VideoSegment:
    """Turn the segment's approved (picked) image into take ``take`` of its clip (take 1 at
    ``jobs/<id>/clips/NNN.mp4``)."""
    planned = plan_clip(storage, job, segment, local_choice(job, "clips", provider), take)
    if (hit := reuse(storage, planned, segment)) is not None:
        return hit
    assert isinstance(planned.request, ClipRequest) and segment.image_key
    with tempfile.TemporaryDirectory(prefix="vp-clip-") as tmp:
        image = storage.download_to(segment.image_key, Path(tmp) / "image.png")
        path = provider.render_clip(planned.request, image, Path(tmp) / "clip.mp4")
        return store(storage, planned, segment, path, task_id=None)


def make_takes(
    storage: Storage, job: JobSettings, segment: VideoSegment, provider: LocalProvider, stage: Stage
) -> VideoSegment:
    """Every take of the segment's image or clip on a local provider (each from the cache when made before),
    take 1 picked."""
    step = generate_image if stage == "images" else animate_segment
    takes = range(1, job.stage_takes(stage) + 1)
    return merge_takes(stage, [step(storage, job, segment, provider, take) for take in takes])
