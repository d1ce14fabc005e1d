"""The pipeline on a real CeleryExecutor cluster: PostgreSQL metadata DB, Redis broker, api-server, scheduler,
dag-processor, triggerer and two Celery workers as separate processes, S3 over HTTP (moto's server).

Uses the PostgreSQL and Redis that run locally on CI machines; skipped with the reason when they are absent.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import BUCKET, DAG_ID, decide_by_variable, manifest_of
from video_pipeline.media.probe import probe
from video_pipeline.models import SegmentStatus
from video_pipeline.storage import Storage, open_storage
from video_pipeline_dev.cluster import celery_env, fresh_metadata_db, missing_services
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.timeout(1500)]

REDIS_DB = 11  # a database of its own
WORKERS = ("worker-1", "worker-2")
#: Enough for both workers to take mapped tasks of both stages (two slots each; 16 mapped tasks): 20 took
#: 219 s of the suite for nothing more.
SEGMENTS = 8


@pytest.fixture(scope="module")
def metadata_db() -> Iterator[str]:
    """A fresh PostgreSQL database for this run's Airflow metadata, dropped afterwards."""
    if reason := missing_services():
        pytest.skip(reason)
    with fresh_metadata_db("vp_cluster") as url:
        yield url


@pytest.fixture(scope="module")
def celery_airflow(
    tmp_path_factory: pytest.TempPathFactory, metadata_db: str, moto_endpoint: str
) -> Iterator[LocalAirflow]:
    aws = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    env = {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws), **celery_env(metadata_db, REDIS_DB)}
    # Two task slots per worker: four Airflow task processes at once is what two cores carry.
    cluster = LocalAirflow(
        home=tmp_path_factory.mktemp("airflow-celery"),
        storage_url=f"s3://{BUCKET}/cluster",
        executor="CeleryExecutor",
        sql_alchemy_conn=metadata_db,
        parallelism=16,
        pool_slots=4,
        extra_env=env,
        login=("reviewer", "cluster-pass"),
    )
    with cluster:
        for name in WORKERS:
            cluster.start_celery_worker(name, concurrency=2)
        yield cluster


@pytest.fixture
def s3(moto_endpoint: str) -> Storage:
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return open_storage(f"s3://{BUCKET}/cluster", s3_client=client)


def test_a_job_spreads_over_two_celery_workers(
    celery_airflow: LocalAirflow, s3: Storage, tmp_path: Path
) -> None:
    job_id = f"cluster-{SEGMENTS}"
    spec = {
        "job_id": job_id,
        "title": "Celery cluster",
        "segments": [
            {"prompt": f"Shot {i}: a harbour at dawn", "duration_s": 2} for i in range(1, SEGMENTS + 1)
        ],
        "seed": 7,
        "approval": "both",
        "gate_timeout": 1800,
    }
    run_id = celery_airflow.trigger(DAG_ID, spec)
    decide_by_variable(celery_airflow, run_id, job_id, "images", "approve", timeout=600)
    decide_by_variable(celery_airflow, run_id, job_id, "clips", "approve", timeout=600)
    assert celery_airflow.wait_for_run(DAG_ID, run_id, timeout=600) == "success"

    instances = celery_airflow.task_instances(DAG_ID, run_id)
    per_worker = Counter(
        ti["hostname"] for ti in instances if ti["task_id"] in {"generate_image", "animate_segment"}
    )
    print(f"mapped tasks per worker: {dict(per_worker)}")
    assert set(per_worker) == set(WORKERS), per_worker
    assert sum(per_worker.values()) == 2 * SEGMENTS
    assert all(ti["state"] == "success" for ti in instances)

    final = probe(s3.download_to(f"jobs/{job_id}/final.mp4", tmp_path / "final.mp4"))
    assert (final.width, final.height, final.codec) == (1280, 720, "h264")
    assert final.frame_count == SEGMENTS * 2 * 24
    assert abs(final.duration_s - SEGMENTS * 2) < 0.5
    manifest = manifest_of(s3, job_id)
    assert manifest.status == "succeeded"
    assert [s.index for s in manifest.segments] == list(range(1, SEGMENTS + 1))
    assert all(s.status == SegmentStatus.VIDEO_APPROVED for s in manifest.segments)
