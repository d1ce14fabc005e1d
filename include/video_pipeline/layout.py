"""Where things live under a storage root (the storage layout contract in DESIGN.md)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

CacheKind = Literal["images", "clips"]


@dataclass(frozen=True)
class JobLayout:
    job_id: str

    @property
    def root(self) -> str:
        return f"jobs/{self.job_id}"

    def image(self, index: int) -> str:
        return f"{self.root}/images/{index:03d}.png"

    def clip(self, index: int) -> str:
        return f"{self.root}/clips/{index:03d}.mp4"

    def preview(self, name: str) -> str:
        return f"{self.root}/preview/{name}"

    @property
    def final(self) -> str:
        return f"{self.root}/final.mp4"

    @property
    def final_poster(self) -> str:
        return f"{self.root}/final-poster.jpg"

    def final_preview(self, fmt: str) -> str:
        return f"{self.root}/final-preview.{fmt}"

    @property
    def final_subtitles(self) -> str:
        return f"{self.root}/final.srt"

    @property
    def manifest(self) -> str:
        return f"{self.root}/manifest.json"

    @property
    def progress(self) -> str:
        return f"{self.root}/progress.json"

    def progress_run(self, run_id: str) -> str:
        """Where one run's progress milestones live: ``progress/runs/<run>/r<round>/<stage>/…``."""
        return f"{self.root}/progress/runs/{run_folder(run_id)}"

    def progress_done(self, run_id: str, round_: int, stage: str) -> str:
        """The folder of a run's (and redo round's) completion markers for one stage."""
        return f"{self.progress_run(run_id)}/r{round_}/{stage}/done"

    def progress_marker(self, run_id: str, round_: int, stage: str, index: int) -> str:
        return f"{self.progress_done(run_id, round_, stage)}/{index:03d}"

    def progress_event(self, run_id: str, round_: int, stage: str, count: int) -> str:
        return f"{self.progress_run(run_id)}/r{round_}/{stage}/events/{count:05d}.json"


def run_folder(run_id: str) -> str:
    """A run's folder name: readable, and unique per run id whatever characters it holds.

    Run ids hold ``:`` and ``+`` (``manual__2026-11-30T09:00:00+00:00``) and may be anything a user typed, so
    the name keeps a slug of the id for people and a hash of it for uniqueness.
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_id).strip(".-")[:48] or "run"
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{slug}-{digest}"


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines an output."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(kind: CacheKind, fields: dict[str, Any]) -> str:
    digest = content_hash(fields)
    ext = "png" if kind == "images" else "mp4"
    return f"cache/{kind}/{digest[:2]}/{digest}.{ext}"
