"""The offline provider: a rendered card per segment and a Ken Burns move over it. No key, no network.

The image is a pure function of (prompt, seed, ratio, index), and its cache key holds all four (the card
draws the index); a clip is a pure function of (motion prompt, seed, image). Every clip is H.264 High yuv420p
at 24 fps with the same time base and GOP, so assembly can join them with a stream copy.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
import textwrap
from pathlib import Path
from typing import ClassVar

from PIL import Image, ImageDraw, ImageFont

from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.models import RATIOS
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.port import ModelSpec, Stage

FPS = 24
TIMESCALE = 12288
ENCODE = [
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-crf",
    "23",
    "-profile:v",
    "high",
    "-pix_fmt",
    "yuv420p",
    "-g",
    str(2 * FPS),
    "-video_track_timescale",
    str(TIMESCALE),
    "-movflags",
    "+faststart",
    "-an",
]
ZOOM = 0.12  # about how far the camera pushes in over a clip (0.6–1.4 times this)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _palette(rng: random.Random) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    hue = rng.random()
    import colorsys

    top = colorsys.hsv_to_rgb(hue, 0.55, 0.85)
    bottom = colorsys.hsv_to_rgb((hue + 0.12 + rng.random() * 0.2) % 1, 0.75, 0.35)
    return tuple(int(c * 255) for c in top), tuple(int(c * 255) for c in bottom)  # type: ignore[return-value]


def _atomic_save(dest: Path, write: object) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=dest.suffix)
    os.close(fd)
    try:
        write(Path(tmp))  # type: ignore[operator]
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def camera_move(request: ClipRequest) -> tuple[bool, float, float]:
    """(zoom in?, horizontal pan 0–1, zoom amount) of a clip, drawn from its (motion) prompt, seed and image.

    Over a continuous range: a new motion prompt for the same image gives a different clip (with two zoom
    directions and three fixed pans, one new prompt in six gave the same bytes).
    """
    rng = _rng(request.prompt, request.seed, request.image_sha256)
    zoom_in = rng.random() < 0.5
    pan = round(rng.random(), 4)
    zoom = round(ZOOM * (0.6 + 0.8 * rng.random()), 4)
    return zoom_in, pan, zoom


class StoryboardProvider:
    """Offline and free: one card model for images, one camera move for clips, every ratio, 2–10 s clips."""

    name = "storyboard"
    models: ClassVar[dict[str, ModelSpec]] = {
        "card": ModelSpec("card", "images", notes="a drawn card: gradient, shapes, the prompt; free"),
        "ken-burns": ModelSpec(
            "ken-burns", "clips", durations=tuple(range(2, 11)), notes="a slow push-in over the image; free"
        ),
    }
    default_models: ClassVar[dict[Stage, str]] = {"images": "card", "clips": "ken-burns"}

    def render_image(self, request: ImageRequest, dest: Path) -> Path:
        width, height = RATIOS[request.ratio]
        rng = _rng(request.prompt, request.seed, request.ratio)
        top, bottom = _palette(rng)
        gradient = Image.linear_gradient("L").resize((width, height))
        image = Image.composite(
            Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), gradient
        )
        draw = ImageDraw.Draw(image, "RGBA")
        for _ in range(12):  # soft shapes so the camera move is visible
            r = rng.randint(height // 12, height // 4)
            x, y = rng.randint(0, width), rng.randint(0, height)
            shade = tuple(rng.randint(0, 255) for _ in range(3))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=(*shade, 46))
        unit = min(width, height)
        caption_font = ImageFont.load_default(size=max(18, unit // 22))
        number_font = ImageFont.load_default(size=max(28, unit // 9))
        lines = textwrap.wrap(request.prompt, width=max(20, int(width / (unit // 22) * 1.7)))[:6]
        line_h = int(unit // 22 * 1.35)
        panel_h = line_h * len(lines) + unit // 12
        draw.rectangle((0, height - panel_h, width, height), fill=(0, 0, 0, 140))
        for i, line in enumerate(lines):
            draw.text(
                (unit // 24, height - panel_h + unit // 24 + i * line_h),
                line,
                font=caption_font,
                fill=(255, 255, 255, 255),
            )
        draw.text(
            (unit // 24, unit // 30), f"#{request.index:03d}", font=number_font, fill=(255, 255, 255, 220)
        )
        return _atomic_save(dest, lambda tmp: image.save(tmp, format="PNG", optimize=False))

    def render_clip(self, request: ClipRequest, image: Path, dest: Path) -> Path:
        width, height = RATIOS[request.ratio]
        frames = request.duration_s * FPS
        zoom_in, pan, zoom = camera_move(request)
        # Upscaled once, so zoompan's integer crop positions move in half-pixels: no visible jitter.
        z = f"1+{zoom}*on/{frames}" if zoom_in else f"1+{zoom}-{zoom}*on/{frames}"
        x = f"(iw-iw/zoom)*{pan}"
        vf = (
            f"zoompan=z='{z}':x='{x}':y='(ih-ih/zoom)/2':d={frames}:s={width}x{height}:fps={FPS},"
            "format=yuv420p"
        )
        with tempfile.TemporaryDirectory(prefix="vp-storyboard-") as tmp:
            big = Path(tmp) / "big.png"
            with Image.open(image) as source:
                source.convert("RGB").resize((width * 2, height * 2), Image.Resampling.BICUBIC).save(big)
            return _atomic_save(
                dest,
                lambda out: run_ffmpeg(
                    ["-i", str(big), "-vf", vf, "-frames:v", str(frames), *ENCODE, "-f", "mp4", str(out)],
                    timeout=300,
                ),
            )


PROVIDER = StoryboardProvider()
