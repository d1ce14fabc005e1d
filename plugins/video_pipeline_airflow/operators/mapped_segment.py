"""What every per-segment operator shares: the job's settings, its one segment, the segment count, and how the
segment is obtained in O(1) whatever the number of segments.

A mapped task gets either the segment itself (mapped over a *mapped* upstream's output, which Airflow reads
item by item) or, after a sequential step (``validate_job``, the images gate), the segment's number: Airflow
would give every task the step's whole return value, so the step returns numbers and hands each segment off in
storage (:mod:`video_pipeline.handoff`), and the task reads its own there, once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from video_pipeline.handoff import handed_off
from video_pipeline.models import VideoSegment
from video_pipeline_airflow.hooks.storage import get_storage

#: Shows each mapped task as ``seg 007 – "a red fox at dawn"`` in the grid. Rendered before the task runs
#: (Airflow sends the label at start), from the segment the task reads.
SEGMENT_MAP_INDEX_TEMPLATE = "{{ task.segment_label(run_id) }}"


class MappedSegmentOperator(BaseOperator):
    """Base of the operators that make one segment's output per mapped task instance.

    :param job: the job's settings (``JobSettings`` as JSON; templated).
    :param segment: the segment (``VideoSegment`` as JSON), or its number when ``segment_from`` handed it off
        (templated, mapped over).
    :param total: the number of segments (progress milestones; templated).
    :param segment_from: the task id of the sequential step that handed the segments off
        (:func:`video_pipeline.handoff.hand_off`), when ``segment`` is a number; ``None`` when it is the
        segment itself.
    :param conn_ids: connection id per provider name, where not the provider's own (``<provider>_default``).
    """

    template_fields: Sequence[str] = ("job", "segment", "total")

    def __init__(
        self,
        *,
        job: Any,
        segment: Any,
        total: Any,
        segment_from: str | None = None,
        conn_ids: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job = job
        self.segment = segment
        self.total = total
        self.segment_from = segment_from
        self.conn_ids = dict(conn_ids or {})
        self._segment: VideoSegment | None = None

    def read_segment(self, run_id: str | None) -> VideoSegment:
        """This task's segment (read once per task process); ``run_id`` finds a handed-off one."""
        if self._segment is None:
            # A dict is the segment itself (also a task of a run that started before segments were handed
            # off by number, resumed after an upgrade).
            if isinstance(self.segment, dict) or self.segment_from is None:
                self._segment = VideoSegment.model_validate(self.segment)
            elif run_id is None:
                raise ValueError(
                    f"segment {self.segment} was handed off by {self.segment_from}: in which run?"
                )
            else:
                job_id, index = str(self.job["job_id"]), int(self.segment)
                self._segment = handed_off(get_storage(), job_id, run_id, self.segment_from, index)
        return self._segment

    def segment_label(self, run_id: str | None) -> str:
        """The task's label in the grid (``SEGMENT_MAP_INDEX_TEMPLATE``)."""
        return self.read_segment(run_id).label
