"""Where things live under a storage root: the storage layout contract (docs/DESIGN.md)."""

from __future__ import annotations

from video_pipeline.layout import JobLayout, cache_key, content_hash, run_key
from video_pipeline.storage import check_key


def test_a_jobs_objects_live_under_its_folder() -> None:
    layout = JobLayout("fox-at-dawn")
    assert layout.image(7) == "jobs/fox-at-dawn/images/007.png"
    assert layout.clip(12) == "jobs/fox-at-dawn/clips/012.mp4"
    assert layout.preview("sheet.jpg") == "jobs/fox-at-dawn/preview/sheet.jpg"
    assert layout.final == "jobs/fox-at-dawn/final.mp4"
    assert (layout.final_poster, layout.final_preview("webp"), layout.final_subtitles) == (
        "jobs/fox-at-dawn/final-poster.jpg",
        "jobs/fox-at-dawn/final-preview.webp",
        "jobs/fox-at-dawn/final.srt",
    )
    assert (layout.manifest, layout.progress) == (
        "jobs/fox-at-dawn/manifest.json",
        "jobs/fox-at-dawn/progress.json",
    )
    assert layout.in_flight_marker == "in-flight/fox-at-dawn"


def test_run_keys_are_readable_valid_and_unique_when_sanitising_folds_run_ids() -> None:
    scheduled, manual = "scheduled__2026-12-01T02:00:00+00:00", "scheduled__2026-12-01T02_00_00_00_00"
    assert run_key(scheduled).startswith("scheduled__2026-12-01T02_00_00_00_00-")
    assert run_key(scheduled) != run_key(manual)  # both fold to the same readable part
    assert run_key(scheduled) == run_key(scheduled)
    for run_id in (scheduled, "a b/../c", "..", "x" * 300, "狐"):
        key = run_key(run_id)
        assert check_key(f"jobs/j/runs/{key}/STOPPED") and len(key) <= 93, run_id
    assert JobLayout("j").run_stopped(scheduled) == f"jobs/j/runs/{run_key(scheduled)}/STOPPED"


def test_cache_keys_follow_the_fields_not_their_order() -> None:
    fields = {"provider": "storyboard", "prompt": "a fox", "seed": 7}
    assert cache_key("images", fields) == cache_key("images", dict(reversed(fields.items())))
    assert cache_key("images", fields) != cache_key("images", {**fields, "seed": 8})
    digest = content_hash(fields)
    assert cache_key("images", fields) == f"cache/images/{digest[:2]}/{digest}.png"
    assert cache_key("clips", fields).endswith(f"/{digest}.mp4")
