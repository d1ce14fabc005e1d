"""Intake on arrival, on real Airflow processes: a spec put into the S3 inbox notifies an SQS queue (moto serves
both over HTTP), the inbox asset's watcher fires, and the arrival's batch starts the spec's run within seconds;
the same spec put again, under its name and another, is still one run, and every copy is settled."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from tests.e2e.conftest import BUCKET, DAG_ID, EVENTS_ROOT, six_segment_job
from video_pipeline.inbox import run_id_for
from video_pipeline.storage import Storage, open_storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
INBOX_DAG = "video_generation_inbox"
#: "Within seconds" on a loaded 2-core machine: the watcher's long poll answers at once, then one scheduler
#: loop creates the inbox DAG's run, whose intake triggers the job's.
ARRIVAL_BOUND_S = 60


def runs_of(airflow: LocalAirflow, dag_id: str) -> list[dict[str, object]]:
    response = airflow.api("GET", f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 200})
    response.raise_for_status()
    return list(response.json()["dag_runs"])


def settled(storage: Storage, count: int) -> list[str] | None:
    """The specs in done/ and inbox/rejected/, once there are ``count`` of them."""
    keys = [*storage.list("done/"), *storage.list("inbox/rejected/")]
    found = [key for key in keys if key.endswith(".json")]
    return found if len(found) >= count else None


def test_a_spec_put_into_the_inbox_starts_exactly_one_run(
    airflow: LocalAirflow, moto_endpoint: str, inbox_queue: str
) -> None:
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    storage = open_storage(f"s3://{BUCKET}/{EVENTS_ROOT}", s3_client=client)
    airflow.set_variable("video_pipeline_storage_url", storage.url)
    spec = six_segment_job("arrival", approval="none", seed=41)
    spec["segments"] = spec["segments"][:2]
    body = json.dumps(spec).encode()
    run_id = run_id_for(spec)

    put_at = time.monotonic()
    storage.put_bytes("inbox/arrival.json", body)
    airflow.wait_until(
        lambda: any(r["dag_run_id"] == run_id for r in runs_of(airflow, DAG_ID)),
        timeout=ARRIVAL_BOUND_S,
        what="the spec's run, started by its arrival",
        interval=0.5,
    )
    started_after = time.monotonic() - put_at
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    (first,) = airflow.wait_until(lambda: settled(storage, 1), timeout=120, what="the spec in done/")
    assert storage.get_bytes(first) == body

    # The same spec again, under its own name and under another: one run still, and every copy settled. A
    # copy that shares a batch with the other is rejected as the same spec (the nightly rule); one that has
    # a batch of its own finds the run done and follows it to done/.
    storage.put_bytes("inbox/arrival.json", body)
    storage.put_bytes("inbox/arrival-again.json", body)
    copies = airflow.wait_until(lambda: settled(storage, 3), timeout=180, what="both copies settled")
    assert sorted(storage.get_bytes(key) for key in copies) == [body] * 3
    for key in copies:
        if key.startswith("inbox/rejected/"):
            assert "the same spec as" in storage.get_bytes(f"{key}.error.txt").decode()
    assert [r["dag_run_id"] for r in runs_of(airflow, DAG_ID) if "__arrival__" in str(r["dag_run_id"])] == [
        run_id
    ]
    assert not list(storage.list("processing/"))
    assert not storage.exists("inbox/arrival.json") and not storage.exists("inbox/arrival-again.json")
    inbox_runs = runs_of(airflow, INBOX_DAG)
    assert inbox_runs and {r["run_type"] for r in inbox_runs} == {"asset_triggered"}
    print(f"arrival → run of video_generation: {started_after:.1f} s")
