"""Stopping a run stops the spend and keeps what was already paid for (issue 21), on real Airflow processes
against the fake Runway server.

A 4-segment Runway job (images take 10 s at the provider, 2 at a time) is marked failed through the REST API
— what the UI's "Mark as failed" does — while 2 image tasks run at the provider and 2 wait in its queue.
Airflow runs no failure callback for a run a person marked failed, and the deferred tasks' triggers are
simply cancelled; the salvage sweep (``video_pipeline_salvage``) then settles the run's recorded provider
tasks: the ones that finished meanwhile are downloaded into the cache, the rest are cancelled. A re-run with
the same inputs pays nothing for what had succeeded.
"""

from __future__ import annotations

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
from tests.support.fake_runway import FakeRunway
from video_pipeline.storage import Storage
from video_pipeline_airflow.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(900)]

SALVAGE_DAG = "video_pipeline_salvage"


def in_flight(fake: FakeRunway) -> int:
    by_status = fake.tasks_by_status
    return by_status["PENDING"] + by_status["THROTTLED"] + by_status["RUNNING"]


def set_paused(airflow: LocalAirflow, dag_id: str, paused: bool) -> None:
    response = airflow.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": paused})
    response.raise_for_status()


def prompts_posted(fake: FakeRunway, since: int = 0) -> list[str]:
    return [body["promptText"] for _, body in list(fake.task_bodies())[since:]]


def stop_job(job_id: str) -> dict[str, Any]:
    spec = six_segment_job(job_id, provider="runway", seed=1201)
    # Every image takes 10 s at the provider, whatever order the tasks submit in.
    spec["segments"] = [
        {"prompt": f"Shot {i}: a ferry at night [latency:10]", "duration_s": 2} for i in range(1, 5)
    ]
    return spec


def test_marking_a_run_failed_cancels_its_provider_tasks_and_keeps_finished_outputs(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=10.0, video_latency=1.0, concurrency=2)
    set_paused(airflow, SALVAGE_DAG, True)  # the sweep runs when this test says so, not on its 5-min tick
    try:
        job_id = "e2e-stop-spend"
        spec = stop_job(job_id)
        run_id = airflow.trigger(DAG_ID, spec)

        def two_running_two_waiting() -> bool:
            by_status = fake_runway.tasks_by_status
            return by_status["PENDING"] + by_status["RUNNING"] == 2 and by_status["THROTTLED"] == 2

        airflow.wait_until(
            two_running_two_waiting, 240, "2 image tasks running at the provider, 2 queued", 0.2
        )
        response = airflow.api("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})
        response.raise_for_status()
        stopped_at = time.monotonic()
        posts_at_stop = sum(fake_runway.stats()["posts"].values())
        assert airflow.run_state(DAG_ID, run_id) == "failed"
        time.sleep(3)
        print(f"\nafter the stop: generate_image {mapped_states(airflow, run_id, 'generate_image')}")

        # Nothing in Airflow cancels them (no failure callback for a run marked failed; the stop module that
        # would act on the cancelled triggers is not part of this branch): the first 2 finish at the provider.
        airflow.wait_until(
            lambda: fake_runway.tasks_by_status["SUCCEEDED"] >= 2, 60, "the first 2 images", 0.2
        )
        deletes_before_sweep = fake_runway.stats()["deletes"]
        downloads_before_sweep = fake_runway.stats()["downloads"]

        # The sweep (its next tick, here triggered by hand).
        sweep_at = time.monotonic()
        sweep = airflow.trigger(SALVAGE_DAG, {})
        set_paused(airflow, SALVAGE_DAG, False)
        airflow.wait_until(lambda: in_flight(fake_runway) == 0, 120, "no provider task in flight", 0.2)
        zero_at = time.monotonic()
        assert airflow.wait_for_run(SALVAGE_DAG, sweep, timeout=120) == "success"
        set_paused(airflow, SALVAGE_DAG, True)

        stats = fake_runway.stats()
        print(
            f"\nstop → first 2 SUCCEEDED at the provider: {sweep_at - stopped_at:.1f} s; sweep started → "
            f"in-flight 0: {zero_at - sweep_at:.1f} s (stop → 0: {zero_at - stopped_at:.1f} s); before the "
            f"sweep: {deletes_before_sweep} DELETEs, {downloads_before_sweep} downloads; after: {stats}"
        )
        assert sum(stats["posts"].values()) == posts_at_stop  # nothing submitted after the stop
        assert stats["tasks_created"] == {"gen4_image": 4}
        assert stats["tasks_by_status"]["SUCCEEDED"] >= 2
        assert (
            stats["deletes"]
            == stats["tasks_by_status"]["DELETED"]
            == 4 - stats["tasks_by_status"]["SUCCEEDED"]
        )
        manifest = manifest_of(local_storage, job_id)
        outcomes = {e.index or 0: e.event for e in manifest.spend if e.event in ("salvaged", "cancelled")}
        assert sorted(outcomes) == [1, 2, 3, 4]
        salvaged = sorted(i for i, event in outcomes.items() if event == "salvaged")
        cancelled = sorted(i for i, event in outcomes.items() if event == "cancelled")
        assert len(salvaged) == stats["tasks_by_status"]["SUCCEEDED"]
        assert all(e.refund == "unknown" for e in manifest.spend if e.event == "cancelled")
        assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "stopped")]
        assert manifest.credits_spent == stats["credits_spent"] == 4 * 5
        assert not list(local_storage.list(f"jobs/{job_id}/provider-tasks/"))

        # The same job again: the claim of the stopped run is taken over; the salvaged images come from the
        # cache; only the cancelled ones are paid for again.
        fake_runway.reset_counters()
        created_before = len(list(fake_runway.task_bodies()))
        rerun = airflow.trigger(DAG_ID, spec)
        decide_by_variable(airflow, rerun, job_id, "images", "reject")
        assert airflow.wait_for_run(DAG_ID, rerun, timeout=300) == "success"
        reposted = prompts_posted(fake_runway, created_before)
        print(f"re-run: {len(reposted)} new image submissions (salvaged {salvaged}, cancelled {cancelled})")
        assert sorted(p.split(":")[0] for p in reposted) == [f"Shot {i}" for i in cancelled]
        manifest = manifest_of(local_storage, job_id)
        assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "stopped"), (rerun, "rejected")]
        hits = {s.index: s.image_cache_hit for s in manifest.segments}
        assert [i for i, hit in hits.items() if hit] == salvaged
        assert in_flight(fake_runway) == 0
        assert not local_storage.exists(f"jobs/{job_id}/claim.json")  # released by the rejecting gate
        print(f"triggers told of the cancellation: {cancelled_trigger_logs(airflow)}")
    finally:
        set_paused(airflow, SALVAGE_DAG, False)


