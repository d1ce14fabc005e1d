"""Where things live under a storage root (the storage layout contract in DESIGN.md)."""

from __future__ import annotations

import hashlib
import json
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

    def progress_marker(self, stage: str, index: int) -> str:
        return f"{self.root}/progress/{stage}/done/{index:03d}"

    def progress_event(self, stage: str, count: int) -> str:
        return f"{self.root}/progress/{stage}/events/{count:05d}.json"


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines an output."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(kind: CacheKind, fields: dict[str, Any]) -> str:
    digest = content_hash(fields)
    ext = "png" if kind == "images" else "mp4"
    return f"cache/{kind}/{digest[:2]}/{digest}.{ext}"
