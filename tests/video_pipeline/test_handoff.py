from __future__ import annotations

import pytest

from video_pipeline.handoff import hand_off, handed_off
from video_pipeline.models import JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import ObjectNotFound, Storage

RUN = "manual__2026-11-30T09:00:00+00:00"


def job(n: int) -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "handoff",
            "title": "Hand-off",
            "segments": [{"prompt": f"Scene {i}", "duration_s": 2} for i in range(1, n + 1)],
        }
    )


def test_the_step_returns_the_numbers_and_each_task_reads_its_own_segment(storage: Storage) -> None:
    segments = segments_for(job(30))
    assert hand_off(storage, "handoff", RUN, "validate_job", segments) == list(range(1, 31))
    for segment in segments:
        assert handed_off(storage, "handoff", RUN, "validate_job", segment.index) == segment


def test_hand_offs_are_the_runs_and_the_steps_own(storage: Storage) -> None:
    first, second = segments_for(job(2))
    hand_off(storage, "handoff", RUN, "validate_job", [first, second])
    changed = second.model_copy(update={"prompt": "Scene 2, redone"})
    hand_off(storage, "handoff", RUN, "images_gate", [first, changed])
    hand_off(storage, "handoff", "another-run", "images_gate", [first])
    assert handed_off(storage, "handoff", RUN, "validate_job", 2).prompt == "Scene 2"
    assert handed_off(storage, "handoff", RUN, "images_gate", 2).prompt == "Scene 2, redone"
    with pytest.raises(ObjectNotFound):
        handed_off(storage, "handoff", "another-run", "images_gate", 2)


def test_a_retried_step_hands_off_again_whole(storage: Storage) -> None:
    segments = segments_for(job(3))
    hand_off(storage, "handoff", RUN, "images_gate", segments)
    picked = [s.model_copy(update={"seed": s.seed + 1}) for s in segments]
    hand_off(storage, "handoff", RUN, "images_gate", picked)
    assert [handed_off(storage, "handoff", RUN, "images_gate", s.index) for s in segments] == picked
