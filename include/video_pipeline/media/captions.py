"""Captions from the segments' narration: cue times, an SRT file (muxed as a soft ``mov_text`` track) and
caption images for burning in.

Burned captions are rendered with Pillow (its bundled font) into a transparent frame-sized PNG and laid over
the segment's clip with ffmpeg's ``overlay``. The bundled ffmpeg also has libass (``subtitles`` filter) and
``drawtext``, but both depend on the fonts fontconfig finds on the machine; a Pillow image looks the same on
every worker and container. Captions follow segments, so only segments with narration are re-encoded.

A narrated segment whose narration is spoken gets cues timed to its words (``word_cues``): a few words at a
time, each cue from its first word's start to its last word's end, a new cue at a sentence's end or when the
line would pass ``MAX_CUE_CHARS`` (burned in, each cue is an image shown while its words are heard). Any other
narrated segment is exactly one cue over its span, whatever its narration holds. SRT is line-based: a blank line ends a
cue, a line like ``00:00:01,000 --> 09:00:00,000`` starts one (ffmpeg's reader takes it anywhere in a cue), and
a NUL ends the text for C readers. So a caption is the narration on one line (line breaks, control and
separator characters become spaces, runs of spaces one) with ``-->`` written as an arrow.
"""

from __future__ import annotations

import itertools
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from video_pipeline.atomic_write import atomic_write
from video_pipeline.media.plan import Span
from video_pipeline.media.voice_track import Placed
from video_pipeline.words import WordTiming


@dataclass(frozen=True)
class Cue:
    index: int
    start_s: float
    end_s: float
    text: str


#: Characters that end a line somewhere (controls, line/paragraph separators) or draw nothing useful in a
#: caption: all become spaces.
_BREAKING_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_CUE_ARROW = re.compile(r"-{2,}>")


def caption_text(narration: str) -> str:
    """The narration as a caption: one line, no control characters, no ``-->``; "" when nothing is left."""
    spaced = "".join(" " if unicodedata.category(c) in _BREAKING_CATEGORIES else c for c in narration)
    return _CUE_ARROW.sub("→", " ".join(spaced.split()))


def cues_for(
    spans: list[Span],
    narration: dict[int, str],
    transition_s: float = 0.0,
    heard: dict[int, list[WordTiming]] | None = None,
) -> list[Cue]:
    """Cues timed to the ``heard`` words of a spoken narration; one cue over its span for any other narrated
    segment (where segments crossfade, it changes half-way through the fade, so cues never overlap)."""
    half = transition_s / 2
    out: list[Cue] = []
    for position, span in enumerate(spans):
        if heard and heard.get(span.index):
            out.extend(word_cues(span.index, heard[span.index]))
            continue
        text = caption_text(narration.get(span.index) or "")
        if not text:
            continue
        start = span.start_s + (half if position > 0 else 0.0)
        end = span.end_s - (half if position < len(spans) - 1 else 0.0)
        out.append(Cue(span.index, round(start, 3), round(end, 3), text))
    return _without_overlaps(out)


def _without_overlaps(cues: list[Cue]) -> list[Cue]:
    """A cue that runs into the next one ends where it starts (a crossfade can bring two segments' cues
    together); one left without length is dropped."""
    kept = []
    for cue, following in zip(cues, [*cues[1:], None], strict=False):
        end = min(cue.end_s, following.start_s) if following is not None else cue.end_s
        if end > cue.start_s:
            kept.append(Cue(cue.index, cue.start_s, end, cue.text))
    return kept


#: A word cue holds at most this many characters (a subtitle line) …
MAX_CUE_CHARS = 42
#: … and a new cue starts after a word that ends a sentence.
_SENTENCE_END = re.compile(r"[.!?…。！？；]['\"”’»)\]」』]*$")
_CJK_WORD = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _joined(words: list[WordTiming]) -> str:
    text = words[0].text
    for before, word in itertools.pairwise(words):
        text += ("" if _CJK_WORD.match(before.text) and _CJK_WORD.match(word.text) else " ") + word.text
    return text


def heard_words(placed: Placed, words: list[WordTiming]) -> list[WordTiming]:
    """A narration's words on the video's timeline: what is heard of them (a cut narration loses its end)."""
    shift = placed.at_s - placed.from_s
    heard = []
    for word in words:
        if word.start_s >= placed.to_s - 1e-3:
            break
        start = max(word.start_s, placed.from_s) + shift
        end = min(word.end_s, placed.to_s) + shift
        heard.append(
            WordTiming(text=word.text, start_s=round(start, 3), end_s=round(max(end, start + 1e-3), 3))
        )
    return heard


def word_cues(index: int, words: list[WordTiming]) -> list[Cue]:
    """Cues of a few heard words each (see the module docstring), in order, never overlapping."""
    cues: list[Cue] = []
    chunk: list[WordTiming] = []

    def close() -> None:
        if chunk:
            text = caption_text(_joined(chunk))
            if text:
                cues.append(Cue(index, round(chunk[0].start_s, 3), round(chunk[-1].end_s, 3), text))
            chunk.clear()

    for word in words:
        if chunk and len(_joined([*chunk, word])) > MAX_CUE_CHARS:
            close()
        chunk.append(word)
        if _SENTENCE_END.search(word.text):
            close()
    close()
    return cues


def _timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d},{millis:03d}"


def write_srt(cues: list[Cue], dest: Path) -> Path:
    """The cues as SRT, one block each (cue text goes through ``caption_text`` again: whoever built the cues,
    a block can never split)."""
    blocks = [
        f"{number}\n{_timestamp(cue.start_s)} --> {_timestamp(cue.end_s)}\n{caption_text(cue.text) or '…'}\n"
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
    with atomic_write(dest) as tmp:
        image.save(tmp, format="PNG")
    return dest
