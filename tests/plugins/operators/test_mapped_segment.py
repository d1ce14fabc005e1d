"""A mapped segment task reads its own segment: the segment itself, or its number handed off by a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG

from video_pipeline.handoff import hand_off
from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.operators.mapped_segment import SEGMENT_MAP_INDEX_TEMPLATE
from video_pipeline_airflow.operators.narration import NarrateSegmentOperator
from video_pipeline_airflow.operators.segment import GenerateImageOperator

from .conftest import RUN_ID

SPEC = JobSpec.model_validate(
    {
        "job_id": "mapped",
        "title": "Mapped",
        "segments": [
            {
                "prompt": "A lantern over dark water, seen from a boat drifting under the bridge",
                "duration_s": 2,
            },
            {"prompt": "Mist on the pines", "duration_s": 2},
        ],
    }
)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    storage = LocalStorage(tmp_path)
    hand_off(storage, SPEC.job_id, RUN_ID, "validate_job", segments_for(SPEC))
    return storage


def in_dag(cls: type[GenerateImageOperator | NarrateSegmentOperator], segment: Any, **kwargs: Any) -> Any:
    with DAG("mapped_segment", schedule=None):
        return cls(
            task_id="segment_task",
            job=SPEC.settings().model_dump(mode="json"),
            segment=segment,
            total=2,
            map_index_template=SEGMENT_MAP_INDEX_TEMPLATE,
            **kwargs,
        )


def label(op: Any) -> str:
    """The grid label as the task runner renders it before ``execute``: the DAG's (sandboxed) Jinja."""
    template = op.dag.get_template_env().from_string(op.map_index_template)
    return str(template.render({"task": op, "run_id": RUN_ID}))


@pytest.mark.parametrize("cls", [GenerateImageOperator, NarrateSegmentOperator])
def test_a_handed_off_number_is_read_once_labelled_and_made(
    storage: LocalStorage,
    cls: type[GenerateImageOperator | NarrateSegmentOperator],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op = in_dag(cls, 1, segment_from="validate_job")
    reads: list[str] = []
    get_bytes = LocalStorage.get_bytes

    def counted(self: LocalStorage, key: str) -> bytes:
        reads.append(key)
        return get_bytes(self, key)

    monkeypatch.setattr(LocalStorage, "get_bytes", counted)
    assert label(op) == 'seg 001 – "A lantern over dark water, seen from a …"'
    made = VideoSegment.model_validate(op.execute({"run_id": RUN_ID}))
    assert made.index == 1 and made.prompt == SPEC.segments[0].prompt  # type: ignore[index]
    assert len([key for key in reads if "/handoff/" in key]) == 1  # label and execute share one read


def test_the_segment_itself_needs_no_storage(storage: LocalStorage) -> None:
    segment = segments_for(SPEC)[1]
    op = in_dag(GenerateImageOperator, segment.model_dump(mode="json"))
    assert label(op) == 'seg 002 – "Mist on the pines"'
    assert op.read_segment(None) == segment


def test_a_segment_list_from_before_the_hand_off_still_works(storage: LocalStorage) -> None:
    """A run that started before the change resumes with the old item (the whole segment) in its place."""
    segment = segments_for(SPEC)[1]
    op = in_dag(GenerateImageOperator, segment.model_dump(mode="json"), segment_from="validate_job")
    assert op.read_segment(RUN_ID) == segment


def test_a_number_without_its_run_cannot_be_found(storage: LocalStorage) -> None:
    with pytest.raises(ValueError, match="handed off by validate_job"):
        in_dag(GenerateImageOperator, 2, segment_from="validate_job").read_segment(None)
