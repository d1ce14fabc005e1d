"""One active run per job: the claim, its release, and the takeover of a claim whose run ended."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from video_pipeline.claims import JobClaimed, RunIsActive, claim_job, current_claim, release_claim
from video_pipeline.layout import JobLayout
from video_pipeline.storage import Storage, open_storage

DAG = "video_generation"


def always(active: bool) -> RunIsActive:
    return lambda dag_id, run_id: active


def test_a_second_run_is_refused_naming_the_holder(storage: Storage) -> None:
    first = claim_job(storage, "job", "manual__2026-01-01T00:00:00+00:00", DAG, always(True))
    assert first.took_over_from is None
    with pytest.raises(JobClaimed, match=r"already being made by run 'manual__2026-01-01T00:00:00\+00:00'"):
        claim_job(storage, "job", "manual__2026-01-02", DAG, always(True))
    # A retry of the holder's own first task keeps the claim.
    assert claim_job(storage, "job", first.run_id, DAG, always(True)).run_id == first.run_id
    # Other jobs are independent.
    assert (
        claim_job(storage, "other-job", "manual__2026-01-02", DAG, always(True)).run_id
        == "manual__2026-01-02"
    )


def test_release_frees_the_job_and_only_the_holder_can_release(storage: Storage) -> None:
    claim_job(storage, "job", "run-a", DAG, always(True))
    assert release_claim(storage, "job", "run-b") is False
    assert current_claim(storage, "job") is not None
    assert release_claim(storage, "job", "run-a") is True
    assert current_claim(storage, "job") is None
    assert claim_job(storage, "job", "run-b", DAG, always(True)).run_id == "run-b"


def test_a_claim_whose_run_ended_is_taken_over(storage: Storage) -> None:
    claim_job(storage, "job", "run-a", DAG, always(True))
    asked: list[tuple[str | None, str]] = []

    def ended(dag_id: str | None, run_id: str) -> bool:
        asked.append((dag_id, run_id))
        return False

    taken = claim_job(storage, "job", "run-b", DAG, ended)
    assert (taken.run_id, taken.took_over_from) == ("run-b", "run-a")
    assert asked == [(DAG, "run-a")]
    holder = current_claim(storage, "job")
    assert holder is not None and holder.run_id == "run-b"
    assert release_claim(storage, "job", "run-a") is False  # the stale run's late release changes nothing


def test_exactly_one_run_takes_over_a_stale_claim(tmp_path: Path) -> None:
    root = tmp_path.as_uri()
    claim_job(open_storage(root), "job", "stale", DAG, always(True))
    barrier = threading.Barrier(8)
    won: list[str] = []
    refused: list[str] = []

    def run(n: int) -> None:
        storage = open_storage(root)
        barrier.wait()
        try:
            won.append(claim_job(storage, "job", f"run-{n}", DAG, lambda d, r: r != "stale").run_id)
        except JobClaimed as exc:
            refused.append(exc.holder.run_id)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(refused) == 7
    assert set(refused) == set(won)  # every refused run was told who holds the job now
    holder = current_claim(open_storage(root), "job")
    assert holder is not None and holder.run_id == won[0] and holder.took_over_from == "stale"


def test_a_taker_that_died_before_writing_the_claim_finishes_on_its_retry(storage: Storage) -> None:
    claim_job(storage, "job", "stale", DAG, always(True))
    marker = JobLayout("job").claim_takeover("stale")
    storage.create_exclusive(marker, b'{"run_id": "run-b", "claimed_at": "2026-01-01T00:00:00Z"}')
    assert claim_job(storage, "job", "run-b", DAG, always(False)).run_id == "run-b"
    holder = current_claim(storage, "job")
    assert holder is not None and holder.run_id == "run-b"
    with pytest.raises(JobClaimed, match="run 'run-b'"):
        claim_job(storage, "job", "run-c", DAG, always(True))
