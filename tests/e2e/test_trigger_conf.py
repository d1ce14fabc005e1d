"""A run's spec is exactly its trigger conf, on real Airflow through REST (one Airflow for every case).

The audit's three findings, each at the REST boundary: ``examples/jobs/script.json`` as a conf was refused
(the demo's segments were merged in), a conf without ``job_id`` ran as the demo, a conf without ``seed`` got
the demo's seed 7. Plus what the trigger form loads, and the nightly-run policy set by a Variable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import DAG_ID, decide_by_variable, manifest_of
from video_pipeline.models import JobSpec
from video_pipeline.storage import Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
SEGMENTS = [
    {"prompt": "A lantern over dark water", "duration_s": 2},
    {"prompt": "Mist on the pines", "duration_s": 2},
]


def post_run(airflow: LocalAirflow, conf: dict[str, Any], run_id: str | None = None) -> Any:
    body: dict[str, Any] = {"logical_date": None, "conf": conf}
    if run_id:
        body["dag_run_id"] = run_id
    return airflow.api("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json=body)


def validate_job_log(airflow: LocalAirflow, run_id: str) -> str:
    folder = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=validate_job"
    return "".join(p.read_text() for p in folder.rglob("*.log"))


def test_the_conf_is_the_spec(airflow: LocalAirflow, local_storage: Storage) -> None:
    # What the trigger form loads: no value for the required fields, the spec's own defaults, the demo offered.
    details = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/details")
    assert details.status_code == 200, details.text
    params = details.json()["params"]
    assert params["job_id"]["value"] is None and params["title"]["value"] is None
    assert params["seed"]["value"] == 0 and params["segments"]["value"] is None
    assert params["job_id"]["schema"]["examples"] == ["demo"]

    # A conf without a required field is refused before a run exists, the field named.
    for missing in ("job_id", "title"):
        conf = {"job_id": "no-field", "title": "Missing", "segments": SEGMENTS}
        del conf[missing]
        response = post_run(airflow, conf)
        assert response.status_code == 400, response.text
        assert f"param {missing}" in response.text, response.text

    # examples/jobs/script.json exactly as the README triggers it: past validate_job, the script job's own spec.
    script = json.loads((EXAMPLES / "script.json").read_text())
    script_run = airflow.trigger(DAG_ID, script)
    # A conf without seed, with the optional fields the form sends as null when left empty.
    no_seed = {"job_id": "no-seed", "title": "No seed", "segments": SEGMENTS, "approval": "none"}
    no_seed_run = airflow.trigger(DAG_ID, {**no_seed, "script": None, "budget_credits": None})

    assert airflow.wait_for_run(DAG_ID, no_seed_run, timeout=300) == "success"
    manifest = manifest_of(local_storage, "no-seed")
    assert manifest.job == JobSpec.model_validate(no_seed) and manifest.job.seed == 0  # not the demo's 7
    assert [s.seed for s in manifest.segments] == [1, 2]

    airflow.wait_for_task_state(DAG_ID, script_run, "validate_job", {"success"}, timeout=120)
    manifest = manifest_of(local_storage, script["job_id"])
    assert manifest.job == JobSpec.model_validate(script) and manifest.job.segments is None
    assert len(manifest.segments) > 1 and " ".join(s.prompt for s in manifest.segments) == script["script"]
    decide_by_variable(airflow, script_run, script["job_id"], "images", "reject")  # done with it
    airflow.wait_for_run(DAG_ID, script_run, timeout=120)


def test_nightly_runs_keep_the_gates_the_deployment_requires(
    airflow: LocalAirflow, local_storage: Storage
) -> None:
    conf = {"job_id": "nightly-policy", "title": "Nightly", "segments": SEGMENTS, "approval": "none"}
    airflow.set_variable("video_pipeline_nightly_approval", "both")
    try:
        response = post_run(airflow, conf, run_id="nightly__nightly-policy__0123456789ab")
        assert response.status_code == 200, response.text
        run_id = response.json()["dag_run_id"]
        assert airflow.wait_for_run(DAG_ID, run_id, timeout=180) == "failed"
    finally:
        airflow.api("DELETE", "/api/v2/variables/video_pipeline_nightly_approval")
    assert airflow.task_state(DAG_ID, run_id, "generate_image") in ("upstream_failed", None)
    log = validate_job_log(airflow, run_id)
    assert "approval: nightly runs must wait for a reviewer at images and clips" in log
    assert "video_pipeline_nightly_approval = both" in log
    assert not local_storage.exists("jobs/nightly-policy/manifest.json")
