"""The Runway path of the segment operators, in-process against the fake Runway server and real storage.

A "crash after submit" is the operator deferring (the provider task id is already persisted) and a new
operator instance — the retry — running ``execute`` again.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws
from PIL import Image

from video_pipeline.claims import claim_job, current_claim
from video_pipeline.generation import Planned, plan_clip
from video_pipeline.models import JobSpec
from video_pipeline.providers.port import Endpoint, RemoteClient
from video_pipeline.providers.runway import PROVIDER, RunwayClient, remote_status
from video_pipeline.salvage import salvage_all
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage, Storage, open_storage
from video_pipeline.submissions import (
    Submission,
    create_submission,
    credits_spent,
    job_submissions,
    ledger,
    load_submission,
    stop_run,
)
from video_pipeline_airflow.operators import segment as segment_module
from video_pipeline_airflow.operators.segment import (
    AnimateSegmentOperator,
    GenerateImageOperator,
    record_paid_submission,
)
from video_pipeline_airflow.stages import end_run
from video_pipeline_dev.fake_runway import FakeRunway, point_pipeline_at
from video_pipeline_dev.moto_s3 import MotoS3

KEY = "rk_operator_canary_77aa"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY, image_latency=0.2) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.2)
    point_pipeline_at(fake, KEY, tmp_path, monkeypatch, poll_seconds=0.1)
    return LocalStorage(tmp_path)


def job(prompt: str = "a lantern over dark water", job_id: str = "op", **overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": job_id, "title": "t", "provider": "runway", "segments": [{"prompt": prompt}], **overrides}
    )


def operator(spec: JobSpec, index: int = 0) -> GenerateImageOperator:
    segment = segments_for(spec)[index]
    return GenerateImageOperator(
        task_id="generate_image",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=len(segments_for(spec)),
    )


def ctx(**values: Any) -> Any:
    """A task context with just the given keys (``run_id``; ``ti``: a stand-in with the task instance's
    attributes and, where a test needs it, Airflow's ``get_dagrun_state``)."""
    return values


def deferred(
    op: GenerateImageOperator | AnimateSegmentOperator, context: dict[str, Any] | None = None
) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as caught:
        op.execute(ctx(**(context or {})))
    return caught.value


def deferred_task_id(op: GenerateImageOperator, context: dict[str, Any] | None = None) -> str:
    return str(deferred(op, context).trigger.provider_task_id)


def terminal_event(fake: FakeRunway, task_id: str) -> dict[str, Any]:
    """What the trigger hands back: the task's terminal status, in the port's terms."""
    deadline = time.monotonic() + 20
    with RunwayClient(fake.base_url, KEY) as client:
        while not (status := client.get_task(task_id)).terminal and time.monotonic() < deadline:
            time.sleep(0.1)
    return {"event": "done", **remote_status(status).model_dump(mode="json")}


def complete(
    op: GenerateImageOperator | AnimateSegmentOperator, fake: FakeRunway, defer: TaskDeferred
) -> dict[str, Any]:
    event = terminal_event(fake, defer.trigger.provider_task_id)
    return op.execute_complete(ctx(), event, **(defer.kwargs or {}))


def records(storage: Storage, job_id: str = "op") -> list[Submission]:
    return job_submissions(storage, job_id)


def test_a_retry_after_submit_resumes_instead_of_paying_again(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job()
    first = deferred(operator(spec))
    second = deferred(operator(spec))  # the retry of a worker that died while waiting
    assert second.trigger.provider_task_id == first.trigger.provider_task_id
    assert fake.stats()["posts"] == {"/v1/text_to_image": 1}

    result = complete(operator(spec), fake, second)
    assert result["image_key"] == "jobs/op/images/001.png"
    assert result["image_task_id"] == first.trigger.provider_task_id
    assert storage.exists("jobs/op/images/001.png")
    assert records(storage) == []  # the record is gone once the output is safe
    assert [e.event for e in ledger(storage, "op")] == ["reserved", "submitted"]

    # A third run of the same inputs is a cache hit: no request at all.
    fake.reset_counters()
    assert operator(spec).execute(ctx())["image_cache_hit"] is True
    assert fake.stats()["posts"] == {}


def test_attempts_racing_on_one_output_make_one_post(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job()
    barrier = threading.Barrier(4)
    task_ids: list[str] = []

    def attempt(n: int) -> None:
        barrier.wait()
        task_ids.append(deferred_task_id(operator(spec), {"run_id": f"run-{n}"}))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(task_ids) == 4 and len(set(task_ids)) == 1  # the losers resumed the winner's task
    assert fake.stats()["posts"] == {"/v1/text_to_image": 1}
    assert credits_spent(storage, "op") == 5


def test_concurrent_tasks_cannot_spend_past_the_budget(storage: LocalStorage, fake: FakeRunway) -> None:
    """Budget 10, four images at 5 credits each: two are submitted, two refused — never 20 spent."""
    spec = JobSpec.model_validate(
        {
            "job_id": "op",
            "title": "t",
            "provider": "runway",
            "budget_credits": 10,
            "segments": [{"prompt": f"lantern {n}"} for n in range(4)],
        }
    )
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def attempt(index: int) -> None:
        op = operator(spec, index)
        barrier.wait()
        try:
            op.execute(ctx(run_id="run-1"))
        except TaskDeferred:
            outcomes.append("submitted")
        except AirflowFailException as exc:
            outcomes.append("refused" if "budget_credits 10 would be exceeded" in str(exc) else str(exc))

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["refused", "refused", "submitted", "submitted"]
    assert fake.stats()["posts"] == {"/v1/text_to_image": 2} and fake.credits_spent == 10
    assert credits_spent(storage, "op") == 10 == sum(e.credits for e in ledger(storage, "op"))
    assert len(records(storage)) == 2  # the refused ones left no record behind


def test_a_record_left_submitting_by_a_dead_try_is_an_ambiguous_submit(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job()
    op = operator(spec)
    planned = op.plan(storage, spec.settings(), segments_for(spec)[0])
    # Try 1 created the record and died during its POST (whether Runway got it is unknown).
    stuck = Submission(
        provider="runway",
        job_id="op",
        run_id="run-1",
        dag_id="video_generation",
        task_id="generate_image",
        map_index=0,
        try_number=1,
        index=1,
        seed=planned.request.seed,
        credits=5,
        digest=planned.digest,
        plan=planned.to_dict(),
    )
    assert create_submission(storage, stuck)
    ti = SimpleNamespace(dag_id="video_generation", run_id="run-1", map_index=0, try_number=2)
    with pytest.raises(AirflowFailException, match=r"may have accepted \(and billed\) that request, or not"):
        op.execute(ctx(run_id="run-1", ti=ti))
    assert fake.stats()["posts"] == {}  # never a blind re-POST
    # A person checked the dashboard and cleared the task: the next try submits anew, once.
    ti3 = SimpleNamespace(dag_id="video_generation", run_id="run-1", map_index=0, try_number=3)
    deferred(operator(spec), {"run_id": "run-1", "ti": ti3})
    assert fake.stats()["posts"] == {"/v1/text_to_image": 1}
    (current,) = records(storage)
    assert current.state == "submitted" and current.record_id != stuck.record_id


def test_a_submitting_record_of_a_run_that_ended_is_ambiguous(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job()
    planned = operator(spec).plan(storage, spec.settings(), segments_for(spec)[0])
    other = Submission(
        provider="runway",
        job_id="op",
        run_id="old-run",
        dag_id="video_generation",
        task_id="generate_image",
        map_index=0,
        index=1,
        seed=1,
        credits=5,
        digest=planned.digest,
        plan=planned.to_dict(),
    )
    assert create_submission(storage, other)
    states = {"old-run": "failed"}
    ti = SimpleNamespace(
        dag_id="video_generation",
        run_id="new-run",
        map_index=0,
        try_number=1,
        get_dagrun_state=lambda dag_id, run_id: states[run_id],
    )
    with pytest.raises(AirflowFailException, match="run old-run, which was submitting it, has ended"):
        operator(spec).execute(ctx(run_id="new-run", ti=ti))
    assert fake.stats()["posts"] == {}


def test_a_stopped_run_submits_nothing(storage: LocalStorage, fake: FakeRunway) -> None:
    stop_run(storage, "op", "run-1", "stopped by a person")
    with pytest.raises(AirflowFailException, match="not submitted, the job was stopped: stopped by a person"):
        operator(job()).execute(ctx(run_id="run-1"))
    assert fake.stats()["posts"] == {} and records(storage) == [] and ledger(storage, "op") == []
    deferred(operator(job()), {"run_id": "run-2"})  # another run of the job is not stopped
    assert fake.stats()["posts"] == {"/v1/text_to_image": 1}


def test_safety_failure_fails_without_retry(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job("forbidden [fail:SAFETY.INPUT.TEXT]")
    defer = deferred(operator(spec))
    with pytest.raises(AirflowFailException, match=r"SAFETY\.INPUT\.TEXT"):
        complete(operator(spec), fake, defer)
    assert records(storage) == []
    assert [(e.event, e.refund) for e in ledger(storage, "op")][-1] == ("failed", "unknown")


def test_bad_output_retries_with_a_new_seed(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job("flaky [fail-once:INTERNAL.BAD_OUTPUT.CODE01]")
    first = deferred(operator(spec))
    with pytest.raises(RuntimeError, match="new seed"):
        complete(operator(spec), fake, first)
    retry = deferred(operator(spec))
    retry_id = retry.trigger.provider_task_id
    assert retry_id != first.trigger.provider_task_id
    assert complete(operator(spec), fake, retry)["image_task_id"] == retry_id
    assert fake.stats()["posts"] == {"/v1/text_to_image": 2}
    assert fake.stats()["duplicate_submissions"] == 0  # same prompt, so the seed changed


def test_budget_is_checked_before_submitting(storage: LocalStorage, fake: FakeRunway) -> None:
    with pytest.raises(AirflowFailException, match="budget_credits 3 would be exceeded"):
        operator(job(budget_credits=3)).execute(ctx())
    assert fake.stats()["posts"] == {} and records(storage) == []


def test_credits_exhausted_stops_the_whole_job(storage: LocalStorage, fake: FakeRunway) -> None:
    fake.reset(api_key=KEY, credits=1)
    with pytest.raises(AirflowFailException, match="whole job stops"):
        operator(job()).execute(ctx())
    assert [e.event for e in ledger(storage, "op")] == ["reserved", "released"]  # nothing was created
    assert credits_spent(storage, "op") == 0 and records(storage) == []
    fake.reset(api_key=KEY)  # credits are back, but the job stays stopped until a person looks
    with pytest.raises(AirflowFailException, match="the job was stopped"):
        operator(job("another segment")).execute(ctx())
    assert fake.stats()["posts"] == {}


def test_another_jobs_stop_does_not_cancel_a_task_this_job_resumed(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    """Records are per job: job A's failure cancels A's provider tasks only, never B's (same inputs)."""
    fake.reset(api_key=KEY, image_latency=30)
    a, b = job(job_id="job-a"), job(job_id="job-b")
    task_a = deferred_task_id(operator(a), {"run_id": "run-a"})
    task_b = deferred_task_id(operator(b), {"run_id": "run-b"})
    assert task_a != task_b
    resumed_b = deferred_task_id(operator(b), {"run_id": "run-b"})  # job B's retry resumes its task
    assert resumed_b == task_b

    end_run("job-a", "run-a", "failed", "the run failed")
    assert fake.stats()["deletes"] == 1
    with RunwayClient(fake.base_url, KEY) as client:
        assert client.get_task(task_b).status in ("PENDING", "RUNNING")
    assert [r.provider_task_id for r in records(storage, "job-b")] == [task_b]
    assert records(storage, "job-a") == []


def test_end_run_cancels_records_the_ledger_and_releases_the_job(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    fake.reset(api_key=KEY, image_latency=30)
    claim_job(storage, "op", "run-1", "video_generation", lambda d, r: True)
    task_id = deferred_task_id(operator(job()), {"run_id": "run-1"})
    end_run("op", "run-1", "rejected", "rejected at the images gate")
    assert fake.stats()["deletes"] == 1
    with RunwayClient(fake.base_url, KEY) as client, pytest.raises(Exception, match="404"):
        client.get_task(task_id)
    assert [(e.event, e.refund) for e in ledger(storage, "op")] == [
        ("reserved", None),
        ("submitted", None),
        ("cancelled", "unknown"),
    ]
    assert current_claim(storage, "op") is None and records(storage) == []
    with pytest.raises(AirflowFailException, match="the job was stopped"):  # nothing more for that run
        operator(job("another segment")).execute(ctx(run_id="run-1"))


def test_a_timed_out_task_fails_the_segment_and_is_recorded(storage: LocalStorage, fake: FakeRunway) -> None:
    defer = deferred(operator(job()))
    event = {
        "provider_task_id": defer.trigger.provider_task_id,
        "event": "timeout",
        "last_status": "THROTTLED",
        "cancelled": True,
        "error": None,
    }
    with pytest.raises(AirflowFailException, match=r"did not finish within 2 h .*still THROTTLED.*cancelled"):
        operator(job()).execute_complete(ctx(), event, **(defer.kwargs or {}))
    assert records(storage) == []
    assert [(e.event, e.refund) for e in ledger(storage, "op")][-1] == ("timed_out", "unknown")


def test_the_deadline_counts_from_the_submission(
    storage: LocalStorage, fake: FakeRunway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_PROVIDER_TIMEOUT_SECONDS", "600")
    first = deferred(operator(job()))
    time.sleep(0.2)
    resumed = deferred(operator(job()))  # a retry does not get a new 10 minutes
    (record,) = records(storage)
    assert record.submitted_at is not None
    assert first.trigger.deadline == resumed.trigger.deadline == record.submitted_at.timestamp() + 600


def test_a_task_whose_output_was_salvaged_meanwhile_finishes_from_the_cache(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    """The triggerer was down past the output URL's life; the sweep had fetched the output in time."""
    defer = deferred(operator(job()), {"run_id": "run-1"})
    event = terminal_event(fake, defer.trigger.provider_task_id)
    report = salvage_all(storage, lambda d, r: True, runway_client_for(fake), overdue_after_s=0)
    assert [r.outcome for r in report["op"]] == ["salvaged"]
    fake.configure(output_ttl=0.0)  # the URL is gone by the time the task resumes
    result = operator(job()).execute_complete(ctx(), event, **(defer.kwargs or {}))
    assert result["image_key"] == "jobs/op/images/001.png" and storage.exists("jobs/op/images/001.png")
    assert fake.stats()["expired_downloads"] == 0 and fake.stats()["downloads"] == 1
    assert records(storage) == []
    assert [e.event for e in ledger(storage, "op")] == ["reserved", "submitted", "salvaged"]


def runway_client_for(fake: FakeRunway) -> Callable[[str], RemoteClient]:
    return lambda provider: PROVIDER.client(Endpoint(fake.base_url, KEY))


def png(colour: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(out, format="PNG")
    return out.getvalue()


def test_completion_stores_under_the_plan_made_at_submission(storage: LocalStorage, fake: FakeRunway) -> None:
    """A clip paid for against image A must not be cached under the key of image B that replaced A."""
    fake.reset(api_key=KEY, video_latency=0.3)
    spec = job()
    segment = segments_for(spec)[0].model_copy(update={"image_key": "jobs/op/images/001.png"})
    storage.put_bytes("jobs/op/images/001.png", png("red"))
    op = AnimateSegmentOperator(
        task_id="animate_segment",
        job=spec.model_dump(mode="json"),
        segment=segment.model_dump(mode="json"),
        total=1,
    )
    key_a = plan_clip(storage, spec.settings(), segment).cache_key
    defer = deferred(op)
    storage.put_bytes("jobs/op/images/001.png", png("blue"))  # replaced while the clip was being made
    key_b = plan_clip(storage, spec.settings(), segment).cache_key
    assert key_a != key_b
    complete(op, fake, defer)
    assert storage.exists(key_a) and not storage.exists(key_b)
    assert Planned.from_dict((defer.kwargs or {})["plan"]).cache_key == key_a


def test_presigned_image_source_sends_an_https_link(
    fake: FakeRunway, monkeypatch: pytest.MonkeyPatch, aws_env: None
) -> None:
    fake.reset(api_key=KEY, video_latency=0.2)
    monkeypatch.setenv(
        "AIRFLOW_CONN_RUNWAY_DEFAULT",
        json.dumps({"conn_type": "http", "host": fake.base_url, "password": KEY}),
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", "s3://media/p")
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_IMAGE_SOURCE", "presigned")
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="media")
        storage = open_storage("s3://media/p", s3_client=boto3.client("s3"))
        spec = job()
        segment = segments_for(spec)[0].model_copy(update={"image_key": "jobs/op/images/001.png"})
        storage.put_bytes("jobs/op/images/001.png", b"\x89PNG fake image")
        op = AnimateSegmentOperator(
            task_id="animate_segment",
            job=spec.model_dump(mode="json"),
            segment=segment.model_dump(mode="json"),
            total=1,
        )
        with pytest.raises(TaskDeferred):
            op.execute(ctx())
    assert fake.stats()["posts"] == {"/v1/image_to_video": 1}
    assert fake.stats()["uploads_completed"] == 0  # no upload: Runway fetches the presigned https link
    (task,) = fake._state.tasks.values()
    assert task.body["promptImage"].startswith("https://") and "Signature" in task.body["promptImage"]


@pytest.fixture
def flaky_s3(aws_env: None) -> Iterator[tuple[MotoS3, Storage]]:
    server = MotoS3()
    server.start()
    client = boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="records")
    yield server, open_storage("s3://records/p", s3_client=client)
    server.stop()


def paid(task_id: str) -> Submission:
    return Submission(
        state="submitted",
        provider="runway",
        provider_task_id=task_id,
        job_id="op",
        run_id="run-1",
        index=1,
        seed=1,
        credits=5,
        digest="d" * 64,
    )


def test_a_paid_submission_is_recorded_through_a_storage_outage(flaky_s3: tuple[MotoS3, Storage]) -> None:
    server, s3 = flaky_s3
    server.stop()
    threading.Timer(2.0, server.start).start()
    record_paid_submission(s3, paid("task-during-outage"))
    recorded = load_submission(s3, "op", "images", "d" * 64)
    assert recorded is not None and recorded.provider_task_id == "task-during-outage"
    assert [(e.event, e.provider_task_id) for e in ledger(s3, "op")] == [("submitted", "task-during-outage")]


def test_recording_gives_up_after_its_patience(
    flaky_s3: tuple[MotoS3, Storage], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, s3 = flaky_s3
    monkeypatch.setattr(segment_module, "RECORD_PATIENCE_S", 1.0)
    server.stop()
    with pytest.raises(EndpointConnectionError):
        record_paid_submission(s3, paid("task-lost"))
