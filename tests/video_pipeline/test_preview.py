from __future__ import annotations

from pathlib import Path

from PIL import Image

from video_pipeline.preview import contact_sheet, poster_from_clip
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
    sheet = contact_sheet(images, tmp_path / "sheet.jpg", columns=5, thumb_width=200)
    with Image.open(sheet) as image:
        assert image.format == "JPEG"
        assert image.size == (5 * (200 + 6) + 6, 2 * (112 + 6) + 6)  # thumbs 200x112, 6 px gaps


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
