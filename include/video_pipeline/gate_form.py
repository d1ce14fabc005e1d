"""What a reviewer sees at a gate: preview objects in storage and the markdown body of the review form.

The form renders markdown tables and images but not ``<video>``, so clips are shown as poster frames that link
to the MP4 (see docs/notes/airflow-3.3.md).
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.contact_sheets import ContactSheet, make_sheets, thumbnail_source
from video_pipeline.layout import JobLayout
from video_pipeline.models import JobSpec, Stage, VideoSegment
from video_pipeline.storage import Storage

log = logging.getLogger(__name__)

PREVIEW_COUNT: dict[Stage, int] = {"images": 5, "clips": 3}
#: Segment numbers a line of the form lists before it says how many more (redone, spoken, cut).
LISTED_IN_FORM = 20


@dataclass(frozen=True)
class PreviewItem:
    index: int
    image_key: str  # what the form shows (the image, or a clip's poster frame)
    link_key: str  # what a click opens (the image, or the clip)


@dataclass(frozen=True)
class GatePreview:
    sheets: list[ContactSheet]  # every segment, SHEET_SIZE to a page
    items: list[PreviewItem]


def build_preview(
    storage: Storage, job: JobSpec, stage: Stage, segments: list[VideoSegment], round_: int
) -> GatePreview:
    """Write the gate's contact sheets (the pages not already in storage) and the first N previews (posters
    for clips) to storage."""
    layout = JobLayout(job.job_id)
    sheets, made = make_sheets(storage, job, stage, segments)
    log.info("Contact sheets: %d pages, made %s (the others were in storage)", len(sheets), made or "none")
    items: list[PreviewItem] = []
    with tempfile.TemporaryDirectory(prefix="vp-preview-") as tmp:
        for segment in segments[: PREVIEW_COUNT[stage]]:
            if stage == "images":
                assert segment.image_key is not None
                items.append(PreviewItem(segment.index, segment.image_key, segment.image_key))
                continue
            assert segment.clip_key is not None
            shown = layout.preview(f"clips-r{round_}-{segment.index:03d}.jpg")
            storage.put_file(shown, thumbnail_source(storage, stage, segment, Path(tmp)), "image/jpeg")
            items.append(PreviewItem(segment.index, shown, segment.clip_key))
    return GatePreview(sheets, items)


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
        lines += ["", f"Regenerated in the last round: {listed([f'#{i}' for i in changed])}."]
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
    if (others := count - len(preview.items)) > 0:
        where = " and on the review page" if review_url else ""
        lines += ["", f"The other {others} are on the contact sheets below{where}."]
    lines += ["", f"### All {count} segments", "", *_sheet_lines(preview.sheets, url_for, review_url), ""]
    lines += [
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
    lengths = listed([f"#{s.index} {s.narration_s:.1f} s" for s in spoken])
    cut = [f"#{s.index}" for s in spoken if runs_over(job, s)]
    line = (
        f"Narration spoken by `{job.voice.provider}` ({sum(s.narration_s or 0.0 for s in spoken):.1f} s in all): "
        f"{lengths}."
    )
    if cut:
        line += f" Longer than their segments (cut at the segment's end): {listed(cut)}."
    return ["", line]


def listed(items: list[str]) -> str:
    """Items joined by commas, at most :data:`LISTED_IN_FORM` of them (then how many more): the form's body
    stays the same size at 1000 segments as at 10; the review page lists every one."""
    shown = ", ".join(items[:LISTED_IN_FORM])
    more = len(items) - LISTED_IN_FORM
    return f"{shown} and {more} more (see the review page)" if more > 0 else shown


def _sheet_lines(
    sheets: list[ContactSheet], url_for: Callable[[str], str], review_url: str | None
) -> list[str]:
    """The first contact sheet as an image, the other pages as links (one image per page would make the form
    load every sheet at once)."""
    first = url_for(sheets[0].key)
    lines = [f"[![contact sheet {sheets[0].label}]({first})]({first})"]
    if len(sheets) > 1:
        pages = " · ".join(f"[{sheet.label}]({url_for(sheet.key)})" for sheet in sheets[1:])
        where = " (and every segment on the review page)" if review_url else ""
        lines += ["", f"More contact sheets{where}: {pages}"]
    return lines
