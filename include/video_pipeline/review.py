"""What a reviewer sees at a gate: preview objects in storage and the markdown body of the review form.

The form renders markdown tables and images but not ``<video>``, so clips are shown as poster frames that link
to the MP4 (see notes/airflow-3.3.md).
"""

from __future__ import annotations

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
    from video_pipeline.preview import contact_sheet, poster_from_clip

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


def gate_subject(job: JobSpec, stage: Stage, round_: int) -> str:
    suffix = f" (round {round_})" if round_ > 1 else ""
    return f"Review {stage} of “{job.title}” ({job.job_id}){suffix}"


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
) -> str:
    count = len(segments)
    lines = [
        f"**{count} {stage}** ready for review — job `{job.job_id}`, provider `{job.provider}`, ratio {job.ratio}.",
        "",
        f"Credits spent so far: **{credits_spent:g}**; estimate for the next stage: **{next_stage_estimate:g}**.",
    ]
    if changed:
        lines += ["", f"Regenerated in the last round: {', '.join(f'#{i}' for i in changed)}."]
    lines += ["", f"### First {len(preview.items)}", "", "| # | preview | prompt |", "|---|---|---|"]
    by_index = {s.index: s for s in segments}
    for item in preview.items:
        prompt = by_index[item.index].prompt.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {item.index} | [![#{item.index}]({url_for(item.image_key)})]({url_for(item.link_key)}) | {prompt} |"
        )
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
