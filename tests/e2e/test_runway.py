"""The Runway path on real Airflow processes against the fake Runway server (real HTTP), with faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import (
    DAG_ID,
    RUNWAY_CANARY_KEY,
    decide_by_variable,
    manifest_of,
    six_segment_job,
)
from video_pipeline.media.probe import probe
from video_pipeline.storage import Storage
from video_pipeline_dev.fake_runway import FakeRunway
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def created(fake: FakeRunway, model: str) -> int:
    return int(fake.stats()["tasks_created"].get(model, 0))


def test_runway_job_with_faults_pays_once_per_segment(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway, tmp_path: Path
) -> None:
    # 429 and 5xx on every call, dropped connections on polls. On the task-creating POSTs only the answers that
    # prove nothing was created are injected (429, 503 with Retry-After): a dropped connection or a 500/502/504
    # after a POST was sent is ambiguous (Runway may have billed it) and deliberately fails the segment instead
    # of retrying (covered against the fake in tests/video_pipeline/providers/test_runway.py).
    fake_runway.reset(
        api_key=RUNWAY_CANARY_KEY,
        image_latency=1.0,
        video_latency=2.0,
        concurrency=2,
        rate_429=0.1,
        rate_5xx=0.1,
        create_5xx_statuses=(503,),
        retry_after_on_503=True,
        rate_reset=0.1,
        rate_throttled=0.1,
        reset_paths=("/v1/tasks",),
        seed=7,
    )
    job_id = "e2e-runway"
    spec = six_segment_job(job_id, provider="runway", seed=31, budget_credits=1000)
    spec["segments"] = spec["segments"] * 2  # 12 segments (repeated prompts get different seeds)
    run_id = airflow.trigger(DAG_ID, spec)
    decide_by_variable(airflow, run_id, job_id, "images", "approve")
    decide_by_variable(airflow, run_id, job_id, "clips", "approve")
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=400) == "success"

    stats = fake_runway.stats()
    assert sum(stats["faults"].values()) > 0, "no faults were injected; the test proves nothing"
    assert created(fake_runway, "gen4_image") == 12
    assert created(fake_runway, "gen4_turbo") == 12
    assert stats["duplicate_submissions"] == 0
    final = probe(local_storage.download_to(f"jobs/{job_id}/final.mp4", tmp_path / "final.mp4"))
    assert abs(final.duration_s - 24.0) <= 1.2 and (final.width, final.height) == (1280, 720)

    polls = list(stats["polls"].values())
    print(
        f"\nRunway e2e: faults {stats['faults']}, POSTs {stats['posts']}, polls/task mean "
        f"{sum(polls) / len(polls):.1f} max {max(polls)}, credits fake {stats['credits_spent']}"
    )
    manifest = manifest_of(local_storage, job_id)
    print(f"credits estimate {manifest.credits_estimate}, manifest spent {manifest.credits_spent}")
    assert manifest.credits_estimate == manifest.credits_spent == stats["credits_spent"]
    assert all(s.image_task_id and s.clip_task_id for s in manifest.segments)
    assert RUNWAY_CANARY_KEY not in manifest.to_json().decode()

    # Same inputs again: everything comes from the content-addressed cache, zero POSTs.
    fake_runway.reset_counters()
    rerun = airflow.trigger(DAG_ID, spec)
    decide_by_variable(airflow, rerun, job_id, "images", "approve")
    decide_by_variable(airflow, rerun, job_id, "clips", "approve")
    assert airflow.wait_for_run(DAG_ID, rerun, timeout=300) == "success"
    assert fake_runway.stats()["posts"] == {}

    # Neither the key nor a signed output URL reached a log (task, trigger, scheduler or api-server logs).
    secrets = (RUNWAY_CANARY_KEY, "?sig=")
    leaked = [
        (p.name, secret)
        for p in airflow.home.joinpath("logs").rglob("*")
        if p.is_file()
        for secret in secrets
        if secret in p.read_text(errors="ignore")
    ]
    assert leaked == []


def test_budget_refused_before_any_spend(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset_counters()
    spec = six_segment_job("e2e-runway-budget", provider="runway", budget_credits=50)
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=180) == "failed"
    assert airflow.task_state(DAG_ID, run_id, "validate_job") == "failed"
    assert fake_runway.stats()["posts"] == {}


def test_a_failed_segment_fails_only_its_task(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=1.0, video_latency=2.0, concurrency=2)
    spec = six_segment_job("e2e-runway-unsafe", provider="runway", seed=77, budget_credits=1000)
    spec["segments"][2]["prompt"] = "Scene 3 [fail:SAFETY.INPUT.TEXT]"
    run_id = airflow.trigger(DAG_ID, spec)
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "failed"
    states = {
        ti["map_index"]: ti["state"]
        for ti in airflow.task_instances(DAG_ID, run_id)
        if ti["task_id"] == "generate_image"
    }
    assert states == {0: "success", 1: "success", 2: "failed", 3: "success", 4: "success", 5: "success"}
    assert airflow.task_state(DAG_ID, run_id, "images_gate") == "upstream_failed"
    assert airflow.task_state(DAG_ID, run_id, "assemble") == "upstream_failed"
    assert fake_runway.stats()["tasks_created"] == {"gen4_image": 6}  # the refused prompt was not retried
    log = (
        airflow.home
        / "logs"
        / f"dag_id={DAG_ID}"
        / f"run_id={run_id}"
        / "task_id=generate_image"
        / "map_index=2"
    )
    text = "".join(p.read_text() for p in log.glob("attempt=*.log"))
    assert "SAFETY.INPUT.TEXT" in text and "not retried" in text
    # The DAG's failure callback (run by the dag-processor) ends the run: recorded, and the job released.
    job_id = spec["job_id"]
    airflow.wait_until(
        lambda: not local_storage.exists(f"jobs/{job_id}/claim.json"), 120, "the job's release", 1.0
    )
    manifest = manifest_of(local_storage, job_id)
    # (The failure callback and, where the stop module's listener is installed, its report: whichever is first.)
    assert [(r.run_id, r.status) for r in manifest.runs] == [(run_id, "failed")]


def validate_log(airflow: LocalAirflow, run_id: str) -> str:
    folder = airflow.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / "task_id=validate_job"
    return "".join(p.read_text() for p in folder.glob("attempt=*.log"))


def test_two_runs_of_one_job_at_once_one_is_refused_and_nothing_is_paid_twice(
    airflow: LocalAirflow, local_storage: Storage, fake_runway: FakeRunway
) -> None:
    fake_runway.reset(api_key=RUNWAY_CANARY_KEY, image_latency=1.0, video_latency=2.0, concurrency=2)
    job_id = "e2e-runway-twice"
    spec = six_segment_job(job_id, provider="runway", seed=91, budget_credits=1000)
    spec["segments"] = spec["segments"][:3]
    first, second = airflow.trigger(DAG_ID, spec), airflow.trigger(DAG_ID, spec)

    def validated() -> dict[str, str | None] | None:
        states = {run: airflow.task_state(DAG_ID, run, "validate_job") for run in (first, second)}
        return states if all(s in ("success", "failed") for s in states.values()) else None

    states = airflow.wait_until(validated, 180, "both runs' validate_job")
    assert sorted(str(s) for s in states.values()) == ["failed", "success"], states
    winner = next(run for run, state in states.items() if state == "success")
    loser = next(run for run, state in states.items() if state == "failed")
    assert airflow.wait_for_run(DAG_ID, loser, timeout=120) == "failed"
    assert f"already being made by run '{winner}'" in validate_log(airflow, loser)
    assert airflow.task_state(DAG_ID, loser, "generate_image") in (None, "upstream_failed")

    decide_by_variable(airflow, winner, job_id, "images", "approve")
    decide_by_variable(airflow, winner, job_id, "clips", "approve")
    assert airflow.wait_for_run(DAG_ID, winner, timeout=300) == "success"
    assert created(fake_runway, "gen4_image") == 3 and created(fake_runway, "gen4_turbo") == 3
    assert fake_runway.stats()["duplicate_submissions"] == 0
    paid = fake_runway.stats()["credits_spent"]
    assert paid == 3 * 5 + 3 * 10

    # The job was released at publish: a later run takes it, pays nothing (cache), and both runs'
    # histories (run records, decisions, spend) stay in the manifest.
    fake_runway.reset_counters()
    later = airflow.trigger(DAG_ID, spec)
    decide_by_variable(airflow, later, job_id, "images", "approve")
    decide_by_variable(airflow, later, job_id, "clips", "approve")
    assert airflow.wait_for_run(DAG_ID, later, timeout=300) == "success"
    assert fake_runway.stats()["posts"] == {}
    manifest = manifest_of(local_storage, job_id)
    assert [(r.run_id, r.status) for r in manifest.runs] == [(winner, "succeeded"), (later, "succeeded")]
    assert [(d.run_id, d.stage) for d in manifest.decisions] == [
        (winner, "images"),
        (winner, "clips"),
        (later, "images"),
        (later, "clips"),
    ]
    assert manifest.credits_spent == paid
    assert [r.credits_spent for r in manifest.runs] == [45, 0]
    assert not local_storage.exists(f"jobs/{job_id}/claim.json")
