"""A gate's contact sheets: every segment's thumbnail, :data:`SHEET_SIZE` to a sheet, one sheet per page.

A sheet's key names its page and a digest of what its thumbnails show (each segment's output at the stage and
what it was made from), so the same segments always give the same key. The gate makes only the pages whose
key is not in storage yet (after a redo: the pages holding a redone or re-picked segment), and the review page
finds the sheets from the manifest's segments alone. A sheet is at most :data:`SHEET_COLUMNS` ×
:data:`SHEET_SIZE` / :data:`SHEET_COLUMNS` thumbnails of :data:`THUMB_BOX` px, whatever N is, and is made with
one page's thumbnails on disk and one image open at a time.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from video_pipeline.layout import JobLayout, content_hash
from video_pipeline.models import JobSettings, Stage, VideoSegment
from video_pipeline.storage import Storage

SHEET_SIZE = 100  # thumbnails per sheet
SHEET_COLUMNS = 10
THUMB_BOX = 192  # px: a thumbnail fits in a square of this side
GAP = 6  # px between thumbnails (``media.thumbnails.contact_sheet``)
#: The largest side of a sheet in pixels (a full sheet: 10 × 10 boxes and their gaps).
MAX_SHEET_SIDE = SHEET_COLUMNS * (THUMB_BOX + GAP) + GAP

#: What a segment's thumbnail at each stage shows, and everything that output was made from. A field more
#: than needed only re-makes a sheet; a field less could keep a stale one, so when in doubt a field is in.
_SHOWN_FIELDS: dict[Stage, set[str]] = {
    "images": {
        "index",
        "prompt",
        "seed",
        "image_key",
        "image_takes",
        "image_pick",
        "image_provider",
        "image_model",
        "image_task_id",
        "image_cache_hit",
        "image_finished_at",
    },
    "clips": {
        "index",
        "prompt",
        "motion_prompt",
        "seed",
        "duration_s",
        "image_key",
        "clip_key",
        "clip_takes",
        "clip_pick",
        "clip_provider",
        "clip_model",
        "clip_task_id",
        "clip_cache_hit",
        "clip_finished_at",
    },
}


@dataclass(frozen=True)
class ContactSheet:
    """One page of a gate's contact sheets: its number (from 1), its storage key and its segments."""

    page: int
    key: str
    indexes: tuple[int, ...]

    @property
    def label(self) -> str:
        return f"#{self.indexes[0]}–#{self.indexes[-1]}"


def sheet_pages(job: JobSettings, stage: Stage, segments: list[VideoSegment]) -> list[ContactSheet]:
    """The sheets showing ``segments`` (in their order) at ``stage``, page by page."""
    layout = JobLayout(job.job_id)
    made_with = {"ratio": job.ratio, "choice": job.choice(stage).model_dump(mode="json")}
    pages = []
    for start in range(0, len(segments), SHEET_SIZE):
        chunk = segments[start : start + SHEET_SIZE]
        shown = [s.model_dump(mode="json", include=_SHOWN_FIELDS[stage]) for s in chunk]
        digest = content_hash({"made_with": made_with, "segments": shown})
        page = start // SHEET_SIZE + 1
        pages.append(
            ContactSheet(
                page=page,
                key=layout.preview(f"{stage}-sheet-{page:03d}-{digest[:16]}.jpg"),
                indexes=tuple(s.index for s in chunk),
            )
        )
    return pages


def thumbnail_source(storage: Storage, stage: Stage, segment: VideoSegment, workdir: Path) -> Path:
    """The segment's picture at ``stage`` as a local file: its image, or a poster frame of its clip."""
    from video_pipeline.media.thumbnails import poster_from_clip

    if stage == "images":
        assert segment.image_key is not None
        return storage.download_to(segment.image_key, workdir / f"{segment.index:03d}.png")
    assert segment.clip_key is not None
    clip = storage.download_to(segment.clip_key, workdir / f"{segment.index:03d}.mp4")
    try:
        return poster_from_clip(clip, workdir / f"{segment.index:03d}.jpg")
    finally:
        clip.unlink()


def make_sheets(
    storage: Storage,
    job: JobSettings,
    stage: Stage,
    segments: list[VideoSegment],
    source: Callable[[Storage, Stage, VideoSegment, Path], Path] = thumbnail_source,
) -> tuple[list[ContactSheet], list[int]]:
    """Every sheet of ``segments`` in storage: the pages already there are kept, the others made, one page at a
    time. Returns the sheets and the numbers of the pages made now."""
    # Imported here: Pillow would cost every task process of the DAG its import time.
    from video_pipeline.media.thumbnails import contact_sheet

    by_index = {s.index: s for s in segments}
    sheets = sheet_pages(job, stage, segments)
    made = []
    for sheet in sheets:
        if storage.exists(sheet.key):
            continue
        with tempfile.TemporaryDirectory(prefix="vp-sheet-") as tmp:
            workdir = Path(tmp)
            thumbs = [(i, source(storage, stage, by_index[i], workdir)) for i in sheet.indexes]
            image = contact_sheet(thumbs, workdir / "sheet.jpg", columns=SHEET_COLUMNS, box=THUMB_BOX)
            storage.put_file(sheet.key, image, "image/jpeg")
        made.append(sheet.page)
    return sheets, made
