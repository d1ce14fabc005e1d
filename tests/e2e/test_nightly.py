"""The nightly batch DAG on real Airflow: an inbox of 5 specs (2 invalid) → 3 runs; a second night → none."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import six_segment_job
from video_pipeline.storage import Storage
from video_pipeline_airflow.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
NIGHTLY = "video_generation_nightly"


def video_runs(airflow: LocalAirflow) -> list[str]:
    response = airflow.api("GET", "/api/v2/dags/video_generation/dagRuns", params={"limit": 200})
    response.raise_for_status()
    return sorted(
        r["dag_run_id"] for r in response.json()["dag_runs"] if r["dag_run_id"].startswith("nightly__")
    )


def test_nightly_batch(airflow: LocalAirflow, local_storage: Storage) -> None:
    for n in range(1, 4):
        spec = six_segment_job(f"nightly-{n}", approval="none", seed=100 + n)
        spec["segments"] = spec["segments"][:2]
        local_storage.put_bytes(f"inbox/job-{n}.json", json.dumps(spec).encode())
    local_storage.put_bytes("inbox/broken.json", b'{"job_id": "x", ')
    local_storage.put_bytes("inbox/bad-id.json", json.dumps(six_segment_job("../escape")).encode())

    first = airflow.trigger(NIGHTLY, {})
    assert airflow.wait_for_run(NIGHTLY, first, timeout=400) == "success"
    runs = video_runs(airflow)
    assert len(runs) == 3
    assert sorted(local_storage.list("done/")) == ["done/job-1.json", "done/job-2.json", "done/job-3.json"]
    assert sorted(local_storage.list("inbox/rejected/")) == [
        "inbox/rejected/bad-id.json",
        "inbox/rejected/bad-id.json.error.txt",
        "inbox/rejected/broken.json",
        "inbox/rejected/broken.json.error.txt",
    ]
    assert "job_id" in local_storage.get_bytes("inbox/rejected/bad-id.json.error.txt").decode()
    assert not list(local_storage.list("processing/"))
    for n in range(1, 4):
        assert local_storage.exists(f"jobs/nightly-{n}/final.mp4")

    second = airflow.trigger(NIGHTLY, {})
    assert airflow.wait_for_run(NIGHTLY, second, timeout=200) == "success"
    assert video_runs(airflow) == runs  # nothing triggered twice
