"""Script → segments: split into sentences, then pack sentences up to a target spoken duration. Nothing is lost.

Sentences end at ``. ! ? …`` followed by a space (and not after "Dr." or "e.g."), at the full-width stops of
CJK text (``。！？；．``, and ``…`` after a CJK character), which need no space after them, and at every line
break. A sentence longer than the longest clip (or the prompt limit) is cut at clause punctuation
(``, ; : ，、；：``), then between words, and text without spaces (Thai, a long identifier) between characters,
so every segment fits and every character of the script lands in exactly one segment, in order.

Spoken time is estimated per word (2.5 words/s) and, for Chinese and Japanese, per character (4/s); a run of
letters longer than a word (text written without spaces) counts one word per 8 letters.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from video_pipeline.models import (
    AUTO,
    MAX_DURATION_S,
    MAX_PROMPT_CHARS,
    MAX_SEGMENTS_ENV,
    MIN_DURATION_S,
    JobSpec,
    SegmentSpec,
    VideoSegment,
    has_visible_text,
    max_segments,
)

WORDS_PER_SECOND = 2.5
CJK_CHARS_PER_SECOND = 4.0
#: Letters per word where a run of letters is longer than a word (no spaces to count words by).
LONG_RUN_CHARS = 8
#: A run without spaces is cut at this many characters when a sentence has to be cut (2 s of speech).
MAX_RUN_CHARS = 40
_EPSILON = 1e-9

_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "jr.", "sr."}
#: Han (with extensions and compatibility ideographs), kana, Bopomofo: text written without spaces,
#: spoken about one character per syllable. Hangul is written with spaces and counted by words.
_CJK_RANGES = (
    "\u3040-\u30ff\u3100-\u312f\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
#: CJK symbols and punctuation, full-width and half-width forms (、。「」，！？…).
_CJK_PUNCTUATION = "\u3000-\u303f\uff01-\uff65\ufe10-\ufe1f\ufe30-\ufe4f"
_CJK_CHAR = re.compile(f"[{_CJK_RANGES}]")
_CJK_TEXT = re.compile(f"[{_CJK_RANGES}{_CJK_PUNCTUATION}]")
#: Latin stops end a sentence when a space, a CJK character or the line's end follows.
_LATIN_STOPS = ".!?…"
#: Full-width stops end a sentence wherever they are.
_CJK_STOPS = "。！？；．｡"
_STOPS = frozenset(_LATIN_STOPS + _CJK_STOPS)
_CLOSERS = "\"'”’»)]}）」』》〉】〕］｝"
_CLAUSE_ENDS = ",;:，、；：﹐﹑﹔﹕"
#: An atom of a sentence: a CJK character (with the punctuation after it), punctuation alone, or a run of
#: anything else without spaces (a word with its punctuation); group 1 is the space before it.
_ATOM = re.compile(
    rf"(\s*)([{_CJK_RANGES}][{_CJK_PUNCTUATION}]*|[{_CJK_PUNCTUATION}]+|[^\s{_CJK_RANGES}{_CJK_PUNCTUATION}]+)"
)


@dataclass(frozen=True)
class _Piece:
    """Text that goes into a segment whole: ``sep`` joins it to the text before it ("" inside CJK text and
    where a run without spaces was cut, else a space)."""

    text: str
    sep: str
    seconds: float


def _is_cjk(char: str) -> bool:
    return bool(_CJK_TEXT.match(char))


def _has_content(text: str) -> bool:
    """Letters, digits or symbols (emoji): a sentence of punctuation alone says nothing and is dropped."""
    return any(unicodedata.category(c)[0] in "LNS" for c in text)


def _run_seconds(run: str) -> float:
    if _CJK_CHAR.match(run):
        return 1 / CJK_CHARS_PER_SECOND
    if not any(c.isalnum() for c in run):
        return 0.0
    return max(1.0, len(run) / LONG_RUN_CHARS) / WORDS_PER_SECOND


def spoken_seconds(text: str) -> float:
    """Estimated time to speak ``text``."""
    return sum(_run_seconds(m.group(2)) for m in _ATOM.finditer(text))


def _boundary_after(line: str, start: int, stop: int) -> int | None:
    """If the stop at ``line[stop]`` ends a sentence begun at ``start``, where the sentence ends."""
    end = stop + 1
    while end < len(line) and line[end] in _STOPS:
        end += 1  # "?!", "……", "..."
    while end < len(line) and line[end] in _CLOSERS:
        end += 1
    marks = line[stop:end]
    if any(c in _CJK_STOPS for c in marks) or (marks[0] == "…" and stop > 0 and _is_cjk(line[stop - 1])):
        return end
    if end < len(line) and not line[end].isspace() and not _is_cjk(line[end]):
        return None  # "3.14", "e.g", "Yahoo!Japan"
    last_word = line[start:end].rsplit(None, 1)[-1].lower()
    if marks[0] == "." and last_word in _ABBREVIATIONS:
        return None
    return end


def split_sentences(text: str) -> list[str]:
    """Sentences, keeping common abbreviations ("Dr.", "e.g.") attached; every line break ends one."""
    sentences: list[str] = []
    for line in text.splitlines():
        start = position = 0
        while position < len(line):
            end = _boundary_after(line, start, position) if line[position] in _STOPS else None
            if end is None:
                position += 1
                continue
            sentences.append(line[start:end].strip())
            start = position = end
        sentences.append(line[start:].strip())
    return [s for s in sentences if _has_content(s)]


def _atoms(text: str) -> Iterator[_Piece]:
    """The text as pieces no sentence cut goes through; runs over ``MAX_RUN_CHARS`` cut between characters."""
    for match in _ATOM.finditer(text):
        space, run = match.groups()
        sep = " " if space else ""
        for cut in range(0, len(run), MAX_RUN_CHARS):
            part = run[cut : cut + MAX_RUN_CHARS]
            yield _Piece(part, sep if cut == 0 else "", _run_seconds(part))


def _clauses(text: str) -> list[list[_Piece]]:
    clauses: list[list[_Piece]] = [[]]
    for atom in _atoms(text):
        clauses[-1].append(atom)
        if atom.text[-1] in _CLAUSE_ENDS:
            clauses.append([])
    return [c for c in clauses if c]


def _join(pieces: list[_Piece]) -> _Piece:
    text = "".join([pieces[0].text, *(p.sep + p.text for p in pieces[1:])])
    return _Piece(text, pieces[0].sep, sum(p.seconds for p in pieces))


def _pack(pieces: Iterable[_Piece], max_seconds: float, max_chars: int) -> list[_Piece]:
    """Consecutive pieces joined greedily while the joined text stays within both bounds (a piece over them
    on its own stays alone)."""
    packed: list[_Piece] = []
    current: list[_Piece] = []
    seconds = 0.0
    chars = 0
    for piece in pieces:
        if current and (
            seconds + piece.seconds > max_seconds + _EPSILON
            or chars + len(piece.sep) + len(piece.text) > max_chars
        ):
            packed.append(_join(current))
            current, seconds, chars = [], 0.0, 0
        chars += (len(piece.sep) if current else 0) + len(piece.text)
        seconds += piece.seconds
        current.append(piece)
    if current:
        packed.append(_join(current))
    return packed


def _fits(piece: _Piece, longest_seconds: float) -> bool:
    return piece.seconds <= longest_seconds + _EPSILON and len(piece.text) <= MAX_PROMPT_CHARS


def _cut_to_fit(sentence: _Piece, target_seconds: float, longest_seconds: float) -> list[_Piece]:
    """A sentence longer than the longest clip (or the prompt limit), cut into pieces of about the target
    length: at clause punctuation, else between words, else between characters."""
    if _fits(sentence, longest_seconds):
        return [sentence]
    pieces: list[_Piece] = []
    for clause in _clauses(sentence.text):
        whole = _join(clause)
        fits = _fits(whole, longest_seconds)
        pieces.extend([whole] if fits else _pack(clause, target_seconds, MAX_PROMPT_CHARS))
    packed = _pack(pieces, target_seconds, MAX_PROMPT_CHARS)
    return [_Piece(packed[0].text, sentence.sep, packed[0].seconds), *packed[1:]]


def _sentence_pieces(script: str, target_seconds: float, longest_seconds: float) -> Iterator[_Piece]:
    previous = ""
    for sentence in split_sentences(script):
        sep = "" if previous and (_is_cjk(previous[-1]) or _is_cjk(sentence[0])) else " "
        piece = _Piece(sentence, sep, spoken_seconds(sentence))
        yield from _cut_to_fit(piece, target_seconds, longest_seconds)
        previous = sentence


def split_script(
    script: str, target_duration_s: int, words_per_second: float = WORDS_PER_SECOND, *, auto: bool = False
) -> list[SegmentSpec]:
    """Greedily pack consecutive sentences while their estimated spoken time stays within the target. With
    ``auto`` each segment lasts as long as its narration is spoken (``duration_s: "auto"``), else the estimate."""
    scale = WORDS_PER_SECOND / words_per_second  # estimates are made at the default rate
    target = target_duration_s / scale
    sentences = _sentence_pieces(script, target, MAX_DURATION_S / scale)
    chunks = _pack(sentences, target, MAX_PROMPT_CHARS)
    segments = []
    for chunk in chunks:
        if not has_visible_text(chunk.text):
            continue  # only zero-width or blank characters, cut off a run of them: nothing to show or say
        seconds = math.ceil(chunk.seconds * scale - _EPSILON)
        duration = min(MAX_DURATION_S, max(MIN_DURATION_S, seconds))
        segments.append(
            SegmentSpec(prompt=chunk.text, narration=chunk.text, duration_s=AUTO if auto else duration)
        )
    return segments


def _estimated_seconds(narration: str) -> int:
    return min(MAX_DURATION_S, max(MIN_DURATION_S, math.ceil(spoken_seconds(narration) - _EPSILON)))


def segments_for(job: JobSpec) -> list[VideoSegment]:
    """The job's segments, numbered from 1; segment n gets seed ``job.seed + n``. A script job's segments follow
    their voice (``"auto"``) when the job has one. A segment that follows its voice is fitted to an estimate of
    its narration until the voice has spoken it (``narration.fit``); without a voice, "auto" is the estimate."""
    from video_pipeline.narration import (
        estimated_fit,  # narration imports the media package: not at import time
    )

    voiced = job.voice is not None
    specs = (
        job.segments
        if job.segments is not None
        else split_script(job.script or "", job.segment_duration_s, auto=voiced)
    )
    cap = max_segments()
    if not specs:
        raise ValueError("script: yields no segments (is it only whitespace or punctuation?)")
    if len(specs) > cap:
        raise ValueError(
            f"script: yields {len(specs)} segments, more than the cap of {cap} ({MAX_SEGMENTS_ENV}); "
            "shorten the script or raise segment_duration_s"
        )
    segments = []
    for n, spec in enumerate(specs, start=1):
        auto = spec.duration_s == AUTO
        wanted = _estimated_seconds(spec.narration or "") if auto else int(spec.duration_s)
        segment = VideoSegment(
            index=n,
            prompt=spec.prompt,
            motion_prompt=spec.motion_prompt,
            narration=spec.narration,
            duration_s=job.clip_length(wanted),  # what the clip models make (README: Providers)
            seed=job.seed + n,
            follows_voice=auto and voiced,
        )
        if segment.follows_voice and job.voice is not None:
            segment = estimated_fit(job, segment, spoken_seconds(spec.narration or "") / job.voice.speed)
        segments.append(segment)
    return segments
