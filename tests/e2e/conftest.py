"""A real Airflow (api-server, scheduler, dag-processor, triggerer; SQLite + LocalExecutor) for the module,
plus moto's S3 server over HTTP, so the pipeline runs exactly as it does for a user."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import pytest

from video_pipeline.approval import variable_key
from video_pipeline.models import Manifest
from video_pipeline.storage import Storage, open_storage
from video_pipeline_dev.cluster import PG, fresh_metadata_db, reachable
from video_pipeline_dev.fake_fal import FakeFal
from video_pipeline_dev.fake_runway import FakeRunway
from video_pipeline_dev.fake_voices import FakeVoice
from video_pipeline_dev.local import EXAMPLE_DAGS, LocalAirflow
from video_pipeline_dev.moto_s3 import MotoS3
from video_pipeline_dev.statsd_listener import StatsdListener

DAG_ID = "video_generation"
BUCKET = "video-e2e"
#: Where the session's Airflow writes its OpenLineage events (under its home), and their namespace.
OPENLINEAGE_FILE = "openlineage.jsonl"
OPENLINEAGE_NAMESPACE = "video-e2e"


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[MotoS3]:
    server = MotoS3()
    server.start()
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint(moto_s3: MotoS3) -> str:
    return moto_s3.endpoint


#: Logins beside the reviewer (admin): one who may read every DAG but change nothing, and one who may read no
#: DAG at all (the simple auth manager allows a user without a role nothing).
VIEWER = ("watcher", "e2e-watch", "viewer")
OUTSIDER = ("outsider", "e2e-out", "")
OTHER_USERS = {name: (password, role) for name, password, role in (VIEWER, OUTSIDER)}

#: Where the arrival test keeps its storage: only its inbox notifies the queue (other tests' inboxes do not).
EVENTS_ROOT = "events"


@pytest.fixture(scope="session")
def inbox_queue(moto_s3: MotoS3) -> str:
    """An SQS queue that the bucket notifies of every ``events/inbox/*.json`` created, as the README sets up
    S3 for the intake on arrival; its URL."""
    settings: dict[str, Any] = {
        "endpoint_url": moto_s3.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    sqs: Any = boto3.client("sqs", **settings)
    queue = str(sqs.create_queue(QueueName="video-inbox")["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": f"{EVENTS_ROOT}/inbox/"}, {"Name": "suffix", "Value": ".json"}]
    s3: Any = boto3.client("s3", **settings)
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}}
            ]
        },
    )
    return queue


RUNWAY_CANARY_KEY = "key_canary_5f3a9e1d7c2b4e8f"  # must never appear in logs, XCom or the manifest


@pytest.fixture(scope="session")
def fake_runway() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=RUNWAY_CANARY_KEY, image_latency=1.0, video_latency=2.0, concurrency=2) as fake:
        yield fake


FAL_CANARY_KEY = "falkey_canary:7d1e0c9b2a"  # must never appear in logs, XCom or the manifest
#: Client settings from the connections' extra: short waits, so "unavailable" is decided within seconds.
FAST_CLIENT = {"max_retries": 3, "backoff_base": 0.05, "backoff_cap": 0.5}


@pytest.fixture(scope="session")
def fake_fal() -> Iterator[FakeFal]:
    with FakeFal(api_key=FAL_CANARY_KEY, image_latency=1.0, video_latency=2.0, concurrency=4) as fake:
        yield fake


VOICE_CANARY_KEYS = {"openai": "sk-canary-0e9d8c7b6a5f", "elevenlabs": "xi_canary_4b3a2c1d0e"}


@pytest.fixture(scope="session")
def fake_voices() -> Iterator[dict[str, FakeVoice]]:
    """The fake paid voices (OpenAI and ElevenLabs), each with its canary key."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(FakeVoice(name, api_key=key, latency=0.3))  # type: ignore[arg-type]
            for name, key in VOICE_CANARY_KEYS.items()
        }


@pytest.fixture(scope="session")
def statsd() -> Iterator[StatsdListener]:
    """The session's StatsD server: every Airflow process sends its metrics here (the pipeline's are kept)."""
    with StatsdListener(keep="video_pipeline") as listener:
        yield listener


@pytest.fixture(scope="session")
def airflow(
    tmp_path_factory: pytest.TempPathFactory,
    moto_endpoint: str,
    fake_runway: FakeRunway,
    fake_fal: FakeFal,
    fake_voices: dict[str, FakeVoice],
    statsd: StatsdListener,
    inbox_queue: str,
) -> Iterator[LocalAirflow]:
    home = tmp_path_factory.mktemp("airflow-home")
    aws = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }
    runway = {"conn_type": "http", "host": fake_runway.base_url, "password": RUNWAY_CANARY_KEY}
    fal = {"conn_type": "http", "host": fake_fal.base_url, "password": FAL_CANARY_KEY, "extra": FAST_CLIENT}
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(aws),
        "AIRFLOW_CONN_RUNWAY_DEFAULT": json.dumps(runway),
        "AIRFLOW_CONN_FAL_DEFAULT": json.dumps(fal),
        **{
            f"AIRFLOW_CONN_{name.upper()}_DEFAULT": json.dumps(
                {
                    "conn_type": "http",
                    "host": fake.base_url,
                    "password": VOICE_CANARY_KEYS[name],
                    "extra": FAST_CLIENT,
                }
            )
            for name, fake in fake_voices.items()
        },
        "AIRFLOW_VAR_VIDEO_PIPELINE_POLL_SECONDS": "0.5",
        # Gates read a Variable decision every 2 s (default 10 s): the suite waits on many gates.
        "AIRFLOW_VAR_VIDEO_PIPELINE_GATE_POLL_SECONDS": "2",
        "VIDEO_PIPELINE_NIGHTLY_POKE_SECONDS": "3",
        # A worker that dies with its task is noticed after this long without a heartbeat (default 300 s;
        # LocalAirflow's tasks heartbeat every second, so 30 s is far from a false alarm).
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        # Lineage: every process appends its OpenLineage events to one file (test_outputs.py reads it).
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(home / OPENLINEAGE_FILE), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": OPENLINEAGE_NAMESPACE,
        # Emit from a bounded thread of the task process, not a fork per task event (the provider's default):
        # the suite runs thousands of task events on two cores, and the events are the same either way.
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        # Metrics: Airflow's StatsD client, to the session's listener.
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        # Intake on arrival: the inbox asset's watcher listens on the queue (test_inbox_events.py).
        "VIDEO_PIPELINE_INBOX_QUEUE_URL": inbox_queue,
    }
    with ExitStack() as stack:
        # PostgreSQL where the machine has it (CI does): with SQLite, writes wait on one file lock, and on a
        # loaded machine (two test workers, each with its own Airflow) REST writes failed with "database is
        # locked" after SQLite's 30-s busy wait. Without PostgreSQL, SQLite as before.
        metadata = stack.enter_context(fresh_metadata_db("vp_e2e")) if reachable(PG) else None
        cluster = LocalAirflow(
            home=home,
            storage_url=None,
            parallelism=6,
            extra_env=env,
            login=("reviewer", "e2e-pass"),
            users=dict(OTHER_USERS),
            sql_alchemy_conn=metadata,
            # the example consumer of the finished-video asset runs beside the pipeline (test_outputs.py)
            extra_dag_folders=(EXAMPLE_DAGS,),
        )
        stack.enter_context(cluster)
        yield cluster


@pytest.fixture
def local_storage(airflow: LocalAirflow, tmp_path: Path) -> Storage:
    storage = open_storage((tmp_path / "data").as_uri())
    airflow.set_variable("video_pipeline_storage_url", storage.url)
    return storage


@pytest.fixture
def s3_storage(airflow: LocalAirflow, moto_endpoint: str) -> Storage:
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    storage = open_storage(f"s3://{BUCKET}/e2e", s3_client=client)
    airflow.set_variable("video_pipeline_storage_url", storage.url)
    return storage


def six_segment_job(job_id: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "job_id": job_id,
        "title": f"E2E {job_id}",
        "segments": [
            {"prompt": f"Scene {i}: a lantern over dark water", "duration_s": 2} for i in range(1, 7)
        ],
        "ratio": "1280:720",
        "seed": 11,
        "approval": "both",
        "gate_timeout": 600,
    }
    spec.update(overrides)
    return spec


def decide_by_variable(
    airflow: LocalAirflow, run_id: str, job_id: str, stage: str, value: str, timeout: float = 300
) -> None:
    """Wait for the gate to open (deferred), let a few seconds pass, then set the decision Variable."""
    airflow.wait_for_task_state(DAG_ID, run_id, f"{stage}_gate", {"deferred"}, timeout=timeout)
    time.sleep(3)
    airflow.set_variable(variable_key(job_id, stage), value)  # type: ignore[arg-type]


def manifest_of(storage: Storage, job_id: str) -> Manifest:
    return Manifest.from_json(storage.get_bytes(f"jobs/{job_id}/manifest.json"))


def mapped_states(airflow: LocalAirflow, run_id: str, task_id: str) -> list[str | None]:
    return [ti["state"] for ti in airflow.task_instances(DAG_ID, run_id) if ti["task_id"] == task_id]
