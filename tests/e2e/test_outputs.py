"""What Airflow knows of a finished job, on real Airflow processes: one finished job (S3 over HTTP) gives the
asset event that triggers the example consumer DAG with the event's ``extra``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import DAG_ID, manifest_of, six_segment_job
from video_pipeline.storage import Storage
from video_pipeline_airflow.local import LocalAirflow

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


def test_a_finished_job_reports_its_outputs(airflow: LocalAirflow, s3_storage: Storage) -> None:
    job_id = "e2e-outputs"
    spec = six_segment_job(job_id, approval="none", seed=31)
    spec["segments"] = spec["segments"][:2]
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    manifest = manifest_of(s3_storage, job_id)
    assert manifest.final is not None
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
        "credits_spent": 0.0,
        "credits_spent_job": 0.0,
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
