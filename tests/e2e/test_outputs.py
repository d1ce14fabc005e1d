"""What Airflow knows of a finished job, on real Airflow processes: one finished job (S3 over HTTP) gives the
asset event that triggers the example consumer DAG with the event's ``extra``, the OpenLineage events of the
run (read from the file transport) and the metrics (seen by a StatsD listener on loopback)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import (
    DAG_ID,
    OPENLINEAGE_FILE,
    OPENLINEAGE_NAMESPACE,
    RUNWAY_CANARY_KEY,
    decide_by_variable,
    manifest_of,
    six_segment_job,
)
from video_pipeline.storage import Storage
from video_pipeline_dev.local import LocalAirflow
from video_pipeline_dev.statsd_listener import StatsdListener

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
CATALOGUE = "video_catalogue"


def asset_events(airflow: LocalAirflow, run_id: str) -> list[dict[str, Any]]:
    response = airflow.api(
        "GET", "/api/v2/assets/events", params={"source_dag_id": DAG_ID, "source_run_id": run_id}
    )
    response.raise_for_status()
    return list(response.json()["asset_events"])


def catalogue_entries(airflow: LocalAirflow, source_run_id: str) -> list[dict[str, Any]]:
    """The entries the example DAG catalogued for ``source_run_id`` (from its task's return value)."""
    response = airflow.api("GET", f"/api/v2/dags/{CATALOGUE}/dagRuns", params={"limit": 100})
    response.raise_for_status()
    found = []
    for run in response.json()["dag_runs"]:
        if run["state"] != "success":
            continue
        xcom = airflow.api(
            "GET",
            f"/api/v2/dags/{CATALOGUE}/dagRuns/{run['dag_run_id']}/taskInstances/catalogue/xcomEntries/return_value",
        )
        if xcom.status_code == 200:
            found += [e for e in xcom.json()["value"] if e.get("run_id") == source_run_id]
    return found


def lineage_events(airflow: LocalAirflow, job_name: str) -> list[dict[str, Any]]:
    path = airflow.home / OPENLINEAGE_FILE
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [e for e in events if e["job"]["name"] == job_name]


def publish_lineage(airflow: LocalAirflow, job_id: str) -> dict[str, Any] | None:
    """The COMPLETE event of ``publish`` for ``job_id`` (its facet names the job), once written."""
    for event in lineage_events(airflow, f"{DAG_ID}.publish"):
        facet = event["run"]["facets"].get("videoPipeline") or {}
        if event["eventType"] == "COMPLETE" and facet.get("jobId") == job_id:
            return event
    return None


def redo_recorded(storage: Storage, job_id: str) -> bool:
    return any(d.decision == "redo" for d in manifest_of(storage, job_id).decisions)


def test_a_finished_job_reports_its_outputs(
    airflow: LocalAirflow, s3_storage: Storage, statsd: StatsdListener
) -> None:
    """One job, made to touch every output: storyboard images with a redo at the images gate, clips on the
    fake paid provider with one clip failing once (a provider error, then a resubmission)."""
    job_id = "e2e-outputs"
    spec = six_segment_job(
        job_id, approval="images", seed=31, clips={"provider": "runway"}, budget_credits=200
    )
    spec["segments"] = spec["segments"][:2]
    spec["segments"][1]["motion_prompt"] = "slow drift [fail-once:INTERNAL.BAD_OUTPUT.CODE01]"
    run_id = airflow.trigger(DAG_ID, spec)
    decide_by_variable(
        airflow, run_id, job_id, "images", '{"decision": "redo", "segments": [1], "by": "e2e"}'
    )
    airflow.wait_until(lambda: redo_recorded(s3_storage, job_id), timeout=120, what="the redo decision")
    decide_by_variable(airflow, run_id, job_id, "images", '{"decision": "approve", "by": "e2e"}')
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"
    manifest = manifest_of(s3_storage, job_id)
    assert manifest.final is not None
    record = manifest.run_record(run_id)
    assert record is not None and record.credits_spent >= 20  # two 2-s clips at 5 credits/s, one paid twice
    final_uri = f"{s3_storage.url}/jobs/{job_id}/final.mp4"

    # 1. The asset event: one, for the job's own asset, through the alias, carrying the published record.
    (event,) = asset_events(airflow, run_id)
    assert (event["name"], event["uri"]) == (final_uri, final_uri)
    assert event["source_task_id"] == "publish"
    expected = {
        "job_id": job_id,
        "run_id": run_id,
        "title": spec["title"],
        "duration_s": round(manifest.final.duration_s, 3),
        "width": 1280,
        "height": 720,
        "credits_spent": record.credits_spent,
        "credits_spent_job": manifest.credits_spent,
        "final_key": f"jobs/{job_id}/final.mp4",
        "final_uri": final_uri,
        "manifest_key": f"jobs/{job_id}/manifest.json",
        "manifest_uri": f"{s3_storage.url}/jobs/{job_id}/manifest.json",
        "storage_url": s3_storage.url,
    }
    assert event["extra"] == expected
    assert "X-Amz-Signature" not in str(event)  # a storage URI, never a presigned link

    # ... and, through the alias, it triggered the example consumer, which read the same extra.
    (entry,) = airflow.wait_until(
        lambda: catalogue_entries(airflow, run_id), timeout=180, what="the catalogue run for the job"
    )
    assert entry == {"asset": final_uri, "source": f"{DAG_ID}/{run_id}", **expected}
    (event,) = asset_events(airflow, run_id)
    assert [run["dag_id"] for run in event["created_dagruns"]] == [CATALOGUE]

    # 2. Lineage: publish's COMPLETE event holds the run's inputs, outputs and the videoPipeline facet.
    lineage = airflow.wait_until(
        lambda: publish_lineage(airflow, job_id), timeout=60, what="publish's OpenLineage event"
    )
    assert lineage["job"]["namespace"] == OPENLINEAGE_NAMESPACE
    inputs = {(d["namespace"], d["name"]) for d in lineage["inputs"]}
    assert inputs == {
        ("video-pipeline", f"jobs/{job_id}/spec"),
        ("video-provider://storyboard", "card"),
        ("video-provider://runway", "gen4_turbo"),
    }
    bucket, prefix = s3_storage.url.removeprefix("s3://").split("/", 1)
    outputs = {(d["namespace"], d["name"]) for d in lineage["outputs"]}
    final = manifest.final
    stored = [
        f"jobs/{job_id}/{kind}/00{n}.{ext}"
        for kind, ext in (("images", "png"), ("clips", "mp4"))
        for n in (1, 2)
    ]
    beside = [key for key in (final.poster_key, final.preview_key, final.subtitles_key) if key]
    assert final.poster_key in beside  # a poster by default: the set below is more than images and clips
    assert outputs == {
        (f"s3://{bucket}", f"{prefix}/{key}")
        for key in [*stored, final.key, *beside, f"jobs/{job_id}/manifest.json"]
    }
    facet = lineage["run"]["facets"]["videoPipeline"]
    assert facet["credits"]["spent"] == record.credits_spent
    assert facet["credits"]["spentByStage"] == {
        "narration": 0.0,
        "images": 0.0,
        "clips": record.credits_spent,
    }
    assert [(d["stage"], d["decision"], d["via"], d["by"]) for d in facet["decisions"]] == [
        ("images", "redo", "variable", "e2e"),
        ("images", "approve", "variable", "e2e"),
        ("clips", "approve", "auto", "approval mode"),
    ]
    # every task of the run reported its start and end (the provider's own events, no datasets)
    validate = lineage_events(airflow, f"{DAG_ID}.validate_job")
    assert {"START", "COMPLETE"} <= {e["eventType"] for e in validate}
    # lineage leaves the deployment: no provider key and no presigned link in it
    events = (airflow.home / OPENLINEAGE_FILE).read_text()
    assert RUNWAY_CANARY_KEY not in events and "X-Amz-Signature" not in events

    # 3. Metrics, through Airflow's StatsD client to the session's listener (other tests' runs add to the
    # counters, so each is checked for this run's share).
    m = "airflow.video_pipeline"
    assert (record.credits_spent, "c") in statsd.wait_for(f"{m}.credits_spent")
    assert (record.credits_spent, "c") in statsd.metrics(f"{m}.credits_spent.clips")
    assert statsd.metrics(f"{m}.runs.succeeded")
    assert len(statsd.metrics(f"{m}.segments_generated.images")) >= 2
    assert len(statsd.metrics(f"{m}.segments_generated.clips")) >= 2
    assert (1.0, "c") in statsd.metrics(f"{m}.segments_redone.images")
    waits = statsd.metrics(f"{m}.gate_wait.images")
    assert len(waits) >= 2 and all(kind == "ms" for _, kind in waits)
    assert max(value for value, _ in waits) >= 3000  # the test answers 3 s after the gate opened
    for call in ("submit_clip", "status", "outputs", "download"):  # status: from the triggerer's trigger
        assert statsd.metrics(f"{m}.provider.runway.{call}"), call
    assert statsd.metrics(f"{m}.provider_errors.runway.reseed")  # the clip that failed once
