"""
### Video generation, approval-gated

Turns a job spec into a finished MP4:

`validate_job` → `narrate_segment` (one mapped task per segment: its narration spoken, the segment fitted
to it) → `generate_image` (one mapped task per segment) → **`images_gate`** →
`animate_segment` (one mapped task per approved image) → **`clips_gate`** → `assemble` → `publish`

Each gate waits (deferred, holding no worker slot) for the first answer from:
the **Required Action** form of the gate task in this UI (Approve / Reject / Redo segments), the REST API,
or the Variable `video_approval__<job_id>__<stage>` (`approve`, `reject`, or
`{"decision": "redo", "segments": [2, 5]}`). Reject skips everything downstream; the manifest says `rejected`.
`approval: none` runs straight through.

Outputs land under the storage root (`video_pipeline_storage_url`): `jobs/<job_id>/narration|images|clips/NNN.*`,
`final.mp4`, `manifest.json`, `progress.json`. `publish` emits an asset event for the final video through the
asset alias `video_pipeline_final_video` (the asset is the video's storage URI; the event's `extra` has the job
and run ids, duration, credits, and the video's and manifest's keys and URIs): schedule a DAG on it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from video_pipeline_airflow import stages
from video_pipeline_airflow.operators.gate import ApprovalGateOperator
from video_pipeline_airflow.operators.mapped_segment import SEGMENT_MAP_INDEX_TEMPLATE
from video_pipeline_airflow.operators.narration import NarrateSegmentOperator
from video_pipeline_airflow.operators.publish import PublishOperator
from video_pipeline_airflow.operators.segment import AnimateSegmentOperator, GenerateImageOperator
from video_pipeline_airflow.params import job_spec_params
from video_pipeline_airflow.settings import CLIP_POOL, IMAGE_POOL, NARRATION_POOL

# Offered in the trigger form as suggestions, never a default: a run's spec is its conf (params.py).
EXAMPLE_JOB = Path(__file__).resolve().parents[1] / "examples" / "jobs" / "demo.json"

SEGMENT_TASK: dict[str, Any] = {
    "map_index_template": SEGMENT_MAP_INDEX_TEMPLATE,
    "retries": 3,
    "retry_delay": timedelta(seconds=10),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=5),
}


@dag(
    dag_id="video_generation",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    params=job_spec_params(EXAMPLE_JOB),
    tags=["video", "approval-gated"],
    default_args={"retries": 1, "retry_delay": timedelta(seconds=15)},
    max_active_tasks=16,
    on_failure_callback=stages.on_run_failure,
)
def video_generation() -> None:
    @task
    def validate_job(**context: Any) -> list[int]:
        return stages.validate_job(context)

    @task(execution_timeout=timedelta(hours=2))  # a hostile clip cannot hold a worker for ever (README)
    def assemble(job: dict[str, Any], segments: list[dict[str, Any]]) -> dict[str, Any]:
        return stages.assemble(job, segments)

    validated = validate_job()
    # validate_job returns the segment numbers (Airflow maps only over a task's return value, and gives every
    # mapped task all of it when the task is not mapped itself) and hands each segment off in storage, where
    # its task reads it (segment_from). Its other parts are XCom keys (stages.VALIDATED_PARTS): the spec, its
    # settings (the spec without its N segments: what each segment's task needs) and the segment count.
    job, settings, total = (validated[part] for part in stages.VALIDATED_PARTS)
    narrated = NarrateSegmentOperator.partial(
        task_id="narrate_segment",
        job=settings,
        total=total,
        segment_from="validate_job",
        pool=NARRATION_POOL,
        **SEGMENT_TASK,
    ).expand(segment=validated)
    # A mapped upstream's output is read item by item: each image task gets its own narrated segment.
    images = GenerateImageOperator.partial(
        task_id="generate_image", job=settings, total=total, pool=IMAGE_POOL, **SEGMENT_TASK
    ).expand(segment=narrated.output)
    # The images gate, like validate_job, returns numbers and hands the approved segments off.
    approved_images = ApprovalGateOperator(
        task_id="images_gate", stage="images", job=job, segments=images.output, hands_off=True
    )
    clips = AnimateSegmentOperator.partial(
        task_id="animate_segment",
        job=settings,
        total=total,
        segment_from="images_gate",
        pool=CLIP_POOL,
        **SEGMENT_TASK,
    ).expand(segment=approved_images.output)
    approved_clips = ApprovalGateOperator(task_id="clips_gate", stage="clips", job=job, segments=clips.output)
    final = assemble(job, approved_clips.output)
    PublishOperator(task_id="publish", job=job, segments=approved_clips.output, final=final)


video_generation()
