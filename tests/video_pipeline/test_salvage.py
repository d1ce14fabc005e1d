"""Settling the provider tasks of stopped runs, against the fake Runway server over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from video_pipeline.claims import claim_job
from video_pipeline.generation import Planned, plan_image, reuse
from video_pipeline.manifest import begin_run, load_manifest
from video_pipeline.models import JobSpec, VideoSegment
from video_pipeline.providers.base import ImageRequest
from video_pipeline.providers.port import Endpoint, RemoteClient
from video_pipeline.providers.runway import PROVIDER, RunwayClient
from video_pipeline.salvage import cancel_in_flight, salvage_all, salvage_job, settle
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import (
    Submission,
    create_submission,
    job_submissions,
    jobs_in_flight,
    ledger,
    reserve_credits,
    run_stop_reason,
    update_submission,
)
from video_pipeline_dev.fake_runway import FakeRunway

KEY = "rk_salvage_canary_31c"
DAG = "video_generation"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY) as server:
        yield server


@pytest.fixture
def storage(fake: FakeRunway, tmp_path: Path) -> LocalStorage:
    fake.reset(api_key=KEY, image_latency=0.3, concurrency=10)
    return LocalStorage(tmp_path)


def runway_client(fake: FakeRunway) -> RunwayClient:
    return RunwayClient(fake.base_url, KEY, max_retries=1, backoff_base=0.01)


def client_factory(fake: FakeRunway) -> Callable[[str], RemoteClient]:
    """The salvage's client factory: the named provider's client (only Runway's exists in these tests)."""

    def open_client(provider: str) -> RemoteClient:
        assert provider == "runway"
        return PROVIDER.client(Endpoint(fake.base_url, KEY, {"max_retries": 1, "backoff_base": 0.01}))

    return open_client


def in_flight(fake: FakeRunway) -> int:
    by_status = fake.tasks_by_status
    return by_status["PENDING"] + by_status["THROTTLED"] + by_status["RUNNING"]


def job(job_id: str, prompts: list[str]) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": job_id, "title": "t", "provider": "runway", "segments": [{"prompt": p} for p in prompts]}
    )


def submit(
    storage: LocalStorage, fake: FakeRunway, spec: JobSpec, segment: VideoSegment, run_id: str
) -> Submission:
    """What the image operator does: plan, record exclusively, reserve, POST, record the task id."""
    planned = plan_image(spec.settings(), segment)
    record = Submission(
        kind="images",
        provider="runway",
        job_id=spec.job_id,
        run_id=run_id,
        dag_id=DAG,
        index=segment.index,
        seed=segment.seed,
        credits=5,
        digest=planned.digest,
        plan=planned.to_dict(),
        segment=segment.model_dump(mode="json"),
    )
    assert create_submission(storage, record)
    reserve_credits(storage, spec.job_id, None, record)
    with runway_client(fake) as client:
        assert isinstance(planned.request, ImageRequest)
        task_id = client.text_to_image(planned.request)
    submitted = record.model_copy(update={"state": "submitted", "provider_task_id": task_id})
    update_submission(storage, submitted)
    return submitted


def wait_for(fake: FakeRunway, task_id: str, status: str) -> None:
    deadline = time.monotonic() + 10
    with runway_client(fake) as client:
        while client.get_task(task_id).status != status:
            assert time.monotonic() < deadline, f"task {task_id} never reached {status}"
            time.sleep(0.05)


def ended(dag_id: str | None, run_id: str) -> bool:
    return False


