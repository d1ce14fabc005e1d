"""Stopping a run stops the spend and keeps what was already paid for (issue 21), on real Airflow processes
against the fake Runway server. A 4-segment Runway job; images take 20 s at the provider, 2 at a time.

1. The run is marked failed through the REST API (what the UI's "Mark as failed" does) while 2 images are done
   and 2 run at the provider. The stopped tasks' triggers get ``on_kill``, the stop module reports the stop and
   the paid-work stop handler cancels both provider tasks; where that mechanism is not installed, the salvage
   sweep does it instead (the test then starts the sweep, as its 5-minute schedule would). A re-run pays only
   for the 2 cancelled images.
2. The triggerer is down (lost) while 2 images finish at the provider, and the run is marked failed: nobody
   downloaded those outputs. The job's next run salvages them into the cache before it starts and pays only
   for the 2 that never finished.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest

from tests.e2e.conftest import (
    DAG_ID,
    RUNWAY_CANARY_KEY,
    decide_by_variable,
    manifest_of,
    mapped_states,
    six_segment_job,
)
from video_pipeline.storage import Storage
from video_pipeline.submissions import ledger
from video_pipeline_dev.fake_runway import FakeRunway
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

SALVAGE_DAG = "video_pipeline_salvage"
STOP_MODULE_INSTALLED = importlib.util.find_spec("video_pipeline_airflow.stop") is not None


def in_flight(fake: FakeRunway) -> int:
    by_status = fake.tasks_by_status
    return by_status["PENDING"] + by_status["THROTTLED"] + by_status["RUNNING"]


def set_paused(airflow: LocalAirflow, dag_id: str, paused: bool) -> None:
    airflow.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused}).raise_for_status()


def mark_failed(airflow: LocalAirflow, run_id: str) -> None:
    airflow.api(
        "PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"}
    ).raise_for_status()


def prompts_posted(fake: FakeRunway, since: int) -> list[str]:
    return [body["promptText"].split(":")[0] for _, body in list(fake.task_bodies())[since:]]


def four_images(job_id: str) -> dict[str, Any]:
    spec = six_segment_job(job_id, provider="runway", seed=1201, budget_credits=1000)
    spec["segments"] = [
        {"prompt": f"Shot {i}: a ferry at night [latency:20]", "duration_s": 2} for i in range(1, 5)
    ]
    return spec


def rerun_and_reject(airflow: LocalAirflow, fake: FakeRunway, spec: dict[str, Any]) -> tuple[str, list[str]]:
    """The same job again, rejected at the images gate; returns the run and the shots it paid for."""
    created_before = len(list(fake.task_bodies()))
    rerun = airflow.trigger(DAG_ID, spec)
    decide_by_variable(airflow, rerun, spec["job_id"], "images", "reject")
    assert airflow.wait_for_run(DAG_ID, rerun, timeout=300) == "success"
    return rerun, sorted(prompts_posted(fake, created_before))


def test_marking_a_run_failed_cancels_its_running_provider_tasks(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=10.0, video_latency=1.0, concurrency=2)
    set_paused(airflow, SALVAGE_DAG, True)  # the sweep runs when this test says so, not on its 5-min tick
    try:
        job_id = "e2e-stop-spend"
        spec = four_images(job_id)
        run_id = airflow.trigger(DAG_ID, spec)

        def two_done_two_running() -> bool:
            """2 images stored by their tasks; the other 2 running at the provider, their triggers polling."""
            done = mapped_states(airflow, run_id, "generate_image").count("success") == 2
            stats = fake_runway.stats()
            running = stats["tasks_by_status"]["PENDING"] + stats["tasks_by_status"]["RUNNING"] == 2
            return done and running and all(n >= 1 for n in stats["polls"].values())

        airflow.wait_until(two_done_two_running, 240, "2 images done, 2 running at the provider", 0.2)
        posts_at_stop = sum(fake_runway.stats()["posts"].values())
        mark_failed(airflow, run_id)
        stopped_at = time.monotonic()

        path = "the stop handler (trigger on_kill)"
        try:
            airflow.wait_until(
                lambda: in_flight(fake_runway) == 0, 45, "the stop handler's cancellations", 0.2
            )
        except TimeoutError:
            path = "the salvage sweep"
            sweep = airflow.trigger(SALVAGE_DAG, {})
            set_paused(airflow, SALVAGE_DAG, False)
            airflow.wait_until(lambda: in_flight(fake_runway) == 0, 120, "no provider task in flight", 0.2)
            assert airflow.wait_for_run(SALVAGE_DAG, sweep, timeout=120) == "success"
            set_paused(airflow, SALVAGE_DAG, True)
        zero_after = time.monotonic() - stopped_at

        stats = fake_runway.stats()
        print(
            f"\nstop module installed: {STOP_MODULE_INSTALLED}; in-flight 0 {zero_after:.1f} s after the stop, "
            f"by {path}; generate_image {mapped_states(airflow, run_id, 'generate_image')}; fake: {stats}"
        )
        assert sum(stats["posts"].values()) == posts_at_stop  # nothing submitted after the stop
        assert stats["tasks_created"] == {"gen4_image": 4}
        assert stats["tasks_by_status"]["SUCCEEDED"] == 2 and stats["tasks_by_status"]["DELETED"] == 2
        assert stats["deletes"] == 2
        entries = ledger(
            local_storage, job_id
        )  # the manifest copies it in at the run's (or the next run's) save
        cancelled = sorted(e.index or 0 for e in entries if e.event == "cancelled")
        assert len(cancelled) == 2
        assert all(e.refund == "unknown" for e in entries if e.event == "cancelled")
        assert entries[-1].total == stats["credits_spent"] == 4 * 5
        assert not list(local_storage.list(f"jobs/{job_id}/provider-tasks/"))

        # The same job again: the stopped run's claim is taken over; the 2 finished images come from the
        # cache, only the 2 cancelled ones are paid for again.
        rerun, paid_again = rerun_and_reject(airflow, fake_runway, spec)
        print(f"re-run paid for {paid_again} (cancelled at the stop: segments {cancelled})")
        assert paid_again == [f"Shot {i}" for i in cancelled]
        manifest = manifest_of(local_storage, job_id)
        assert [i for i, s in enumerate(manifest.segments, 1) if s.image_cache_hit] == sorted(
            {1, 2, 3, 4} - set(cancelled)
        )
        assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "stopped"), (rerun, "rejected")]
        assert [e.seq for e in manifest.spend] == [e.seq for e in ledger(local_storage, job_id)]
        assert manifest.credits_spent == 6 * 5
        assert in_flight(fake_runway) == 0
        assert not local_storage.exists(f"jobs/{job_id}/claim.json")  # released by the rejecting gate
    finally:
        set_paused(airflow, SALVAGE_DAG, False)


def test_the_next_run_salvages_outputs_nobody_downloaded(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=10.0, video_latency=1.0, concurrency=2)
    set_paused(airflow, SALVAGE_DAG, True)
    try:
        job_id = "e2e-stop-next-run"
        spec = four_images(job_id)
        run_id = airflow.trigger(DAG_ID, spec)
        airflow.wait_until(
            lambda: mapped_states(airflow, run_id, "generate_image").count("deferred") == 4,
            240,
            "4 image tasks waiting on the provider",
            0.5,
        )
        airflow.stop_process("triggerer")  # lost: nobody polls, nobody downloads
        try:
            airflow.wait_until(
                lambda: fake_runway.tasks_by_status["SUCCEEDED"] == 2, 60, "the first 2 images", 0.2
            )
            mark_failed(airflow, run_id)
            time.sleep(2)
        finally:
            airflow.start_process("triggerer")
        downloads_before = fake_runway.stats()["downloads"]

        rerun_at = time.monotonic()
        rerun, paid_again = rerun_and_reject(airflow, fake_runway, spec)
        manifest = manifest_of(local_storage, job_id)
        first_run = {e.index or 0: e.event for e in manifest.spend if e.run_id == run_id and not e.credits}
        salvaged = sorted(i for i, event in first_run.items() if event == "salvaged")
        cancelled = sorted(i for i, event in first_run.items() if event == "cancelled")
        print(
            f"\nre-run (with its salvage) done {time.monotonic() - rerun_at:.1f} s after its trigger; "
            f"downloads before it {downloads_before}; salvaged {salvaged}, cancelled {cancelled}, paid again "
            f"{paid_again}; fake: {fake_runway.stats()}"
        )
        assert downloads_before == 0
        assert len(salvaged) == 2 and len(cancelled) == 2
        assert paid_again == [f"Shot {i}" for i in cancelled]
        assert [i for i, s in enumerate(manifest.segments, 1) if s.image_cache_hit] == salvaged
        assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "stopped"), (rerun, "rejected")]
        assert in_flight(fake_runway) == 0
    finally:
        set_paused(airflow, SALVAGE_DAG, False)
