"""What a reviewer sees at a gate: preview objects in storage and the markdown body of the review form.

The form renders markdown tables and images but not ``<video>``, so clips are shown as poster frames that link
to the MP4 (see docs/notes/airflow-3.3.md).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.layout import JobLayout
from video_pipeline.models import JobSpec, Stage, VideoSegment
from video_pipeline.storage import Storage

PREVIEW_COUNT: dict[Stage, int] = {"images": 5, "clips": 3}


@dataclass(frozen=True)
class PreviewItem:
    index: int
    image_key: str  # what the form shows (the image, or a clip's poster frame)
    link_key: str  # what a click opens (the image, or the clip)


@dataclass(frozen=True)
class GatePreview:
    contact_sheet_key: str
    items: list[PreviewItem]


def build_preview(
    storage: Storage, job: JobSpec, stage: Stage, segments: list[VideoSegment], round_: int
) -> GatePreview:
    """Write the contact sheet of all segments and the first N previews (posters for clips) to storage."""
    # Imported here: Pillow would cost every task process of the DAG its import time (the gate's module is
    # imported to parse the DAG file), and only an opening gate draws.
    from video_pipeline.media.thumbnails import contact_sheet, poster_from_clip

    layout = JobLayout(job.job_id)
    items: list[PreviewItem] = []
    with tempfile.TemporaryDirectory(prefix="vp-preview-") as tmp:
        workdir = Path(tmp)
        thumbs: list[tuple[int, Path]] = []
        for segment in segments:
            if stage == "images":
                assert segment.image_key is not None
                local = storage.download_to(segment.image_key, workdir / f"{segment.index:03d}.png")
                shown, link = segment.image_key, segment.image_key
            else:
                assert segment.clip_key is not None
                clip = storage.download_to(segment.clip_key, workdir / f"{segment.index:03d}.mp4")
                local = poster_from_clip(clip, workdir / f"{segment.index:03d}.jpg")
                clip.unlink()
                shown = layout.preview(f"clips-r{round_}-{segment.index:03d}.jpg")
                link = segment.clip_key
                if len(items) < PREVIEW_COUNT[stage]:
                    storage.put_file(shown, local, "image/jpeg")
            thumbs.append((segment.index, local))
            if len(items) < PREVIEW_COUNT[stage]:
                items.append(PreviewItem(segment.index, shown, link))
        sheet_key = layout.preview(f"{stage}-r{round_}-contact-sheet.jpg")
        sheet = contact_sheet(thumbs, workdir / "contact-sheet.jpg")
        storage.put_file(sheet_key, sheet, "image/jpeg")
    return GatePreview(sheet_key, items)


#: Characters that end or break a line, or that could make text look other than it is: C0/C1 controls
#: (``\r``, ``\n``, ``\x0b``, ``\x0c``, NEL…), the Unicode line and paragraph separators, and the bidi
#: embedding/override/isolate controls (they reorder what the reviewer reads).
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069\s]+")
#: Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and every markdown construct
#: (emphasis, links, images, headings, lists, tables, HTML, entities, code) starts with one of them.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
#: GFM autolink literals (``www.``, ``http://``, ``https://``, ``a@b.c``) are found in the text after escapes
#: are resolved (remark-gfm, which the Airflow UI renders the form's body with), so escaping alone leaves them
#: live links. An invisible WORD JOINER after the ``www``/scheme and after ``@`` breaks every pattern.
_AUTOLINK = re.compile(r"(?i)(www(?=\.)|(?:https?|ftp|mailto|xmpp)(?=:)|@)")
WORD_JOINER = "\u2060"


def plain_text(text: str) -> str:
    """Text on one line: control characters, line breaks and runs of white space become one space."""
    return _BREAKS.sub(" ", text).strip()


def inert(text: str) -> str:
    """User text (prompts, narration, title, notes, ids) as markdown that renders as exactly that text.

    One line, every ASCII punctuation character backslash-escaped (no link, image, heading, HTML, table cell
    or emphasis can start), and no autolink literal: it reads the same and does nothing.
    """
    unlinked = _AUTOLINK.sub(lambda m: m.group(1) + WORD_JOINER, plain_text(text))
    return _PUNCTUATION.sub(r"\\\1", unlinked)


def gate_subject(job: JobSpec, stage: Stage, round_: int) -> str:
    """The form's title. The UI shows it as plain text (not markdown): it only needs to stay on one line."""
    suffix = f" (round {round_})" if round_ > 1 else ""
    return f"Review {stage} of “{plain_text(job.title)}” ({job.job_id}){suffix}"


def _made_by(job: JobSpec) -> str:
    """Who makes each stage: ``images by `p m`, clips by `p m` `` (and a fallback, when there is one)."""
    parts = []
    for stage in ("images", "clips"):
        choice = job.choice(stage)
        fallback = (
            f" (fallback `{choice.fallback.provider} {choice.fallback.model}`)" if choice.fallback else ""
        )
        parts.append(f"{stage} by `{choice.provider} {choice.model}`{fallback}")
    return ", ".join(parts)


