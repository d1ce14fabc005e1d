"""A run's provenance as OpenLineage: datasets with their version and description, and the ``videoPipeline``
run facet, written by OpenLineage's own client through its file transport and read back."""

from __future__ import annotations

import json
from pathlib import Path

from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
from openlineage.client.transport.file import FileConfig, FileTransport

from video_pipeline.provenance import DatasetRef, Provenance
from video_pipeline_airflow.lineage import FACET_NAME, FACET_SCHEMA, operator_lineage

FACET = {
    "jobId": "fox",
    "segments": 2,
    "credits": {"estimate": 60.0, "spent": 25.0, "spentByStage": {"images": 0.0, "clips": 25.0}},
    "decisions": [{"stage": "images", "decision": "approve", "via": "ui", "by": "ana"}],
}


def test_a_provenance_becomes_datasets_and_the_run_facet_in_an_openlineage_event(tmp_path: Path) -> None:
    provenance = Provenance(
        inputs=[DatasetRef("video-pipeline", "jobs/fox/spec", "0123456789abcdef", "job spec: Fox")],
        outputs=[DatasetRef("s3://bucket", "pipeline/jobs/fox/final.mp4", description="final video")],
        facet=FACET,
    )
    lineage = operator_lineage(provenance)
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-30T09:00:00+00:00",
        run=Run(runId="0191d3a4-7c2e-7b3a-9f00-000000000001", facets=lineage.run_facets),
        job=Job(namespace="video-tests", name="video_generation.publish"),
        inputs=lineage.inputs,
        outputs=lineage.outputs,
    )
    log = tmp_path / "openlineage.jsonl"
    OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(log), append=True))).emit(event)

    (line,) = log.read_text().splitlines()
    emitted = json.loads(line)
    (spec,) = emitted["inputs"]
    assert (spec["namespace"], spec["name"]) == ("video-pipeline", "jobs/fox/spec")
    assert spec["facets"]["version"]["datasetVersion"] == "0123456789abcdef"
    assert spec["facets"]["documentation"]["description"] == "job spec: Fox"
    (final,) = emitted["outputs"]
    assert (final["namespace"], final["name"]) == ("s3://bucket", "pipeline/jobs/fox/final.mp4")
    assert "version" not in final["facets"]
    facet = emitted["run"]["facets"][FACET_NAME]
    assert facet["_schemaURL"] == FACET_SCHEMA
    assert {key: facet[key] for key in FACET} == FACET
