from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.video_pipeline.media.media_files import make_clip
from video_pipeline.media.thumbnails import animated_preview, contact_sheet, poster_from_clip
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.storyboard import StoryboardProvider


def test_contact_sheet_grid(tmp_path: Path) -> None:
    provider = StoryboardProvider()
    images = [
        (
            i,
            provider.render_image(
                ImageRequest(prompt=f"p{i}", seed=i, ratio="1280:720", model="m", index=i),
                tmp_path / f"{i}.png",
            ),
        )
        for i in range(1, 8)
    ]
    sheet = contact_sheet(images, tmp_path / "sheet.jpg", columns=5, box=200)
    with Image.open(sheet) as image:
        assert image.format == "JPEG"
        assert image.size == (5 * (200 + 6) + 6, 2 * (112 + 6) + 6)  # thumbs 200x112, 6 px gaps
    portrait = Image.new("RGB", (720, 1280), (200, 40, 40))
    portrait.save(tmp_path / "tall.png")
    sheet = contact_sheet([(1, tmp_path / "tall.png")], tmp_path / "tall.jpg", box=200)
    with Image.open(sheet) as image:  # a tall image fits the same square: 112x200
        assert image.size == (112 + 12, 200 + 12)


def test_poster_from_clip(tmp_path: Path) -> None:
    provider = StoryboardProvider()
    image = provider.render_image(
        ImageRequest(prompt="p", seed=1, ratio="720:1280", model="m", index=1), tmp_path / "i.png"
    )
    clip = provider.render_clip(
        ClipRequest(prompt="p", seed=1, ratio="720:1280", model="m", duration_s=2, index=1, image_sha256="x"),
        image,
        tmp_path / "c.mp4",
    )
    poster = poster_from_clip(clip, tmp_path / "poster.jpg")
    with Image.open(poster) as frame:
        assert frame.size == (720, 1280)


@pytest.fixture(scope="module")
def six_seconds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("preview") / "v.mp4", size=(640, 360), seconds=6)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animated_preview_skims_the_video(six_seconds: Path, tmp_path: Path, fmt: str) -> None:
    video = six_seconds
    preview = animated_preview(
        video, tmp_path / f"p.{fmt}", video_s=6.0, length_s=3, fmt=fmt, width=320, fps=10
    )
    with Image.open(preview) as image:
        assert image.format == fmt.upper()
        assert image.size == (320, 180)
        assert getattr(image, "is_animated", False) and getattr(image, "n_frames", 1) == 30
        assert image.info.get("loop") == 0


def test_animated_preview_of_a_short_video(tmp_path: Path) -> None:
    video = make_clip(tmp_path / "v.mp4", size=(320, 180), seconds=1)
    preview = animated_preview(video, tmp_path / "p.gif", video_s=1.0, length_s=4, fps=10)
    with Image.open(preview) as image:
        assert getattr(image, "n_frames", 1) == 10  # the whole video, once
