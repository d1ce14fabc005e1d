"""``publish`` completes the job and emits one asset event for its final video, through the alias, with the
published record as the event's ``extra``."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from tests.plugins.operators.conftest import RUN_ID
from video_pipeline.claims import claim_job, current_claim
from video_pipeline.manifest import begin_run, load_manifest
from video_pipeline.models import FinalVideo, JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.assets import FINAL_VIDEO_ALIAS, FINAL_VIDEO_ALIAS_NAME
from video_pipeline_airflow.operators.publish import PublishOperator

JOB = JobSpec.model_validate(
    {"job_id": "pub", "title": "Published", "segments": [{"prompt": "A fox"}, {"prompt": "A hare"}]}
)


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    return LocalStorage(tmp_path)


def test_publish_emits_the_final_videos_asset_event_through_the_alias(storage: LocalStorage) -> None:
    segments = segments_for(JOB)
    claim_job(storage, JOB.job_id, RUN_ID, "video_generation", lambda dag_id, run_id: True)
    begin_run(storage, JOB, RUN_ID, segments, credits_estimate=0.0)
    final = FinalVideo(
        key="jobs/pub/final.mp4", duration_s=10.0, width=1280, height=720, codec="h264", size_bytes=1
    )
    operator = PublishOperator(
        task_id="publish",
        job=JOB.model_dump(mode="json"),
        segments=[s.model_dump(mode="json") for s in segments],
        final=final.model_dump(mode="json"),
    )
    assert operator.outlets == [FINAL_VIDEO_ALIAS]
    events = OutletEventAccessors()

    returned = operator.execute({"outlet_events": events, "run_id": RUN_ID})

    (event,) = events[AssetAlias(FINAL_VIDEO_ALIAS_NAME)].asset_alias_events
    final_uri = f"{storage.url}/jobs/pub/final.mp4"
    assert (event.dest_asset_key.name, event.dest_asset_key.uri) == (final_uri, final_uri)
    assert event.extra == returned
    assert returned["job_id"] == "pub" and returned["run_id"] == RUN_ID
    assert returned["duration_s"] == 10.0 and returned["credits_spent"] == 0.0
    assert returned["final_key"] == "jobs/pub/final.mp4" and returned["final_uri"] == final_uri
    assert returned["manifest_key"] == "jobs/pub/manifest.json"
    manifest = load_manifest(storage, "pub")
    assert manifest is not None and manifest.status == "succeeded"
    assert current_claim(storage, "pub") is None  # released for the next run

    # What the OpenLineage provider then asks the operator for (in the same task process).
    lineage = operator.get_openlineage_facets_on_complete(SimpleNamespace(run_id=RUN_ID))
    spec = lineage.inputs[0]
    assert (spec.namespace, spec.name) == ("video-pipeline", "jobs/pub/spec")
    assert ("file", f"{storage.root}/jobs/pub/final.mp4") in [(d.namespace, d.name) for d in lineage.outputs]
    assert lineage.run_facets["videoPipeline"].jobId == "pub"
