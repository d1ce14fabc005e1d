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

#: Largest output accepted per kind, in bytes: enforced while a download streams and again here. Providers'
#: outputs are far below (a 1080p PNG is a few MB, a 10 s 720p clip tens of MB).
MAX_OUTPUT_BYTES: dict[CacheKind, int] = {
    "narration": 200_000_000,
    "images": 50_000_000,
    "clips": 2_000_000_000,
}
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
    except OutputRejected:
        raise
    except UnidentifiedImageError:
        raise OutputRejected(
            f"{path.name}: not an image in an allowed format ({', '.join(IMAGE_FORMATS)}): it is {_looks_like(path)}"
        ) from None
    except (
        Exception
    ) as exc:  # hostile input makes decoders raise anything (struct.error, ZeroDivisionError, …)
        raise OutputRejected(
            f"{path.name}: corrupt or truncated {fmt} ({type(exc).__name__}: {exc})"
        ) from None
    if fmt == "PNG" and not _ends_with(path, _PNG_END):
        # Pillow stops at the IEND chunk's type and does not need its checksum: a body cut in its last bytes
        # decodes, but it is still a cut body (and says nothing good about the transfer).
        raise OutputRejected(f"{path.name}: corrupt or truncated PNG (no complete IEND chunk at the end)")
    return OutputInfo("images", fmt, width, height, size)


_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def _check_boxes(path: Path, size: int) -> None:
    """MP4/MOV: the top-level boxes must tile the file exactly. A body cut short ends inside its last box —
    even when only trailing metadata is missing and every frame still reads."""
    offset = 0
    with path.open("rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(16)
            if len(header) < 8:
                raise OutputRejected(f"{path.name}: truncated: a box header is cut at byte {offset}")
            box = int.from_bytes(header[:4], "big")
            if box == 1:  # 64-bit size follows the type
                if len(header) < 16:
                    raise OutputRejected(f"{path.name}: truncated: a box header is cut at byte {offset}")
                box = int.from_bytes(header[8:16], "big")
            elif box == 0:  # "to the end of the file"
                return
            if box < 8:
                raise OutputRejected(f"{path.name}: corrupt box of {box} bytes at byte {offset}")
            if offset + box > size:
                raise OutputRejected(
                    f"{path.name}: truncated: its {header[4:8].decode('latin-1')!r} box needs "
                    f"{offset + box - size} bytes more than the file has"
                )
            offset += box


def _ends_with(path: Path, tail: bytes) -> bool:
    with path.open("rb") as f:
        f.seek(max(path.stat().st_size - len(tail), 0))
        return f.read() == tail


def _vint(data: bytes, at: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at ``data[at:]``: (value, bytes used, all value bits set = unknown)."""
    if at >= len(data) or data[at] == 0:
        raise OutputRejected("corrupt or truncated EBML header")
    length = 8 - data[at].bit_length() + 1
    if at + length > len(data):
        raise OutputRejected("truncated EBML header")
    value = int.from_bytes(data[at : at + length], "big")
    if keep_marker:
        return value, length, False
    value &= (1 << (7 * length)) - 1
    return value, length, value == (1 << (7 * length)) - 1


def _check_ebml(path: Path, size: int) -> None:
    """Matroska/WebM: the top-level elements (EBML header, Segment) must fit in the file when their sizes are
    known (a muxer that could seek back writes them); the WebM twin of :func:`_check_boxes`."""
    offset = 0
    with path.open("rb") as f:
        while offset < size:
            f.seek(offset)
            head = f.read(12)
            try:
                _, id_len, _ = _vint(head, 0, keep_marker=True)
                body, size_len, unknown = _vint(head, id_len, keep_marker=False)
            except OutputRejected as exc:
                raise OutputRejected(f"{path.name}: {exc} at byte {offset}") from None
            if unknown:
                return  # a live-written Segment of unknown size: nothing to compare
            end = offset + id_len + size_len + body
            if end > size:
                raise OutputRejected(
                    f"{path.name}: truncated: a top-level element needs {end - size} bytes more than the file has"
                )
            offset = end


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
            if stream.codec_context is None:
                raise OutputRejected(
                    f"{path.name}: the video stream has no decoder (unknown codec or cut header)"
                )
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
            if "mp4" in families or "mov" in families:
                _check_boxes(path, size)
            elif "webm" in families:
                _check_ebml(path, size)
            decoded = False
            readable = 0
            covered = 0.0  # where the last packet of any stream ends, in seconds
            for packet in container.demux():
                if not packet.size:
                    continue
                if packet.pts is not None and packet.time_base:
                    covered = max(covered, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                if packet.stream.index != stream.index:
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
            # A container whose index does not count frames (Matroska/WebM) still states a duration up front;
            # packets that stop well short of it are a body cut short. (Start offsets are small; one frame or
            # 0.1 s of slack, whichever is more.)
            frame_s = float(1 / stream.average_rate) if stream.average_rate else 0.0
            start = float(container.start_time / 1_000_000) if container.start_time else 0.0
            if covered - start < duration - max(frame_s, 0.1):
                raise OutputRejected(
                    f"{path.name}: truncated: packets cover {covered - start:.3f} s of the {duration:.3f} s it states"
                )
            codec = stream.codec_context.name
    except OutputRejected:
        raise
    except Exception as exc:  # hostile input makes demuxers raise anything, not only av.FFmpegError
        raise OutputRejected(
            f"{path.name}: not a readable video ({type(exc).__name__}: {exc}); it is {_looks_like(path)}"
        ) from None
    return OutputInfo(
        "clips", f"{container.format.name.split(',')[0]}/{codec}", width, height, size, duration
    )
