"""verify_output: what may enter the cache. Classes of input — every allowed format accepted, every truncation
and corruption of a real file refused (or at worst cleanly judged), documents posing as media refused, bounds
enforced from headers alone — built with real encoders (Pillow, PyAV), bounded randomized where it helps."""

from __future__ import annotations

import contextlib
import io
import random
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image

from video_pipeline.outputs import (
    MAX_IMAGE_SIDE,
    MAX_OUTPUT_BYTES,
    OutputRejected,
    kind_for,
    verify_output,
)


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    return Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))


def _image(path: Path, fmt: str, size: tuple[int, int] = (96, 64), seed: int = 1) -> Path:
    _noise(size, seed).save(path, format=fmt)
    return path


def _clip(
    path: Path,
    container: str,
    codec: str,
    frames: int = 12,
    size: tuple[int, int] = (64, 48),
    audio_only: bool = False,
) -> Path:
    with av.open(str(path), "w", format=container) as out:
        if audio_only:
            stream = out.add_stream("aac", rate=48000)
            for i in range(10):
                frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
                frame.planes[0].update(bytes(frame.planes[0].buffer_size))
                frame.sample_rate = 48000
                frame.pts = i * 1024
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
            return path
        video = out.add_stream(codec, rate=24)
        assert isinstance(video, av.VideoStream)
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, 24)
        for i in range(frames):
            frame = av.VideoFrame.from_image(_noise(size, i))
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    return {
        "png": _image(d / "a.png", "PNG"),
        "jpeg": _image(d / "a.jpg", "JPEG"),
        "webp": _image(d / "a.webp", "WEBP"),
        "gif": _image(d / "a.gif", "GIF"),
        "bmp": _image(d / "a.bmp", "BMP"),
        "mp4": _clip(d / "a.mp4", "mp4", "libx264", frames=24),
        "mov": _clip(d / "a.mov", "mov", "libx264"),
        "webm": _clip(d / "a.webm", "webm", "libvpx-vp9"),
        "avi": _clip(d / "a.avi", "avi", "mpeg4"),
        "m4a": _clip(d / "a.m4a", "mp4", "", audio_only=True),
    }


# ----------------------------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(("name", "fmt"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_allowed_image_formats_are_accepted(media: dict[str, Path], name: str, fmt: str) -> None:
    info = verify_output("images", media[name])
    assert (info.format, info.width, info.height) == (fmt, 96, 64)
    assert info.size_bytes == media[name].stat().st_size


@pytest.mark.parametrize("name", ["mp4", "mov", "webm"])
def test_allowed_clip_containers_are_accepted(media: dict[str, Path], name: str) -> None:
    info = verify_output("clips", media[name])
    assert (info.width, info.height) == (64, 48)
    assert info.duration_s is not None and info.duration_s > 0


def test_random_sizes_are_accepted_with_their_dimensions(tmp_path: Path) -> None:
    rng = random.Random(5)
    for i in range(15):
        size = (rng.randint(1, 300), rng.randint(1, 300))
        fmt = rng.choice(["PNG", "JPEG", "WEBP"])
        info = verify_output("images", _image(tmp_path / f"{i}.img", fmt, size, seed=i))
        assert (info.width, info.height, info.format) == (*size, fmt)


# ------------------------------------------------------------------------------------------------ refused


@pytest.mark.parametrize(
    ("kind", "body", "expected"),
    [
        ("images", b"", "empty file"),
        ("images", b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", "it is an HTML page"),
        ("images", b'{"error": "expired"}', "it is JSON"),
        ("images", b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "it is an XML document"),
        ("images", b"\x00" * 1000, "not an image"),
        ("clips", b"<html><body>Service Unavailable</body></html>", "it is an HTML page"),
        ("clips", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100, "not a readable video"),
    ],
)
def test_documents_and_noise_are_refused(tmp_path: Path, kind: str, body: bytes, expected: str) -> None:
    path = tmp_path / "output.bin"
    path.write_bytes(body)
    with pytest.raises(OutputRejected, match=expected):
        verify_output(kind, path)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["gif", "bmp"])
def test_images_outside_the_allow_list_are_refused(media: dict[str, Path], name: str) -> None:
    with pytest.raises(OutputRejected, match=r"not an image in an allowed format \(PNG, JPEG, WEBP\)"):
        verify_output("images", media[name])


def test_wrong_containers_and_kinds_are_refused(media: dict[str, Path]) -> None:
    with pytest.raises(OutputRejected, match="container 'avi' is not one of"):
        verify_output("clips", media["avi"])
    with pytest.raises(OutputRejected, match="no video stream"):
        verify_output("clips", media["m4a"])
    with pytest.raises(OutputRejected, match="container 'png_pipe'"):
        verify_output("clips", media["png"])
    with pytest.raises(OutputRejected, match="not an image"):
        verify_output("images", media["mp4"])