def cancelled_trigger_logs(airflow: LocalAirflow) -> int:
    """How often a Runway trigger ran its cancellation path (the seam for the Airflow-side stop module)."""
    text = "".join(p.read_text(errors="ignore") for p in airflow.home.joinpath("logs").rglob("*.log"))
    return text.count("is not installed, so the task is left for")


def test_the_next_run_salvages_what_a_stopped_run_left(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    """No sweep at all: the job's next run settles the stopped run's provider tasks before it starts."""
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=10.0, video_latency=1.0, concurrency=2)
    set_paused(airflow, SALVAGE_DAG, True)
    try:
        job_id = "e2e-stop-next-run"
        spec = stop_job(job_id)
        run_id = airflow.trigger(DAG_ID, spec)
        airflow.wait_until(
            lambda: (
                len(list(fake_runway.task_bodies())) == 4 and fake_runway.tasks_by_status["THROTTLED"] == 2
            ),
            240,
            "4 image tasks at the provider, 2 of them queued",
            0.2,
        )
        airflow.api(
            "PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"}
        ).raise_for_status()
        airflow.wait_until(
            lambda: fake_runway.tasks_by_status["SUCCEEDED"] >= 2, 60, "the first 2 images", 0.2
        )

        created_before = len(list(fake_runway.task_bodies()))
        rerun_at = time.monotonic()
        rerun = airflow.trigger(DAG_ID, spec)
        airflow.wait_until(
            lambda: in_flight(fake_runway) <= 2 and fake_runway.stats()["deletes"] >= 1,
            120,
            "the re-run's salvage",
            0.2,
        )
        print(f"\nre-run started → stopped run's leftovers settled: {time.monotonic() - rerun_at:.1f} s")
        decide_by_variable(airflow, rerun, job_id, "images", "reject")
        assert airflow.wait_for_run(DAG_ID, rerun, timeout=300) == "success"

        manifest = manifest_of(local_storage, job_id)
        first_run = {
            e.index: e.event
            for e in manifest.spend
            if e.run_id == run_id and e.event in ("salvaged", "cancelled")
        }
        salvaged = sorted(i or 0 for i, event in first_run.items() if event == "salvaged")
        cancelled = sorted(i or 0 for i, event in first_run.items() if event == "cancelled")
        assert len(salvaged) >= 2 and len(salvaged) + len(cancelled) == 4
        reposted = prompts_posted(fake_runway, created_before)
        assert sorted(p.split(":")[0] for p in reposted) == [f"Shot {i}" for i in cancelled]
        assert [i for i, s in enumerate(manifest.segments, 1) if s.image_cache_hit] == salvaged
        assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "stopped"), (rerun, "rejected")]
        assert in_flight(fake_runway) == 0
        print(f"salvaged {salvaged}, cancelled {cancelled}, fake: {fake_runway.stats()}")
    finally:
        set_paused(airflow, SALVAGE_DAG, False)
