"""Where things live under a storage root (the storage layout contract in docs/DESIGN.md)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

CacheKind = Literal["narration", "images", "clips"]
#: What each kind of output is stored as (narration: the voice's own format, named by the provider's output).
SUFFIXES: dict[str, str] = {"images": ".png", "clips": ".mp4"}

#: One marker per job with provider tasks whose outcome is not settled yet (``in-flight/<job_id>``): the
#: salvage sweep reads this prefix instead of listing every object of every job.
IN_FLIGHT_PREFIX = "in-flight/"


def run_key(run_id: str) -> str:
    """An Airflow run id as one storage key part: readable, and unique even when sanitising folds characters
    (run ids may hold ``:``, ``+`` or spaces)."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)[:80].strip(".") or "run"
    return f"{readable}-{hashlib.sha256(run_id.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"


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

    def take_key(self, kind: Literal["images", "clips"], index: int, take: int) -> str:
        """Where take ``take`` (1-based) of a segment's image or clip lives: take 1 at the stage's own key
        (``images/NNN.png``: a one-take job is laid out as before takes existed), take t at ``NNN.t<t>.png``."""
        if take < 1:
            raise ValueError(f"take numbers start at 1, got {take}")
        if take == 1:
            return self.image(index) if kind == "images" else self.clip(index)
        return f"{self.root}/{kind}/{index:03d}.t{take}{SUFFIXES[kind]}"

    def narration(self, index: int, suffix: str) -> str:
        """The segment's spoken narration, in the voice's own audio format (``suffix``: ``.wav``, ``.mp3``)."""
        return f"{self.root}/narration/{index:03d}{suffix}"

    def narration_timing(self, index: int) -> str:
        """When each word of the segment's narration is spoken (JSON)."""
        return f"{self.root}/narration/{index:03d}.json"

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
        return f"{self.root}/progress/runs/{run_key(run_id)}"

    def progress_stage(self, run_id: str, round_: int, stage: str) -> str:
        """The folder of a run's (and redo round's) progress for one stage."""
        return f"{self.progress_run(run_id)}/r{round_}/{stage}"

    def progress_counted(self, run_id: str, round_: int, stage: str, index: int) -> str:
        """Created exclusively when segment ``index`` is first counted; then holds its completion number."""
        return f"{self.progress_stage(run_id, round_, stage)}/counted/{index:03d}.json"

    def progress_ticket(self, run_id: str, round_: int, stage: str, count: int) -> str:
        """Completion number ``count`` (1, 2, …), created exclusively by the segment it counts (it holds the
        segment's number)."""
        return f"{self.progress_stage(run_id, round_, stage)}/tickets/{count:05d}"

    def progress_event(self, run_id: str, round_: int, stage: str, count: int) -> str:
        return f"{self.progress_stage(run_id, round_, stage)}/events/{count:05d}.json"

    def gate_reminder(self, run_id: str, stage: str, opened_at: str, name: str) -> str:
        """Created exclusively by whoever sends reminder ``name`` of one opening of a gate (``opened_at``: its
        time, as ``reminders.opening_stamp`` writes it), so it goes out once across triggerer restarts."""
        return f"{self.root}/gate-reminders/{run_key(run_id)}/{stage}/{opened_at}/{name}"

    # -- paid work: the run's claim, provider-task records, the spend ledger, stop markers -------------------

    @property
    def claim(self) -> str:
        """Held by the one active run of the job (created exclusively)."""
        return f"{self.root}/claim.json"

    def claim_takeover(self, stale_run_id: str) -> str:
        """Created exclusively by the one run that takes the claim over from a run that ended without
        releasing it."""
        return f"{self.root}/claim-takeovers/{run_key(stale_run_id)}.json"

    @property
    def provider_tasks(self) -> str:
        return f"{self.root}/provider-tasks/"

    def provider_task(self, kind: CacheKind, digest: str) -> str:
        return f"{self.provider_tasks}{kind}/{digest}.json"

    def provider_task_ambiguous(self, record_id: str) -> str:
        """Written when a ``submitting`` record left by a dead attempt was reported as an ambiguous submission:
        the next attempt (a person cleared the task or re-ran the job, having been told) may replace it."""
        return f"{self.root}/provider-task-ambiguous/{record_id}"

    def provider_task_takeover(self, record_id: str) -> str:
        """Created exclusively by the one attempt that replaces the provider-task record ``record_id``."""
        return f"{self.root}/provider-task-takeovers/{record_id}"

    def reseed(self, kind: CacheKind, digest: str) -> str:
        return f"{self.root}/reseed/{kind}/{digest}.txt"

    @property
    def spend(self) -> str:
        return f"{self.root}/spend/"

    def spend_entry(self, seq: int) -> str:
        return f"{self.spend}{seq:08d}.json"

    @property
    def stopped(self) -> str:
        """The whole job submits nothing more (e.g. the provider account ran out of credits)."""
        return f"{self.root}/STOPPED"

    def handoff(self, run_id: str, step: str, index: int) -> str:
        """Segment ``index`` as the sequential step ``step`` (a task id) handed it to the mapped stage after it
        (``video_pipeline.handoff``)."""
        return f"{self.root}/runs/{run_key(run_id)}/handoff/{step}/{index:03d}.json"

    def run_stopped(self, run_id: str) -> str:
        """One run of the job submits nothing more (it was stopped, rejected or failed)."""
        return f"{self.root}/runs/{run_key(run_id)}/STOPPED"

    @property
    def in_flight_marker(self) -> str:
        return f"{IN_FLIGHT_PREFIX}{self.job_id}"


def content_hash(fields: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of everything that determines an output."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def cache_key(kind: CacheKind, fields: dict[str, Any], suffix: str | None = None) -> str:
    """The cache object of an output (``suffix``: for outputs whose format the provider decides)."""
    digest = content_hash(fields)
    return f"cache/{kind}/{digest[:2]}/{digest}{suffix or SUFFIXES[kind]}"