def test_every_truncation_of_a_png_is_refused(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["png"].read_bytes()
    rng = random.Random(11)
    cuts = {1, 8, 16, 33, len(data) - 12, len(data) - 1} | {rng.randrange(1, len(data)) for _ in range(40)}
    for cut in sorted(cuts):
        path = tmp_path / "cut.png"
        path.write_bytes(data[:cut])
        with pytest.raises(OutputRejected):
            verify_output("images", path)


def test_every_byte_flip_of_a_png_is_refused(media: dict[str, Path], tmp_path: Path) -> None:
    data = media["png"].read_bytes()
    rng = random.Random(12)
    for _ in range(60):  # every chunk has a CRC: no flip may pass as a sound image
        flipped = bytearray(data)
        position = rng.randrange(len(data))
        flipped[position] ^= 1 << rng.randrange(8)
        path = tmp_path / "flip.png"
        path.write_bytes(bytes(flipped))
        with pytest.raises(OutputRejected):
            verify_output("images", path)


@pytest.mark.parametrize("name", ["mp4", "mov", "webm"])
def test_every_truncation_of_a_clip_is_refused(media: dict[str, Path], tmp_path: Path, name: str) -> None:
    data = media[name].read_bytes()
    rng = random.Random(13)
    cuts = {1, 12, len(data) // 2, len(data) - 64} | {rng.randrange(1, len(data) - 64) for _ in range(15)}
    for cut in sorted(cuts):
        path = tmp_path / f"cut.{name}"
        path.write_bytes(data[:cut])
        with pytest.raises(OutputRejected):
            verify_output("clips", path)


@pytest.mark.parametrize("name", ["png", "jpeg", "mp4", "webm"])
def test_corruption_is_judged_cleanly(media: dict[str, Path], tmp_path: Path, name: str) -> None:
    """Flips inside compressed media data can still decode (nothing to tell them from content); what may never
    happen is any other exception than OutputRejected."""
    data = media[name].read_bytes()
    kind = kind_for(media[name])
    rng = random.Random(14)
    for _ in range(25):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        path = tmp_path / f"damaged{media[name].suffix}"
        path.write_bytes(bytes(damaged))
        with contextlib.suppress(OutputRejected):
            verify_output(kind, path)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size (valid CRCs), with a tiny compressed payload: a decompression bomb's
    shape. The check must refuse it from the header, before decoding anything."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((MAX_IMAGE_SIDE + 1, 10), "each side must be"),
        ((100_000, 100_000), "each side must be|pixels"),
        ((8000, 8000), "more than 40000000 pixels"),
    ],
)
def test_image_bounds_come_from_the_header(tmp_path: Path, size: tuple[int, int], expected: str) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    with pytest.raises(OutputRejected, match=expected):
        verify_output("images", path)


def test_size_cap_per_kind(media: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MAX_OUTPUT_BYTES, "images", 100)
    with pytest.raises(OutputRejected, match="more than the 100 allowed for images"):
        verify_output("images", media["png"])
    assert verify_output("clips", media["mp4"]).width == 64  # the clips cap is its own


def test_kind_for() -> None:
    assert kind_for("x/output.png") == "images"
    assert kind_for("OUT.MP4") == "clips"
    with pytest.raises(ValueError, match="no output kind"):
        kind_for("output.html")


def test_storyboard_outputs_pass(tmp_path: Path) -> None:
    """The local renderer's own outputs go through the same check (store() calls it for every provider)."""
    from video_pipeline.providers.base import ClipRequest, ImageRequest
    from video_pipeline.providers.storyboard import StoryboardProvider

    provider = StoryboardProvider()
    image = provider.render_image(
        ImageRequest(prompt="a fox", seed=1, ratio="1280:720", model="gen4_image", index=1),
        tmp_path / "i.png",
    )
    assert verify_output("images", image).format == "PNG"
    clip = provider.render_clip(
        ClipRequest(
            prompt="a fox",
            seed=1,
            ratio="1280:720",
            model="gen4_image",
            index=1,
            duration_s=1,
            image_sha256="0" * 64,
        ),
        image,
        tmp_path / "c.mp4",
    )
    info = verify_output("clips", clip)
    assert info.duration_s == pytest.approx(1, abs=0.1)
    with io.BytesIO(image.read_bytes()) as raw, Image.open(raw) as opened:
        assert opened.size == (info.width, info.height)
