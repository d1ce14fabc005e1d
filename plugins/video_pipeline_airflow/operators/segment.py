"""Mapped per-segment operators: one image or one clip per task instance.

Each is a thin adapter: parse the XCom payloads into domain models, call the domain step, record the
progress milestone (exactly once across concurrent tasks and retries), return the updated segment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from airflow.sdk import BaseOperator, Context

from video_pipeline.generation import animate_segment, generate_image
from video_pipeline.models import JobSpec, Stage, VideoSegment, utcnow
from video_pipeline.progress import record_completion
from video_pipeline.providers.base import LocalProvider
from video_pipeline.providers.registry import local_provider
from video_pipeline.storage import Storage
from video_pipeline_airflow.hooks.storage import get_storage

log = logging.getLogger(__name__)

#: Shows each mapped task as ``seg 007 – "a red fox at dawn"`` in the grid.
SEGMENT_MAP_INDEX_TEMPLATE = (
    "seg {{ '%03d' % task.segment['index'] }} – \"{{ task.segment['prompt'] | truncate(40, True, '…', 0) }}\""
)

Step = Callable[[Storage, JobSpec, VideoSegment, LocalProvider], VideoSegment]


class SegmentOperator(BaseOperator):
    template_fields: Sequence[str] = ("job", "segment", "total")
    stage: ClassVar[Stage]
    started_field: ClassVar[str]
    finished_field: ClassVar[str]

    def __init__(self, *, job: Any, segment: Any, total: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.segment = segment
        self.total = total

    def step(self) -> Step:
        raise NotImplementedError

    def execute(self, context: Context) -> dict[str, Any]:
        job = JobSpec.model_validate(self.job)
        segment = VideoSegment.model_validate(self.segment)
        storage = get_storage()
        started = utcnow()
        result = self.step()(storage, job, segment, local_provider(job))
        result = result.model_copy(update={self.started_field: started, self.finished_field: utcnow()})
        cached = result.image_cache_hit if self.stage == "images" else result.clip_cache_hit
        self.log.info(
            "%s: %s done%s", result.label, self.stage, " (cache hit, no provider call)" if cached else ""
        )
        for event in record_completion(storage, job.job_id, self.stage, segment.index, int(self.total)):
            self.log.info("Progress: %s", event.message)
        return result.model_dump(mode="json")


class GenerateImageOperator(SegmentOperator):
    """Generates (or reuses from the cache) one segment's image."""

    stage = "images"
    started_field = "image_started_at"
    finished_field = "image_finished_at"
    ui_color = "#e8f1fb"

    def step(self) -> Step:
        return generate_image


class AnimateSegmentOperator(SegmentOperator):
    """Turns one approved image into a clip; fails clearly if the image object is missing."""

    stage = "clips"
    started_field = "clip_started_at"
    finished_field = "clip_finished_at"
    ui_color = "#fbeee8"

    def step(self) -> Step:
        return animate_segment
