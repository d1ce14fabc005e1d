"""Is a generated output really the image or clip it claims to be? Checked before it enters the cache.

The content-addressed cache is trusted for good: a re-run returns whatever sits under a key with zero provider
calls. So nothing goes in unchecked — not a provider's download (an HTML error page served with 200, a body cut
short, something far too large) and not a local render either. Each check decodes for real, within bounds on
size and dimensions, and its error says what is wrong:

* images: Pillow may only try the formats in :data:`IMAGE_FORMATS`; both sides > 0 and ≤ :data:`MAX_IMAGE_SIDE`
  (pixels ≤ :data:`MAX_IMAGE_PIXELS`, checked from the header before any pixel is decoded); ``Image.verify()``
  (chunk checksums, the end marker) and then a full load (every pixel decodes).
* clips: PyAV; a container of the allowed families (:data:`CLIP_CONTAINERS`), a video stream with sides in
  bounds, a duration in (0, :data:`MAX_CLIP_SECONDS`], a first frame that decodes, and — because a body cut short
  after its index still promises every frame — as many readable packets as the index promises (packets are
  read, not decoded, so this stays cheap).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.layout import CacheKind

#: Largest output accepted per kind, in bytes: enforced while a download streams and again here. Runway's
#: outputs are far below (a 1080p PNG is a few MB, a 10 s 720p clip tens of MB).
MAX_OUTPUT_BYTES: dict[CacheKind, int] = {"images": 50_000_000, "clips": 2_000_000_000}
#: Image formats accepted (Pillow format names); Pillow does not even try the others.
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "WEBP")
MAX_IMAGE_SIDE = 8192
MAX_IMAGE_PIXELS = 40_000_000
#: Demuxer families accepted for clips (PyAV names them ``mov,mp4,m4a,3gp,3g2,mj2`` and ``matroska,webm``).
CLIP_CONTAINERS = frozenset({"mp4", "mov", "webm"})
MAX_CLIP_SIDE = 8192
MAX_CLIP_SECONDS = 600.0
#: Which kind a destination file name means, for callers that only have a path.
SUFFIX_KINDS: dict[str, CacheKind] = {
    ".png": "images",
    ".jpg": "images",
    ".jpeg": "images",
    ".webp": "images",
    ".mp4": "clips",
    ".mov": "clips",
    ".webm": "clips",
}


class OutputRejected(ValueError):
    """An output that must not be cached or used: the wrong type, corrupt, truncated, out of bounds, too large,
    or fetched from somewhere it must not come from. The message says which."""


@dataclass(frozen=True)
class OutputInfo:
    """What the check found (for logs and tests)."""

    kind: CacheKind
    format: str
    width: int
    height: int
    size_bytes: int
    duration_s: float | None = None


def kind_for(path: str | Path) -> CacheKind:
    """The output kind a file name stands for (``.png`` → images, ``.mp4`` → clips, …)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIX_KINDS:
        raise ValueError(
            f"no output kind for {suffix or 'a name without suffix'!r}; one of {sorted(SUFFIX_KINDS)}"
        )
    return SUFFIX_KINDS[suffix]


def verify_output(kind: CacheKind, path: str | Path) -> OutputInfo:
    """Check that ``path`` is a sound output of ``kind``; raise :class:`OutputRejected` saying what is wrong."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise OutputRejected(f"{p.name}: empty file")
    if size > MAX_OUTPUT_BYTES[kind]:
        raise OutputRejected(
            f"{p.name}: {size} bytes, more than the {MAX_OUTPUT_BYTES[kind]} allowed for {kind}"
        )
    return _verify_image(p, size) if kind == "images" else _verify_clip(p, size)


def _looks_like(path: Path) -> str:
    """A hint at what a rejected file actually is (an HTML error page is the usual suspect)."""
    with path.open("rb") as f:
        head = f.read(64)
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "an HTML page"
    if text.startswith(b"<?xml") or text.startswith(b"<error"):
        return "an XML document"
    if text.startswith((b"{", b"[")):
        return "JSON"
    return f"bytes {head[:12]!r}"


def _verify_image(path: Path, size: int) -> OutputInfo:
    from PIL import Image, UnidentifiedImageError

    fmt = "image"
    try:
        with warnings.catch_warnings():
            # Pillow warns (and only later refuses) about decompression bombs; here the header alone decides.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                fmt = img.format or "image"
                width, height = img.size
                if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
                    raise OutputRejected(
                        f"{path.name}: {fmt} of {width}×{height} pixels; each side must be 1–{MAX_IMAGE_SIDE}"
                    )
                if width * height > MAX_IMAGE_PIXELS:
                    raise OutputRejected(
                        f"{path.name}: {width}×{height} is more than {MAX_IMAGE_PIXELS} pixels"
                    )
                img.verify()
            # verify() leaves the image unusable; decode every pixel from a fresh handle.
            with Image.open(path, formats=IMAGE_FORMATS) as img:
                img.load()
    except UnidentifiedImageError:
        raise OutputRejected(
            f"{path.name}: not an image in an allowed format ({', '.join(IMAGE_FORMATS)}): it is {_looks_like(path)}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError, Warning) as exc:
        if isinstance(exc, OutputRejected):
            raise
        raise OutputRejected(f"{path.name}: corrupt or truncated {fmt} ({exc})") from None
    return OutputInfo("images", fmt, width, height, size)


def _verify_clip(path: Path, size: int) -> OutputInfo:
    import av

    try:
        with av.open(str(path)) as container:
            families = set(container.format.name.split(","))
            if not families & CLIP_CONTAINERS:
                raise OutputRejected(
                    f"{path.name}: container {container.format.name!r} is not one of {sorted(CLIP_CONTAINERS)}"
                )
            if not container.streams.video:
                raise OutputRejected(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if not (0 < width <= MAX_CLIP_SIDE and 0 < height <= MAX_CLIP_SIDE):
                raise OutputRejected(
                    f"{path.name}: video of {width}×{height} pixels; each side must be 1–{MAX_CLIP_SIDE}"
                )
            if container.duration:
                duration = container.duration / 1_000_000
            elif stream.duration and stream.time_base:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = 0.0
            if not 0 < duration <= MAX_CLIP_SECONDS:
                raise OutputRejected(
                    f"{path.name}: duration {duration:g} s; must be in (0, {MAX_CLIP_SECONDS:g}]"
                )
            decoded = False
            readable = 0
            for packet in container.demux(stream):
                if not packet.size:
                    continue
                readable += 1
                if not decoded:
                    decoded = any(True for _ in packet.decode())
            if not decoded:
                decoded = any(True for _ in stream.codec_context.decode(None))  # flush a delayed decoder
            if not decoded:
                raise OutputRejected(f"{path.name}: no video frame decodes")
            if stream.frames and readable < stream.frames:
                raise OutputRejected(
                    f"{path.name}: truncated: {readable} of the {stream.frames} frames its index promises are there"
                )
            codec = stream.codec_context.name
    except (av.FFmpegError, OSError, EOFError, ValueError, IndexError) as exc:
        if isinstance(exc, OutputRejected):
            raise
        raise OutputRejected(
            f"{path.name}: not a readable video ({exc}); it is {_looks_like(path)}"
        ) from None
    return OutputInfo(
        "clips", f"{container.format.name.split(',')[0]}/{codec}", width, height, size, duration
    )
