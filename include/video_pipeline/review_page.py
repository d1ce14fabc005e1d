"""The review page of a gate, as HTML: every segment (the first 3 on top), its clip playing in a ``<video>``
(or its image at full size), its prompts, narration, credits and redo history, takes side by side with one
choice per segment, the gate's contact sheets, and the reviewer's Approve / Reject / Redo (``review.js`` sends
them to Airflow's HITL API).

The page holds the first :data:`PAGE_SIZE` segments; ``review.js`` fetches the others :data:`PAGE_SIZE` at a
time (:func:`render_segments`, the same cards) as the reviewer scrolls to them, so the first render costs the
same at 1000 segments as at 50. Media load lazily (``preload="none"``, ``loading="lazy"``).

Everything a person or a provider wrote (title, prompts, narration, notes, names) is hostile input: it only
ever appears HTML-escaped as text or as an escaped attribute value, never in a script, a style or a URL. URLs
are the pipeline's own (media links, the API endpoint) and are escaped too. The page carries no inline script
or style, so the Content-Security-Policy (:func:`content_security_policy`) can forbid both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from urllib.parse import urlsplit

from video_pipeline.contact_sheets import ContactSheet
from video_pipeline.models import Decision, JobSettings, Stage, VideoSegment

#: Segments shown first, in their own row, with their clips ready to play (the original design's preview).
FIRST = 3
#: Segments in the page itself and in each fetch of more (``render_segments``).
PAGE_SIZE = 50
PROMPT_MAX_CHARS = 1000


def text(value: object) -> str:
    """Any value as HTML text (or an attribute value): every ``& < > " '`` escaped."""
    return escape(str(value), quote=True)


@dataclass(frozen=True)
class Answer:
    """What the gate's current request was answered with, by whom, and when."""

    option: str
    by: str | None
    at: datetime | None


@dataclass(frozen=True)
class Assets:
    """Where the page's own script and style sheet are served, and the HITL endpoint it answers through."""

    script_url: str
    style_url: str
    hitl_url: str
    segments_url: str = ""  # more segments as HTML (``render_segments``), with ``?start=<position>``


@dataclass(frozen=True)
class ReviewView:
    """Everything the page shows. ``url_for`` turns a storage key into a link the browser can open."""

    job: JobSettings
    stage: Stage
    run_id: str
    segments: list[VideoSegment]
    url_for: Callable[[str], str]
    assets: Assets
    decisions: list[Decision] = field(default_factory=list)  # this run, this stage, oldest first
    stage_credits: float = 0.0
    job_credits: float = 0.0
    next_stage: str = "assembly"
    next_estimate: float = 0.0
    answer: Answer | None = None
    waiting: bool = True  # the gate is open (deferred, its request unanswered)
    notice: str | None = None
    sheets: list[ContactSheet] = field(default_factory=list)


def takes_of(segment: VideoSegment, stage: Stage) -> tuple[list[str], int]:
    """A segment's takes at this gate (take 1 first) and the one picked; one take when the stage made one."""
    keys = segment.takes(stage)
    pick = segment.clip_pick if stage == "clips" else segment.image_pick
    return keys, pick if len(keys) > 1 and 1 <= pick <= len(keys) else 1


def _media(view: ReviewView, segment: VideoSegment, key: str, number: int) -> str:
    label = f"segment {segment.index}, take {number}"
    if view.stage == "clips":
        poster = f' poster="{text(view.url_for(segment.image_key))}"' if segment.image_key else ""
        return (
            f'<video controls preload="none" playsinline{poster} src="{text(view.url_for(key))}" '
            f'aria-label="{text(label)}"></video>'
        )
    url = text(view.url_for(key))
    return f'<a href="{url}" target="_blank" rel="noopener"><img src="{url}" alt="{text(label)}" loading="lazy"></a>'


def _takes(view: ReviewView, segment: VideoSegment) -> str:
    keys, pick = takes_of(segment, view.stage)
    if not keys:
        return '<p class="missing">No output for this segment.</p>'
    if len(keys) == 1:
        return f'<div class="takes one">{_media(view, segment, keys[0], 1)}</div>'
    figures = []
    for number, key in enumerate(keys, start=1):
        checked = " checked" if number == pick else ""
        disabled = "" if view.waiting else " disabled"
        figures.append(
            f'<figure class="take">{_media(view, segment, key, number)}<figcaption><label>'
            f'<input type="radio" class="pick" name="pick-{segment.index}" value="{number}" '
            f'data-index="{segment.index}"{checked}{disabled}> Take {number}</label></figcaption></figure>'
        )
    return f'<div class="takes" data-takes="{len(keys)}">{"".join(figures)}</div>'


