"""Script → segments: split on sentence boundaries, then pack sentences up to a target spoken duration."""

from __future__ import annotations

import math
import re

from video_pipeline.models import (
    MAX_DURATION_S,
    MIN_DURATION_S,
    JobSpec,
    SegmentSpec,
    VideoSegment,
    max_segments,
)

WORDS_PER_SECOND = 2.5
_ABBREVIATIONS = {"mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "etc.", "e.g.", "i.e.", "jr.", "sr."}
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"'”’)])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences, keeping common abbreviations ("Dr.", "e.g.") attached; paragraphs always break."""
    sentences: list[str] = []
    for paragraph in re.split(r"\n\s*\n|\n", text):
        pending = ""
        for piece in _SENTENCE_END.split(paragraph.strip()):
            if not piece:
                continue
            pending = f"{pending} {piece}".strip() if pending else piece.strip()
            last_word = pending.rsplit(" ", 1)[-1].lower()
            if last_word not in _ABBREVIATIONS:
                sentences.append(pending)
                pending = ""
        if pending:
            sentences.append(pending)
    return [s for s in sentences if any(c.isalnum() for c in s)]


def _words(text: str) -> int:
    return len(text.split())


def _split_long(sentence: str, max_words: int) -> list[str]:
    """A sentence longer than the longest clip is cut on commas, else every ``max_words`` words."""
    parts: list[str] = []
    current: list[str] = []
    for clause in re.split(r"(?<=[,;:])\s+", sentence):
        words = clause.split()
        if current and len(current) + len(words) > max_words:
            parts.append(" ".join(current))
            current = []
        while len(words) > max_words:
            parts.append(" ".join(words[:max_words]))
            words = words[max_words:]
        current.extend(words)
    if current:
        parts.append(" ".join(current))
    return parts


def _truncate(text: str, limit: int = 1000) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"


def split_script(
    script: str, target_duration_s: int, words_per_second: float = WORDS_PER_SECOND
) -> list[SegmentSpec]:
    """Greedily pack consecutive sentences while their estimated spoken time stays within the target."""
    target_words = max(1, int(target_duration_s * words_per_second))
    max_words = max(1, int(MAX_DURATION_S * words_per_second))
    chunks: list[str] = []
    current: list[str] = []
    for sentence in split_sentences(script):
        pieces = _split_long(sentence, max_words) if _words(sentence) > max_words else [sentence]
        for piece in pieces:
            if current and _words(" ".join([*current, piece])) > target_words:
                chunks.append(" ".join(current))
                current = []
            current.append(piece)
    if current:
        chunks.append(" ".join(current))
    segments = []
    for chunk in chunks:
        seconds = math.ceil(_words(chunk) / words_per_second)
        duration = min(MAX_DURATION_S, max(MIN_DURATION_S, seconds))
        segments.append(
            SegmentSpec(prompt=_truncate(chunk), narration=_truncate(chunk, 2000), duration_s=duration)
        )
    return segments


def segments_for(job: JobSpec) -> list[VideoSegment]:
    """The job's segments, numbered from 1; segment n gets seed ``job.seed + n``."""
    specs = (
        job.segments if job.segments is not None else split_script(job.script or "", job.segment_duration_s)
    )
    cap = max_segments()
    if not specs:
        raise ValueError("script: yields no segments (is it only whitespace or punctuation?)")
    if len(specs) > cap:
        raise ValueError(f"script: yields {len(specs)} segments, more than the cap of {cap}")
    return [
        VideoSegment(
            index=n,
            prompt=spec.prompt,
            motion_prompt=spec.motion_prompt,
            narration=spec.narration,
            duration_s=spec.duration_s,
            seed=job.seed + n,
        )
        for n, spec in enumerate(specs, start=1)
    ]