def gate_body(
    job: JobSpec,
    stage: Stage,
    segments: list[VideoSegment],
    preview: GatePreview,
    url_for: Callable[[str], str],
    *,
    variable_key: str,
    credits_spent: float,
    next_stage_estimate: float,
    changed: list[int],
    note: str | None = None,
    review_url: str | None = None,
) -> str:
    """The form's markdown body. Every piece of user text goes through :func:`inert`; ``review_url`` (the
    review page, built by the pipeline from URL-quoted ids) is the one link that is not a preview."""
    count = len(segments)
    lines = [
        f"**{inert(job.title)}** — **{count} {stage}** ready for review — job {inert(job.job_id)}, "
        f"{_made_by(job)}, ratio {job.ratio}.",
        "",
    ]
    if review_url:
        what = "watch every clip" if stage == "clips" else "see every image full size"
        lines += [f"**[Open the review page]({review_url})**: {what}, pick takes, redo with new prompts.", ""]
    lines += [
        f"Credits spent so far: **{credits_spent:g}**; estimate for the next stage: **{next_stage_estimate:g}**.",
    ]
    if changed:
        lines += ["", f"Regenerated in the last round: {', '.join(f'#{i}' for i in changed)}."]
        if note:
            lines += ["", f"The reviewer's note: {inert(note)}"]
    lines += _spoken_summary(job, segments)
    if takes := takes_line(job, stage):
        lines += ["", takes]
    by_index = {s.index: s for s in segments}
    shown = [by_index[item.index] for item in preview.items]
    narrated = any(s.narration for s in shown)
    spoken = any(s.narration_key for s in shown)
    motion = stage == "clips" and any(s.motion_prompt for s in shown)
    with_takes = any(len(s.takes(stage)) > 1 for s in shown)
    header = (
        "| # | preview | prompt |"
        + (" takes |" if with_takes else "")
        + (" motion |" if motion else "")
        + (" narration |" if narrated else "")
        + (" spoken |" if spoken else "")
    )
    lines += ["", f"### First {len(preview.items)}", "", header, "|---" * header.count(" |") + "|"]
    for item, segment in zip(preview.items, shown, strict=True):
        cells = [
            str(item.index),
            f"[![#{item.index}]({url_for(item.image_key)})]({url_for(item.link_key)})",
            inert(segment.prompt),
        ]
        if with_takes:
            cells.append(_takes_cell(segment, stage, url_for))
        if motion:
            cells.append(inert(segment.motion_prompt or ""))
        if narrated:
            cells.append(inert(segment.narration or ""))
        if spoken:
            cells.append(_spoken_cell(job, segment, url_for))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"### All {count} segments",
        "",
        f"[![contact sheet]({url_for(preview.contact_sheet_key)})]({url_for(preview.contact_sheet_key)})",
        "",
        "**Approve** continues, **Reject** stops the job, **Redo segments** regenerates the numbers you list.",
        f"Or set the Variable `{variable_key}` to `approve`, `reject` or "
        '`{"decision": "redo", "segments": [2, 5]}`.',
    ]
    return "\n".join(lines)


def takes_line(job: JobSpec, stage: Stage) -> str | None:
    """One line saying that the stage made several takes per segment and how to pick (``None``: one take)."""
    takes = job.stage_takes(stage)
    if takes < 2:
        return None
    return (
        f"**{takes} takes per segment** (take 1 goes forward unless picked): pick on the review page, or with "
        '`picks`, e.g. `{"3": 2}` in the form or `{"decision": "approve", "picks": {"3": 2}}` in the Variable.'
    )


def _takes_cell(segment: VideoSegment, stage: Stage, url_for: Callable[[str], str]) -> str:
    """A link to each take of the segment, the picked one in bold."""
    pick = segment.image_pick if stage == "images" else segment.clip_pick
    links = []
    for number, key in enumerate(segment.takes(stage), start=1):
        link = f"[{number}]({url_for(key)})"
        links.append(f"**{link}**" if number == pick else link)
    return " · ".join(links)


def _segment_length(segment: VideoSegment) -> float:
    return (
        segment.fitted_s
        if segment.follows_voice and segment.fitted_s is not None
        else float(segment.duration_s)
    )


def runs_over(job: JobSpec, segment: VideoSegment) -> bool:
    """Whether a spoken narration is longer than its (fixed-length) segment leaves room for: it is cut."""
    if segment.narration_s is None or job.voice is None:
        return False
    return job.voice.lead_s + segment.narration_s > _segment_length(segment) + 1e-3


def _spoken_cell(job: JobSpec, segment: VideoSegment, url_for: Callable[[str], str]) -> str:
    """A segment's spoken length, linking to its audio (and a warning when its segment cuts it)."""
    if not segment.narration_key or segment.narration_s is None:
        return ""
    cell = (
        f"[{segment.narration_s:.1f} s]({url_for(segment.narration_key)}) of {_segment_length(segment):g} s"
    )
    return cell + (" — **cut**" if runs_over(job, segment) else "")


def _spoken_summary(job: JobSpec, segments: list[VideoSegment]) -> list[str]:
    """One line on the narration: who speaks it, each segment's spoken length, and which ones are cut."""
    spoken = [s for s in segments if s.narration_key and s.narration_s is not None]
    if not spoken or job.voice is None:
        return []
    lengths = ", ".join(f"#{s.index} {s.narration_s:.1f} s" for s in spoken)
    cut = [f"#{s.index}" for s in spoken if runs_over(job, s)]
    line = (
        f"Narration spoken by `{job.voice.provider}` ({sum(s.narration_s or 0.0 for s in spoken):.1f} s in all): "
        f"{lengths}."
    )
    if cut:
        line += f" Longer than their segments (cut at the segment's end): {', '.join(cut)}."
    return ["", line]
