"""Segments handed from a sequential step to a mapped stage: one storage object per segment.

Airflow resolves ``expand`` over an *unmapped* task's return value in full in every mapped task instance (a
mapped upstream's output is read item by item). A step that returned its N segments made each of the N tasks
after it read all N: O(N) per task, O(N²) per run. So such a step (``validate_job``, a gate whose stage is
mapped) returns only the segment numbers (a list of 1000 numbers is ~4 KB of XCom) and writes each segment
under ``JobLayout.handoff(run, step, number)``; each mapped task reads its own. The objects are the run's
(a re-run writes its own); a retried step writes them again, whole (each write is atomic).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from video_pipeline.layout import JobLayout
from video_pipeline.models import VideoSegment
from video_pipeline.storage import Storage

#: Writes at once: on S3 each is a PUT of a few tens of milliseconds, and a step hands off up to 1000.
WRITERS = 8


def hand_off(
    storage: Storage, job_id: str, run_id: str, step: str, segments: Sequence[VideoSegment]
) -> list[int]:
    """Write each segment for the mapped tasks after ``step`` to read; return their numbers (what to map
    over), in order."""
    layout = JobLayout(job_id)

    def write(segment: VideoSegment) -> None:
        key = layout.handoff(run_id, step, segment.index)
        storage.put_bytes(key, segment.model_dump_json().encode(), "application/json")

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        list(pool.map(write, segments))  # list(): raise the first failure here
    return [segment.index for segment in segments]


def handed_off(storage: Storage, job_id: str, run_id: str, step: str, index: int) -> VideoSegment:
    """Segment ``index`` as ``step`` handed it off in run ``run_id``."""
    key = JobLayout(job_id).handoff(run_id, step, index)
    return VideoSegment.model_validate_json(storage.get_bytes(key))
