"""Spoken words and when they are said: a narration's text cut into words, and timings mapped onto them.

A voice reports timings in its own units: the offline engine one event per *spoken* word at a character
position ("3.5" gives three events, "10:30" two, a Chinese dictionary word one), a paid voice one start and end
per character, or none at all. Captions need them per *written* word, so every source comes through here:

* :func:`text_words` cuts the text into words: runs without spaces, and each CJK character alone (text
  written without spaces is read about one character per syllable).
* :func:`from_events` gives each word the earliest event inside it; words without one are interpolated
  between their neighbours (by character count), so every word gets a time and times never go backwards.
* :func:`from_characters` takes each word's first character's start and last character's end.
* :func:`tightened` ends each word where its sound ends (:func:`sounding_frames` of the audio), so a word
  before a pause does not last through the pause.
* :func:`scaled` stretches timings measured on one rendering of the text onto another rendering's speech
  (the offline engine's words onto a voice that reports none).

A word ends where the next begins, or where speech ends for the last one, unless the source said when it
ended; :func:`WordTiming` times are seconds from the start of the audio file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

#: Han, kana and Bopomofo (as ``segmentation``): each character is a word of its own.
_CJK = (
    "\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_WORD = re.compile(rf"[{_CJK}][^\s{_CJK}]*|[^\s{_CJK}]+")


class WordTiming(BaseModel):
    """One written word and when it is spoken, in seconds from the start of its audio file."""

    model_config = ConfigDict(frozen=True)

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class TextWord:
    """A word of the text: ``start`` and ``end`` are character offsets (``text[start:end]``)."""

    text: str
    start: int
    end: int


def text_words(text: str) -> list[TextWord]:
    """The words of ``text`` in order: runs without spaces, and CJK characters one by one (with the
    punctuation that follows them)."""
    return [TextWord(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def _fill(starts: list[float | None], words: list[TextWord], first_s: float, last_s: float) -> list[float]:
    """Every word's start: known ones kept (made non-decreasing), unknown ones interpolated by character
    offset between the known ones around them (``first_s`` before the first, ``last_s`` after the last)."""
    anchors = [(0, first_s)] + [(w.start, s) for w, s in zip(words, starts, strict=True) if s is not None]
    anchors.append((words[-1].end if words else 0, last_s))
    filled: list[float] = []
    for word, start in zip(words, starts, strict=True):
        if start is None:
            before = max((a for a in anchors if a[0] <= word.start), key=lambda a: a[0])
            after = min((a for a in anchors if a[0] > word.start), key=lambda a: a[0])
            span = after[0] - before[0]
            share = (word.start - before[0]) / span if span else 0.0
            start = before[1] + (after[1] - before[1]) * share
        filled.append(max(start, filled[-1]) if filled else start)
    return filled


def _timed(
    words: list[TextWord], starts: list[float], ends: Sequence[float | None], speech_end_s: float
) -> list[WordTiming]:
    timed = []
    for n, (word, start) in enumerate(zip(words, starts, strict=True)):
        following = starts[n + 1] if n + 1 < len(starts) else speech_end_s
        end = ends[n] if ends[n] is not None else following
        end = min(max(float(end), start), max(following, start))  # type: ignore[arg-type]
        timed.append(WordTiming(text=word.text, start_s=round(start, 3), end_s=round(end, 3)))
    return timed


def from_events(
    text: str, events: Sequence[tuple[int, float]], *, speech_start_s: float, speech_end_s: float
) -> list[WordTiming]:
    """Word timings from ``(character offset, seconds)`` events, one per spoken word (the offline engine's);
    each written word takes the earliest event inside it."""
    words = text_words(text)
    if not words:
        return []
    starts: list[float | None] = [None] * len(words)
    for offset, seconds in events:
        for n, word in enumerate(words):
            if word.start <= offset < word.end:
                current = starts[n]
                starts[n] = seconds if current is None else min(current, seconds)
                break
    filled = [max(start, speech_start_s) for start in _fill(starts, words, speech_start_s, speech_end_s)]
    return _timed(words, filled, [None] * len(words), speech_end_s)


def from_characters(
    text: str, starts_s: Sequence[float], ends_s: Sequence[float], *, speech_end_s: float
) -> list[WordTiming]:
    """Word timings from per-character start and end times (a voice's alignment); characters past the end
    of the timings (a provider that dropped some) are interpolated."""
    words = text_words(text)
    if not words:
        return []
    starts: list[float | None] = [
        float(starts_s[w.start]) if w.start < len(starts_s) else None for w in words
    ]
    ends: list[float | None] = [float(ends_s[w.end - 1]) if w.end - 1 < len(ends_s) else None for w in words]
    first = next((s for s in starts if s is not None), 0.0)
    filled = _fill(starts, words, first, speech_end_s)
    return _timed(words, filled, ends, speech_end_s)


def scaled(
    words: Sequence[WordTiming], source: tuple[float, float], target: tuple[float, float]
) -> list[WordTiming]:
    """Timings measured over the speech span ``source`` (start, end in seconds) moved and stretched linearly
    onto the speech span ``target`` of another rendering of the same text."""
    (s0, s1), (t0, t1) = source, target
    factor = (t1 - t0) / (s1 - s0) if s1 > s0 else 0.0

    def move(x: float) -> float:
        return round(min(max(t0 + (x - s0) * factor, t0), t1), 3)

    return [w.model_copy(update={"start_s": move(w.start_s), "end_s": move(w.end_s)}) for w in words]


#: Frames of this length (s) are the unit of "sounding or silent".
FRAME_S = 0.01


@dataclass(frozen=True)
class Sounding:
    """Which ``FRAME_S`` frames of an audio file hold sound (any sample above the silence level)."""

    frames: list[bool]
    duration_s: float

    def bounds(self) -> tuple[float, float]:
        """Where sound starts and ends, in seconds (0, 0 for silence throughout)."""
        loud = [n for n, sounding in enumerate(self.frames) if sounding]
        if not loud:
            return 0.0, 0.0
        return round(loud[0] * FRAME_S, 3), round(min((loud[-1] + 1) * FRAME_S, self.duration_s), 3)

    def last_sound_before(self, start_s: float, end_s: float) -> float | None:
        """The end of the last sounding frame in [start_s, end_s), or None when all of it is silent."""
        first, last = int(start_s / FRAME_S), min(len(self.frames), round(end_s / FRAME_S))
        for n in range(last - 1, first - 1, -1):
            if self.frames[n]:
                return round(min((n + 1) * FRAME_S, self.duration_s), 3)
        return None


def sounding_frames(samples: Sequence[int] | Sequence[float], rate: int, *, level: float) -> Sounding:
    """Mono samples cut into ``FRAME_S`` frames, each sounding when a sample's magnitude passes ``level``."""
    size = max(1, round(rate * FRAME_S))
    return Sounding(
        [any(abs(v) > level for v in samples[at : at + size]) for at in range(0, len(samples), size)],
        len(samples) / rate,
    )


def tightened(words: Sequence[WordTiming], sound: Sounding) -> list[WordTiming]:
    """Each word ending where its last sound does (at least one frame after its start)."""
    out = []
    for word in words:
        heard = sound.last_sound_before(word.start_s, word.end_s)
        end = max(word.start_s + FRAME_S, heard) if heard is not None else word.end_s
        out.append(word.model_copy(update={"end_s": round(min(end, word.end_s), 3)}))
    return out