def test_a_stopped_runs_tasks_are_salvaged_cancelled_or_cleared(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job("j", ["a fox at dawn", "a hen [latency:30]", "bad [fail:SAFETY.INPUT.TEXT]"])
    segments = segments_for(spec)
    begin_run(storage, spec, "run-1", segments, 15)
    done, _slow, failed = (submit(storage, fake, spec, s, "run-1") for s in segments)
    wait_for(fake, str(done.provider_task_id), "SUCCEEDED")
    wait_for(fake, str(failed.provider_task_id), "FAILED")

    results = salvage_job(storage, "j", ended, client_factory(fake))
    assert {r.record.index: r.outcome for r in results} == {1: "salvaged", 2: "cancelled", 3: "cleared"}
    assert in_flight(fake) == 0 and fake.deletes == 1
    assert job_submissions(storage, "j") == [] and jobs_in_flight(storage) == []
    # The salvaged output is in the cache: the next run with the same inputs pays nothing for it.
    planned = Planned.from_dict(done.plan)
    assert reuse(storage, planned, segments[0]) is not None
    assert storage.get_bytes(planned.cache_key).startswith(b"\x89PNG")
    events = [(e.event, e.index, e.refund) for e in ledger(storage, "j") if not e.credits]
    assert events == [("salvaged", 1, None), ("cancelled", 2, "unknown"), ("failed", 3, "unknown")]
    assert fake.stats()["posts"] == {"/v1/text_to_image": 3}  # settling never submits


def test_an_expired_output_is_recorded_as_lost_not_paid_again(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    fake.configure(output_ttl=0.2)
    spec = job("j", ["a lantern"])
    (segment,) = segments_for(spec)
    claim_job(storage, "j", "run-1", DAG, lambda d, r: True)
    begin_run(storage, spec, "run-1", [segment], 5)
    record = submit(storage, fake, spec, segment, "run-1")
    wait_for(fake, str(record.provider_task_id), "SUCCEEDED")
    time.sleep(0.4)

    report = salvage_all(storage, ended, client_factory(fake))
    assert [r.outcome for r in report["j"]] == ["lost"]
    assert fake.stats()["expired_downloads"] == 1 and fake.stats()["posts"] == {"/v1/text_to_image": 1}
    manifest = load_manifest(storage, "j")
    assert manifest is not None
    assert manifest.credits_lost == 5 and manifest.credits_spent == 5
    assert [e.event for e in manifest.spend] == ["reserved", "lost"]
    assert [(r.run_id, r.status) for r in manifest.runs] == [("run-1", "stopped")]


def test_a_refused_output_is_recorded_as_lost_and_never_cached(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    """The sweep checks what it salvages like a task does: an HTML page is not an image, so it is lost spend
    (said once, in the ledger and the manifest), never in the cache and never fetched again."""
    fake.configure(output_body="html")
    spec = job("j", ["a lantern"])
    (segment,) = segments_for(spec)
    claim_job(storage, "j", "run-1", DAG, lambda d, r: True)
    begin_run(storage, spec, "run-1", [segment], 5)
    record = submit(storage, fake, spec, segment, "run-1")
    wait_for(fake, str(record.provider_task_id), "SUCCEEDED")

    report = salvage_all(storage, ended, client_factory(fake))
    assert [r.outcome for r in report["j"]] == ["lost"] and "refused" in report["j"][0].detail
    assert list(storage.list("cache/")) == []
    assert salvage_all(storage, ended, client_factory(fake)) == {}  # settled once: nothing left to fetch


def test_records_of_active_runs_are_left_alone(storage: LocalStorage, fake: FakeRunway) -> None:
    spec = job("j", ["a lantern [latency:30]"])
    (segment,) = segments_for(spec)
    submit(storage, fake, spec, segment, "run-1")
    assert salvage_job(storage, "j", lambda d, r: True, client_factory(fake)) == []
    assert salvage_all(storage, lambda d, r: True, client_factory(fake)) == {"j": []}
    assert in_flight(fake) == 1 and fake.deletes == 0 and jobs_in_flight(storage) == ["j"]


def test_cancel_in_flight_stops_one_run_and_leaves_other_jobs_alone(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    # Two jobs with identical inputs: the same content digest, two records (one per job).
    a, b = job("job-a", ["a lantern [latency:30]"]), job("job-b", ["a lantern [latency:30]"])
    record_a = submit(storage, fake, a, segments_for(a)[0], "run-a")
    record_b = submit(storage, fake, b, segments_for(b)[0], "run-b")
    assert record_a.digest == record_b.digest

    results = cancel_in_flight(storage, "job-a", "run-a", client_factory(fake), "stopped by a person")
    assert [(r.record.job_id, r.outcome) for r in results] == [("job-a", "cancelled")]
    assert fake.deletes == 1 and in_flight(fake) == 1  # job B's task still runs
    assert run_stop_reason(storage, "job-a", "run-a") == "stopped by a person"
    assert run_stop_reason(storage, "job-b", "run-b") is None
    assert [r.record_id for r in job_submissions(storage, "job-b")] == [record_b.record_id]
    assert jobs_in_flight(storage) == ["job-b"]


def test_cancel_in_flight_leaves_finished_outputs_for_the_sweep(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    spec = job("j", ["a quick lantern"])
    (segment,) = segments_for(spec)
    record = submit(storage, fake, spec, segment, "run-1")
    wait_for(fake, str(record.provider_task_id), "SUCCEEDED")
    results = cancel_in_flight(storage, "j", "run-1", client_factory(fake))
    assert [r.outcome for r in results] == ["left"]
    assert fake.deletes == 0  # deleting a succeeded task would throw its paid output away
    assert [r.outcome for r in salvage_job(storage, "j", ended, client_factory(fake))] == ["salvaged"]


def test_a_failing_job_does_not_stop_the_sweep(storage: LocalStorage, fake: FakeRunway) -> None:
    good, bad = job("good", ["a quick lantern"]), job("bad", ["another lantern"])
    record = submit(storage, fake, good, segments_for(good)[0], "run-g")
    submit(storage, fake, bad, segments_for(bad)[0], "run-b")
    wait_for(fake, str(record.provider_task_id), "SUCCEEDED")
    storage.put_bytes("jobs/bad/provider-tasks/images/broken.json", b"{not json")
    report = salvage_all(storage, ended, client_factory(fake))
    assert list(report) == ["good"] and [r.outcome for r in report["good"]] == ["salvaged"]
    assert jobs_in_flight(storage) == ["bad"]  # tried again by the next sweep


def test_an_active_runs_long_finished_task_is_fetched_before_its_url_expires(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    """A triggerer lost for hours: the run is still active, its task succeeded and nobody collects it."""
    spec = job("j", ["a quick lantern", "a slow lantern [latency:30]"])
    quick, slow = (submit(storage, fake, spec, s, "run-1") for s in segments_for(spec))
    wait_for(fake, str(quick.provider_task_id), "SUCCEEDED")

    def active(dag_id: str | None, run_id: str) -> bool:
        return True

    assert salvage_all(storage, active, client_factory(fake)) == {"j": []}  # not overdue yet: its run's job
    report = salvage_all(storage, active, client_factory(fake), overdue_after_s=0)
    assert sorted((r.record.index, r.outcome) for r in report["j"]) == [(1, "salvaged"), (2, "left")]
    assert fake.deletes == 0  # an active run's running task is never cancelled by the sweep
    assert storage.exists(Planned.from_dict(quick.plan).cache_key)
    assert [r.record_id for r in job_submissions(storage, "j")] == [slow.record_id]


def test_two_stops_settling_one_task_at_once_record_one_cancellation(
    storage: LocalStorage, fake: FakeRunway
) -> None:
    """A person's stop reaches the task's handler and the run's on two threads at once: the task is
    cancelled once and recorded once as cancelled, never also as lost (the provider forgets a deleted task)."""
    spec = job("twice", ["a hen [latency:30]"])
    (segment,) = segments_for(spec)
    begin_run(storage, spec, "run-1", [segment], 5)
    record = submit(storage, fake, spec, segment, "run-1")
    barrier = threading.Barrier(2)

    def stop() -> str:
        barrier.wait()
        with client_factory(fake)("runway") as client:
            return settle(storage, record, client, fetch=False).outcome

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(lambda _: stop(), range(2)))
    assert outcomes == ["cancelled", "left"]
    assert [(e.event, e.index) for e in ledger(storage, "twice") if not e.credits] == [("cancelled", 1)]
    assert fake.deletes == 1 and job_submissions(storage, "twice") == []
