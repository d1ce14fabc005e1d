"""The storyboard provider's real output, probed: deterministic images, uniform H.264 clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from video_pipeline.ffmpeg import probe
from video_pipeline.models import RATIOS
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.storyboard import FPS, StoryboardProvider

PROVIDER = StoryboardProvider()


def image_request(**overrides: object) -> ImageRequest:
    fields: dict[str, object] = {
        "prompt": "A red fox at dawn",
        "seed": 3,
        "ratio": "1280:720",
        "model": "m",
        "index": 7,
    }
    fields.update(overrides)
    return ImageRequest.model_validate(fields)


def test_images_are_deterministic_and_seeded(tmp_path: Path) -> None:
    a = PROVIDER.render_image(image_request(), tmp_path / "a.png").read_bytes()
    b = PROVIDER.render_image(image_request(), tmp_path / "b.png").read_bytes()
    c = PROVIDER.render_image(image_request(seed=4), tmp_path / "c.png").read_bytes()
    assert a == b
    assert a != c


@pytest.mark.parametrize("ratio", sorted(RATIOS))
def test_image_resolution_per_ratio(tmp_path: Path, ratio: str) -> None:
    path = PROVIDER.render_image(image_request(ratio=ratio), tmp_path / "i.png")
    with Image.open(path) as image:
        assert image.size == RATIOS[ratio]
        assert image.format == "PNG"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("clips")
    image = PROVIDER.render_image(image_request(), tmp / "image.png")
    out = []
    for seed, duration in ((1, 2), (2, 3)):
        request = ClipRequest(
            prompt="p", seed=seed, ratio="1280:720", model="m", duration_s=duration, index=1, image_sha256="x"
        )
        out.append(PROVIDER.render_clip(request, image, tmp / f"clip{seed}.mp4"))
    return out


def test_clip_is_exact_h264(clips: list[Path]) -> None:
    info = probe(clips[0])
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 1280, 720)
    assert info.fps == FPS
    assert info.frame_count == 2 * FPS
    assert abs(info.duration_s - 2.0) <= 1 / FPS
    assert not info.has_audio


def test_clips_share_stream_parameters(clips: list[Path]) -> None:
    first, second = (probe(c) for c in clips)
    assert first.stream_signature() == second.stream_signature()
    assert second.frame_count == 3 * FPS


def test_clip_write_is_atomic(tmp_path: Path) -> None:
    bad_image = tmp_path / "not-an-image.png"
    bad_image.write_bytes(b"nope")
    request = ClipRequest(
        prompt="p", seed=1, ratio="960:960", model="m", duration_s=2, index=1, image_sha256="x"
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - Pillow raises its own error type
        PROVIDER.render_clip(request, bad_image, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-an-image.png"]
