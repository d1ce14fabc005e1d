"""Captions from the segments' narration: cue times, an SRT file (muxed as a soft ``mov_text`` track) and
caption images for burning in.

Burned captions are rendered with Pillow (its bundled font) into a transparent frame-sized PNG and laid over
the segment's clip with ffmpeg's ``overlay``. The bundled ffmpeg also has libass (``subtitles`` filter) and
``drawtext``, but both depend on the fonts fontconfig finds on the machine; a Pillow image looks the same on
every worker and container. Captions follow segments, so only segments with narration are re-encoded.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from video_pipeline.assembly import Span


@dataclass(frozen=True)
class Cue:
    index: int
    start_s: float
    end_s: float
    text: str


def cues_for(spans: list[Span], narration: dict[int, str], transition_s: float = 0.0) -> list[Cue]:
    """One cue per narrated segment, over its span; where segments crossfade, the caption changes half-way
    through the fade, so cues never overlap."""
    half = transition_s / 2
    out = []
    for position, span in enumerate(spans):
        text = (narration.get(span.index) or "").strip()
        if not text:
            continue
        start = span.start_s + (half if position > 0 else 0.0)
        end = span.end_s - (half if position < len(spans) - 1 else 0.0)
        out.append(Cue(span.index, round(start, 3), round(end, 3), text))
    return out


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def write_srt(cues: list[Cue], dest: Path) -> Path:
    blocks = [
        f"{number}\n{_timestamp(cue.start_s)} --> {_timestamp(cue.end_s)}\n{cue.text}\n"
        for number, cue in enumerate(cues, start=1)
    ]
    dest.write_text("\n".join(blocks), encoding="utf-8")
    return dest


def caption_image(text: str, size: tuple[int, int], dest: Path) -> Path:
    """A transparent frame with the caption at the bottom: white text on a dark translucent band."""
    width, height = size
    unit = min(width, height)
    font_size = max(12, unit // 18)
    font = ImageFont.load_default(size=font_size)
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    margin = unit // 20
    average = max(1.0, draw.textlength("abcdefghijklmnopqrstuvwxyz", font=font) / 26)
    lines = textwrap.wrap(text, width=max(10, int((width - 2 * margin) / average)))[:4]
    line_height = int(font_size * 1.3)
    pad = line_height // 3
    block = line_height * len(lines)
    top = height - margin - block
    widest = max(draw.textlength(line, font=font) for line in lines)
    left = (width - widest) / 2
    draw.rectangle((left - pad, top - pad, left + widest + pad, top + block + pad), fill=(0, 0, 0, 150))
    for number, line in enumerate(lines):
        x = (width - draw.textlength(line, font=font)) / 2
        draw.text((x, top + number * line_height), line, font=font, fill=(255, 255, 255, 255))
    tmp = dest.with_name(f".{dest.name}.tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, dest)
    return dest
