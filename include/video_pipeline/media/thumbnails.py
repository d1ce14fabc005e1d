"""Thumbnails: numbered contact sheets of the segments and poster frames for the gates; a poster and a short
animated skim (GIF or WebP) of the finished video."""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from video_pipeline.atomic_write import atomic_write
from video_pipeline.media.ffmpeg import run_ffmpeg


def contact_sheet(images: list[tuple[int, Path]], dest: Path, *, columns: int = 10, box: int = 192) -> Path:
    """A grid of numbered thumbnails, each fitted into a ``box`` × ``box`` square (the first image's shape sets
    the cell), so a sheet of n images is at most ``columns`` × ⌈n / columns⌉ boxes however large the images
    are. Opens one image at a time: memory stays bounded by the sheet, not the number of images."""
    if not images:
        raise ValueError("contact sheet needs at least one image")
    with Image.open(images[0][1]) as first:
        scale = box / max(first.width, first.height)
        thumb_width = max(1, round(first.width * scale))
        thumb_height = max(1, round(first.height * scale))
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    gap = 6
    sheet = Image.new(
        "RGB", (columns * (thumb_width + gap) + gap, rows * (thumb_height + gap) + gap), (24, 24, 24)
    )
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(14, box // 10))
    for position, (index, path) in enumerate(images):
        x = gap + (position % columns) * (thumb_width + gap)
        y = gap + (position // columns) * (thumb_height + gap)
        with Image.open(path) as image:
            image.draft("RGB", (thumb_width, thumb_height))  # a JPEG poster decodes at a reduced size
            image.thumbnail((thumb_width, thumb_height))
            sheet.paste(image.convert("RGB"), (x, y))
        label = f"{index}"
        around = draw.textbbox((x + 6, y + 4), label, font=font)
        draw.rectangle((around[0] - 4, around[1] - 2, around[2] + 4, around[3] + 2), fill=(0, 0, 0))
        draw.text((x + 6, y + 4), label, font=font, fill=(255, 255, 255))
    with atomic_write(dest) as tmp:
        sheet.save(tmp, format="JPEG", quality=85)
    return dest


def poster_from_clip(clip: Path, dest: Path, at_s: float = 0.5) -> Path:
    """One frame of a clip as a JPEG (the review form shows images, not video)."""
    with atomic_write(dest) as tmp:
        run_ffmpeg(
            ["-ss", f"{at_s:.3f}", "-i", str(clip), "-frames:v", "1", "-q:v", "3", str(tmp)], timeout=60
        )
    return dest


def animated_preview(
    video: Path,
    dest: Path,
    *,
    video_s: float,
    length_s: float = 4.0,
    fmt: str = "gif",
    width: int = 320,
    fps: int = 10,
    max_bursts: int = 8,
) -> Path:
    """A short looping GIF or animated WebP that skims the whole video: up to ``max_bursts`` short bursts
    taken evenly across it (each input seeks straight to its burst, so the cost does not grow with the
    video's length)."""
    if fmt not in ("gif", "webp"):
        raise ValueError(f"preview format must be gif or webp, not {fmt!r}")
    length_s = min(length_s, video_s)
    bursts = max(1, min(max_bursts, int(length_s)))
    burst = length_s / bursts
    inputs: list[str] = []
    labels = []
    for k in range(bursts):
        start = max(0.0, min(video_s - burst, (k + 0.5) * video_s / bursts - burst / 2))
        inputs += ["-ss", f"{start:.3f}", "-t", f"{burst:.3f}", "-i", str(video)]
        labels.append(f"[{k}:v]fps={fps},scale={width}:-2:flags=lanczos,setsar=1[b{k}]")
    joined = "".join(f"[b{k}]" for k in range(bursts)) + f"concat=n={bursts}:v=1:a=0[clip]"
    if fmt == "gif":
        tail = "[clip]split[x][y];[x]palettegen=stats_mode=diff[p];[y][p]paletteuse=dither=bayer:bayer_scale=4[out]"
        codec = ["-loop", "0", "-f", "gif"]
    else:
        tail = "[clip]null[out]"
        codec = ["-c:v", "libwebp_anim", "-q:v", "60", "-loop", "0", "-f", "webp"]
    with atomic_write(dest) as tmp:
        run_ffmpeg(
            [
                *inputs,
                "-filter_complex",
                ";".join([*labels, joined, tail]),
                "-map",
                "[out]",
                "-an",
                *codec,
                str(tmp),
            ],
            timeout=300,
        )
    return dest