def _details(view: ReviewView, segment: VideoSegment) -> str:
    rows = [("Prompt", segment.prompt)]
    if view.stage == "clips":
        rows.append(("Motion", segment.motion_prompt or "(the prompt)"))
    if segment.narration:
        spoken = f" ({segment.narration_s:.1f} s spoken)" if segment.narration_s is not None else ""
        rows.append(("Narration", segment.narration + spoken))
    made_by = segment.clip_provider if view.stage == "clips" else segment.image_provider
    model = segment.clip_model if view.stage == "clips" else segment.image_model
    if made_by:
        rows.append(("Made by", f"{made_by} {model or ''}".strip()))
    rows.append(("Credits", f"{segment.credits:g}"))
    cells = "".join(f"<dt>{text(name)}</dt><dd>{text(value)}</dd>" for name, value in rows)
    return f"<dl>{cells}</dl>"


def _history(view: ReviewView, segment: VideoSegment) -> str:
    redos = [d for d in view.decisions if d.decision == "redo" and segment.index in d.segments]
    if not redos:
        return ""
    items = []
    for decision in redos:
        what = decision.prompts.get(segment.index)
        said = f": “{text(what)}”" if what else " (new seed)"
        who = text(decision.by or "someone")
        items.append(f"<li>Round {decision.round}, {who} via {text(decision.via)}{said}</li>")
    return (
        f'<details class="history"><summary>Redone {len(redos)}×</summary><ul>{"".join(items)}</ul></details>'
    )


def _redo_controls(view: ReviewView, segment: VideoSegment) -> str:
    if not view.waiting:
        return ""
    field_name = "motion prompt" if view.stage == "clips" else "prompt"
    current = (segment.motion_prompt or segment.prompt) if view.stage == "clips" else segment.prompt
    index = segment.index
    return (
        f'<div class="redo"><label><input type="checkbox" class="redo-box" value="{index}" '
        f'id="redo-{index}"> Redo #{index}</label>'
        f'<label class="prompt-edit" for="prompt-{index}">New {field_name} (optional)</label>'
        f'<textarea class="redo-prompt" id="prompt-{index}" data-index="{index}" rows="2" '
        f'maxlength="{PROMPT_MAX_CHARS}" data-original="{text(current)}">{text(current)}</textarea></div>'
    )


def segment_card(view: ReviewView, segment: VideoSegment) -> str:
    length = segment.fitted_s if segment.follows_voice and segment.fitted_s else segment.duration_s
    return (
        f'<article class="segment" id="segment-{segment.index}" data-index="{segment.index}">'
        f'<h3>#{segment.index} <span class="muted">{length:g} s</span></h3>'
        f"{_takes(view, segment)}{_details(view, segment)}{_history(view, segment)}"
        f"{_redo_controls(view, segment)}</article>"
    )


def _summary(view: ReviewView) -> str:
    job = view.job
    count = len(view.segments)
    next_cost = (
        f"estimate for the next stage ({text(view.next_stage)}): <strong>{view.next_estimate:g}</strong>"
        if view.next_estimate
        else f"the next stage ({text(view.next_stage)}) has no provider cost"
    )
    rounds = sum(1 for d in view.decisions if d.decision == "redo")
    plural = "s" if rounds > 1 else ""
    return (
        f"<header><h1>Review {text(view.stage)}: “{text(job.title)}”</h1>"
        f'<p class="muted">Job {text(job.job_id)} · run {text(view.run_id)} · {count} segments'
        f"{f' · {rounds} redo round{plural} so far' if rounds else ''}</p>"
        f'<p class="cost">{text(view.stage.capitalize())} so far: <strong>{view.stage_credits:g}</strong> credits '
        f"(the job: {view.job_credits:g}); {next_cost}.</p></header>"
    )


def _state(view: ReviewView) -> str:
    notice = f'<p class="notice">{text(view.notice)}</p>' if view.notice else ""
    if view.answer is not None:
        by = text(view.answer.by or "the pipeline")
        at = f" at {view.answer.at:%Y-%m-%d %H:%M} UTC" if view.answer.at else ""
        return f'{notice}<p class="answered">Already answered by {by}{at}: {text(view.answer.option)}.</p>'
    if not view.waiting:
        return f'{notice}<p class="answered">This gate is not waiting for an answer.</p>'
    return notice


