"""A gate's contact sheets: 100 thumbnails to a page, each sheet's pixel size bounded, and a redo re-makes only
the pages whose segments changed (the others keep their keys, found in storage)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from video_pipeline.contact_sheets import MAX_SHEET_SIDE, SHEET_SIZE, make_sheets, sheet_pages
from video_pipeline.models import JobSpec, Stage, VideoSegment
from video_pipeline.storage import Storage

N = 250


def job() -> JobSpec:
    return JobSpec.model_validate({"job_id": "sheets", "title": "t", "segments": [{"prompt": "p"}]})


def segments(storage: Storage, tmp_path: Path) -> list[VideoSegment]:
    """N segments, each with a 640x360 image in storage (a plain colour per segment: quick to make)."""
    tmp_path.mkdir()
    made = []
    for i in range(1, N + 1):
        path = tmp_path / f"{i}.png"
        Image.new("RGB", (640, 360), (i % 256, (7 * i) % 256, 90)).save(path)
        key = f"jobs/sheets/images/{i:03d}.png"
        storage.put_file(key, path, "image/png")
        made.append(VideoSegment(index=i, prompt=f"scene {i}", duration_s=2, seed=i, image_key=key))
    return made


def test_250_segments_make_3_bounded_pages_and_a_redo_remakes_only_its_page(
    storage: Storage, tmp_path: Path
) -> None:
    shown = segments(storage, tmp_path / "src")
    drawn: list[int] = []

    def source(store: Storage, stage: Stage, segment: VideoSegment, workdir: Path) -> Path:
        drawn.append(segment.index)
        assert segment.image_key is not None
        return store.download_to(segment.image_key, workdir / f"{segment.index}.png")

    sheets, made = make_sheets(storage, job(), "images", shown, source)
    assert made == [1, 2, 3] and [s.page for s in sheets] == [1, 2, 3]
    assert [s.indexes for s in sheets] == [
        tuple(range(1, 101)),
        tuple(range(101, 201)),
        tuple(range(201, 251)),
    ]
    assert [s.label for s in sheets] == ["#1–#100", "#101–#200", "#201–#250"]
    assert sorted(drawn) == list(range(1, N + 1))  # every segment once
    sizes = []
    for sheet in sheets:
        assert sheet.key.startswith(f"jobs/sheets/preview/images-sheet-{sheet.page:03d}-")
        with Image.open(io.BytesIO(storage.get_bytes(sheet.key))) as image:
            assert image.format == "JPEG"
            sizes.append(image.size)
    assert all(max(size) <= MAX_SHEET_SIDE for size in sizes), sizes
    assert sizes[0] == sizes[1] == (10 * 198 + 6, 10 * 114 + 6)  # 10 x 10 thumbnails of 192x108
    assert sizes[2] == (10 * 198 + 6, 5 * 114 + 6)
    assert len(sheets[0].indexes) == SHEET_SIZE

    # The same segments again (a retried gate): nothing to make.
    drawn.clear()
    again, made = make_sheets(storage, job(), "images", shown, source)
    assert made == [] and drawn == [] and again == sheets

    # A redo of segment 150 (new seed): page 2 only, under a new key; pages 1 and 3 keep theirs.
    redone = [s.model_copy(update={"seed": s.seed + 100_003}) if s.index == 150 else s for s in shown]
    after, made = make_sheets(storage, job(), "images", redone, source)
    assert made == [2] and sorted(drawn) == list(range(101, 201))
    assert after[0] == sheets[0] and after[2] == sheets[2] and after[1].key != sheets[1].key
    # ...and a pick of another take of segment 7: page 1 only.
    picked = [
        s.model_copy(update={"image_pick": 2, "image_takes": [s.image_key, "x.t2.png"]})
        if s.index == 7
        else s
        for s in redone
    ]
    keys = [p.key for p in sheet_pages(job(), "images", picked)]
    assert keys[1:] == [after[1].key, after[2].key] and keys[0] != after[0].key


def test_the_clips_gate_sheets_follow_the_clips_not_the_images() -> None:
    base = [
        VideoSegment(index=i, prompt="p", duration_s=2, seed=i, image_key="i.png", clip_key="c.mp4")
        for i in (1, 2)
    ]
    clips = sheet_pages(job(), "clips", base)
    images = sheet_pages(job(), "images", base)
    assert clips[0].key != images[0].key and "/clips-sheet-001-" in clips[0].key
    motion = [s.model_copy(update={"motion_prompt": "pan left"}) for s in base]
    assert sheet_pages(job(), "clips", motion)[0].key != clips[0].key
    assert sheet_pages(job(), "images", motion)[0].key == images[0].key  # a motion prompt is not in an image
    approved = [s.model_copy(update={"status": "image_approved"}) for s in base]
    assert sheet_pages(job(), "images", approved) == images
