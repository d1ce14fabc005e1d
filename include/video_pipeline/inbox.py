"""The nightly inbox: job specs dropped under ``inbox/`` move through ``processing/`` to ``done/`` or ``failed/``.

Invalid specs move to ``inbox/rejected/`` with an ``.error.txt`` beside them. Moves are copy-then-delete, so a
crash between the two leaves a duplicate, never a loss. Each spec's run id is derived from its content, so
triggering the same spec twice is detectable (Airflow refuses a second run with the same id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from video_pipeline.layout import content_hash
from video_pipeline.models import JobSpec, describe_validation_error
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import Storage

INBOX = "inbox/"
REJECTED = "inbox/rejected/"
PROCESSING = "processing/"
DONE = "done/"
FAILED = "failed/"
Outcome = Literal["done", "failed"]


@dataclass(frozen=True)
class AcceptedSpec:
    name: str  # file name, e.g. fox.json
    run_id: str
    conf: dict[str, object]


@dataclass(frozen=True)
class RejectedSpec:
    name: str
    error: str


def pending_specs(storage: Storage) -> list[str]:
    """File names directly under ``inbox/`` (not in its subfolders)."""
    return sorted(
        k[len(INBOX) :] for k in storage.list(INBOX) if k.endswith(".json") and "/" not in k[len(INBOX) :]
    )


def run_id_for(spec: dict[str, object]) -> str:
    return f"nightly__{spec.get('job_id')}__{content_hash(dict(spec))[:12]}"


def validate_spec(raw: bytes) -> dict[str, object]:
    """Parse and fully validate a spec (including segmentation); raise ValueError naming the problem."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None
    segments_for(job)
    return dict(data)


def move(storage: Storage, src: str, dst: str) -> None:
    storage.copy(src, dst)
    storage.delete(src)


def intake(storage: Storage) -> tuple[list[AcceptedSpec], list[RejectedSpec]]:
    """Validate every pending spec: valid ones move to ``processing/``, invalid ones to ``inbox/rejected/``."""
    accepted: list[AcceptedSpec] = []
    rejected: list[RejectedSpec] = []
    for name in pending_specs(storage):
        raw = storage.get_bytes(INBOX + name)
        try:
            conf = validate_spec(raw)
        except ValueError as exc:
            storage.put_bytes(f"{REJECTED}{name}.error.txt", f"{exc}\n".encode(), "text/plain")
            move(storage, INBOX + name, REJECTED + name)
            rejected.append(RejectedSpec(name, str(exc)))
            continue
        move(storage, INBOX + name, PROCESSING + name)
        accepted.append(AcceptedSpec(name, run_id_for(conf), conf))
    return accepted, rejected


def settle(storage: Storage, name: str, outcome: Outcome) -> str:
    """Move a processed spec to ``done/`` or ``failed/``; returns its new key."""
    target = (DONE if outcome == "done" else FAILED) + name
    if storage.exists(PROCESSING + name):
        move(storage, PROCESSING + name, target)
    return target