def _actions(view: ReviewView) -> str:
    if not view.waiting or view.answer is not None:
        return ""
    return (
        '<section class="actions" aria-label="Answer">'
        '<label for="note">Note (optional)</label><textarea id="note" rows="2" maxlength="2000"></textarea>'
        '<div class="buttons"><button type="button" id="approve" class="approve">Approve</button>'
        '<button type="button" id="redo" class="redo-button">Redo selected</button>'
        '<button type="button" id="reject" class="reject">Reject</button></div>'
        '<p id="status" role="status" aria-live="polite"></p></section>'
    )


def render_review_page(view: ReviewView) -> str:
    """The page with its first :data:`PAGE_SIZE` segments. Its script finds what it needs in ``data-``
    attributes and the form controls."""
    first, rest = view.segments[:FIRST], view.segments[FIRST:PAGE_SIZE]
    what = "clips" if view.stage == "clips" else "images"
    sections = [
        f'<section class="first"><h2>First {len(first)} {what}</h2><div class="grid">'
        f"{''.join(segment_card(view, s) for s in first)}</div></section>"
    ]
    if rest:
        sections.append(
            f'<section class="rest"><h2>Segments {rest[0].index}–{view.segments[-1].index}</h2>'
            f'<div class="grid">{"".join(segment_card(view, s) for s in rest)}</div>{_more(view, PAGE_SIZE)}'
            "</section>"
        )
    waiting = "true" if view.waiting and view.answer is None else "false"
    return _document(
        f"Review {view.stage}: {view.job.title}",
        view.assets,
        f'<main id="review" data-hitl="{text(view.assets.hitl_url)}" data-stage="{text(view.stage)}" '
        f'data-waiting="{waiting}">{_summary(view)}{_state(view)}{_sheets(view)}{"".join(sections)}'
        f"{_actions(view)}</main>",
    )


def render_segments(view: ReviewView, start: int) -> str:
    """The cards of the :data:`PAGE_SIZE` segments from position ``start`` (0-based), for the page's script
    to add below the others, with where the next ones start (``data-next``; empty after the last)."""
    chunk = view.segments[start : start + PAGE_SIZE]
    following = start + PAGE_SIZE if start + PAGE_SIZE < len(view.segments) else ""
    return (
        f'<div id="chunk" data-next="{following}" data-label="{text(_more_label(view, start + PAGE_SIZE))}">'
        f"{''.join(segment_card(view, s) for s in chunk)}</div>"
    )


def _more_label(view: ReviewView, start: int) -> str:
    chunk = view.segments[start : start + PAGE_SIZE]
    if not chunk:
        return ""
    return f"Show segments {chunk[0].index}–{chunk[-1].index} (of {len(view.segments)})"


def _more(view: ReviewView, start: int) -> str:
    """Where the script adds the segments after ``start``: a button (and the point that loads them when
    scrolled near)."""
    if start >= len(view.segments):
        return ""
    return (
        f'<div class="more" id="more" data-url="{text(view.assets.segments_url)}" data-next="{start}">'
        f'<button type="button" id="load-more">{text(_more_label(view, start))}</button></div>'
    )


def _sheets(view: ReviewView) -> str:
    """Links to the gate's contact sheets (one per 100 segments): every segment at a glance."""
    if not view.sheets:
        return ""
    links = "".join(
        f'<li><a href="{text(view.url_for(sheet.key))}" target="_blank" rel="noopener">{text(sheet.label)}</a></li>'
        for sheet in view.sheets
    )
    return f'<nav class="sheets" aria-label="Contact sheets"><h2>Contact sheets</h2><ul>{links}</ul></nav>'


def render_not_a_gate(reason: str, assets: Assets) -> str:
    """What the tab shows on a task instance that is not a review gate (it appears on every one)."""
    return _document(
        "Not a review gate",
        assets,
        f'<main class="not-a-gate"><h1>Not a review gate</h1><p>{text(reason)}</p>'
        "<p>The review page belongs to the approval gates of the video pipeline "
        "(<code>images_gate</code>, <code>clips_gate</code>).</p></main>",
    )


def _document(title: str, assets: Assets, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{text(title)}</title><link rel="stylesheet" href="{text(assets.style_url)}">'
        f'<script src="{text(assets.script_url)}" defer></script></head><body>{body}</body></html>'
    )


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an absolute http(s) URL; None for anything else (a relative path)."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def content_security_policy(media_origins: set[str]) -> str:
    """Only the page's own script and style; media from this origin and the storage's; answers to this origin;
    framed only by the Airflow UI (same origin)."""
    media = " ".join(["'self'", *sorted(media_origins)])
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {media}; media-src {media}; connect-src 'self'; "
        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'"
    )
