"""Provider-task records and the spend ledger: exclusive records, atomic reservations, job scoping, stops."""

from __future__ import annotations

import contextlib
import multiprocessing
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from video_pipeline.layout import JobLayout
from video_pipeline.manifest import begin_run, load_manifest
from video_pipeline.models import JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage, Storage, open_storage
from video_pipeline.submissions import (
    BudgetExceeded,
    Submission,
    clear_submission,
    create_submission,
    credits_spent,
    forget_if_settled,
    jobs_in_flight,
    ledger,
    load_submission,
    record_spend_event,
    release_credits,
    replace_submission,
    replaceable,
    report_ambiguous,
    reserve_credits,
    run_stop_reason,
    run_submissions,
    stop_job,
    stop_run,
    update_submission,
)

DIGEST = "ab" * 32


def record(
    job_id: str = "job", run_id: str = "run-1", credits: float = 25, index: int = 1, **kw: object
) -> Submission:
    return Submission.model_validate(
        {
            "provider": "runway",
            "job_id": job_id,
            "run_id": run_id,
            "index": index,
            "seed": 1,
            "credits": credits,
            "digest": DIGEST,
            **kw,
        }
    )


# ------------------------------------------------------------------------------------------------ ledger


def test_reservations_carry_the_running_total_and_releases_give_back(storage: Storage) -> None:
    first = reserve_credits(storage, "job", 100, record(credits=25))
    second = reserve_credits(storage, "job", 100, record(credits=40, index=2))
    assert (first.seq, first.total, second.seq, second.total) == (1, 25, 2, 65)
    with pytest.raises(BudgetExceeded, match="budget_credits 100 would be exceeded: 65"):
        reserve_credits(storage, "job", 100, record(credits=40, index=3))
    released = release_credits(storage, record(credits=40, index=2), "refused by the provider")
    assert (released.seq, released.credits, released.total) == (3, -40, 25)
    note = record_spend_event(storage, record(), "cancelled", refund="unknown")
    assert (note.credits, note.total, note.paid, note.refund) == (0, 25, 25, "unknown")
    assert credits_spent(storage, "job") == 25 == sum(e.credits for e in ledger(storage, "job"))
    assert [e.seq for e in ledger(storage, "job")] == [1, 2, 3, 4]


def test_no_budget_means_no_limit(storage: Storage) -> None:
    for n in range(5):
        reserve_credits(storage, "job", None, record(credits=1000, index=n + 1))
    assert credits_spent(storage, "job") == 5000


class NoListing:
    """Storage that refuses listings and counts the other calls."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls = 0

    def list(self, prefix: str) -> None:
        raise AssertionError(f"listed {prefix}")

    def __getattr__(self, name: str) -> object:
        self.calls += 1
        return getattr(self.storage, name)


def test_the_budget_check_finds_the_latest_entry_without_listing_the_ledger(tmp_path: Path) -> None:
    counted = NoListing(LocalStorage(tmp_path))
    storage: Any = counted
    calls = {}
    for n in range(1, 1025):
        counted.calls = 0
        reserve_credits(storage, "job", 2000, record(credits=1, index=n))
        calls[n] = counted.calls
    assert credits_spent(storage, "job") == 1024
    # O(log n): a HEAD per power of two and as many to bisect, one read, one create
    assert calls[2] <= 6 and calls[1024] <= 2 * 11 + 3
    with pytest.raises(BudgetExceeded, match="1024 spent or reserved"):
        reserve_credits(storage, "job", 1024, record(credits=1, index=1))


def race_reservations(root: str, budget: int, cost: float, start: threading.Barrier | None) -> bool:
    storage = open_storage(root)
    if start is not None:
        start.wait()
    try:
        reserve_credits(storage, "job", budget, record(credits=cost))
        return True
    except BudgetExceeded:
        return False


def _process_reservation(root: str, budget: int, cost: float, barrier: object, results: object) -> None:
    barrier.wait()  # type: ignore[attr-defined]
    results.put(race_reservations(root, budget, cost, None))  # type: ignore[attr-defined]


def assert_consistent(storage: Storage, budget: float) -> None:
    entries = ledger(storage, "job")
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))  # no gap, no duplicate
    running = 0.0
    for entry in entries:  # each writer had seen every entry before its own
        running += entry.credits
        assert entry.total == pytest.approx(running)
        assert entry.total <= budget + 1e-9
    assert credits_spent(storage, "job") == pytest.approx(running)


class RacedStorage(LocalStorage):
    """Local storage where another writer reserves credits just before each of our first ``races`` ledger
    writes: the interleaving that check-then-act gets wrong, made deterministic."""

    def __init__(self, root: Path, races: int) -> None:
        super().__init__(root)
        self.races = races

    def create_exclusive(self, key: str, data: bytes) -> bool:
        if "/spend/" in key and self.races > 0:
            self.races -= 1
            with contextlib.suppress(BudgetExceeded):
                reserve_credits(LocalStorage(self.root), "job", 50, record(credits=25, index=9))
        return super().create_exclusive(key, data)


def test_a_writer_that_loses_the_race_rereads_and_takes_the_next_entry(tmp_path: Path) -> None:
    storage = RacedStorage(tmp_path, races=1)
    reserve_credits(storage, "job", 50, record(credits=25))  # lost entry 1 to the other writer, took entry 2
    assert [(e.seq, e.index, e.total) for e in ledger(storage, "job")] == [(1, 9, 25), (2, 1, 50)]
    assert_consistent(storage, 50)


def test_a_writer_that_loses_the_budget_in_the_race_is_refused(tmp_path: Path) -> None:
    storage = RacedStorage(tmp_path, races=2)
    with pytest.raises(BudgetExceeded, match="50 spent or reserved"):
        reserve_credits(storage, "job", 50, record(credits=25))  # the other writer took 1 and 2 first
    assert [(e.seq, e.index, e.total) for e in ledger(storage, "job")] == [(1, 9, 25), (2, 9, 50)]
    assert_consistent(storage, 50)


def test_threads_racing_for_the_budget_reserve_exactly_what_fits(tmp_path: Path) -> None:
    """Four (here eight) tasks with budget 50 and cost 25 once spent 100: check-then-act."""
    threads, results = [], []
    barrier = threading.Barrier(8)
    for _ in range(8):
        t = threading.Thread(
            target=lambda: results.append(race_reservations(tmp_path.as_uri(), 50, 25, barrier))
        )
        threads.append(t)
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 6 + [True] * 2
    storage = open_storage(tmp_path.as_uri())
    assert credits_spent(storage, "job") == 50
    assert_consistent(storage, 50)


def test_processes_racing_for_the_budget_reserve_exactly_what_fits(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(6), ctx.Queue()
    procs = [
        ctx.Process(target=_process_reservation, args=(tmp_path.as_uri(), 50, 25, barrier, results))
        for _ in range(6)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes == [False] * 4 + [True] * 2
    storage = open_storage(tmp_path.as_uri())
    assert credits_spent(storage, "job") == 50
    assert_consistent(storage, 50)
    # The manifest's credits_spent is the ledger's sum.
    spec = JobSpec.model_validate({"job_id": "job", "title": "t", "segments": [{"prompt": "p"}]})
    begin_run(storage, spec, "run-1", segments_for(spec), 0)
    manifest = load_manifest(storage, "job")
    assert manifest is not None
    assert manifest.credits_spent == sum(e.credits for e in manifest.spend) == 50


@pytest.mark.parametrize("seed", range(6))
def test_random_concurrent_reservations_and_releases_never_pass_the_budget(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    budget = rng.randint(10, 120)
    costs = [rng.choice([5, 8, 10, 12.5, 25, 40]) for _ in range(rng.randint(3, 10))]
    release = [rng.random() < 0.3 for _ in costs]
    barrier = threading.Barrier(len(costs))
    won: list[float] = []

    def work(n: int) -> None:
        storage = open_storage(tmp_path.as_uri())
        barrier.wait()
        try:
            reserve_credits(storage, "job", budget, record(credits=costs[n], index=n + 1))
        except BudgetExceeded:
            return
        if release[n]:
            release_credits(storage, record(credits=costs[n], index=n + 1), "POST refused")
        else:
            won.append(costs[n])

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(costs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    storage = open_storage(tmp_path.as_uri())
    assert_consistent(storage, budget)
    assert credits_spent(storage, "job") == pytest.approx(sum(won))


# --------------------------------------------------------------------------------- provider-task records


def test_one_record_per_output_however_many_attempts_race(tmp_path: Path) -> None:
    barrier = threading.Barrier(8)
    wins: list[str] = []

    def attempt(n: int) -> None:
        storage = open_storage(tmp_path.as_uri())
        draft = record(run_id=f"run-{n}")
        barrier.wait()
        if create_submission(storage, draft):
            wins.append(draft.record_id)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    stored = load_submission(open_storage(tmp_path.as_uri()), "job", "images", DIGEST)
    assert stored is not None and stored.record_id == wins[0]


def test_records_are_scoped_to_their_job_and_name_their_run(storage: Storage) -> None:
    a, b = record(job_id="job-a", run_id="a1"), record(job_id="job-b", run_id="b1")
    assert create_submission(storage, a) and create_submission(storage, b)  # same digest, two jobs
    assert JobLayout("job-a").provider_task("images", DIGEST).startswith("jobs/job-a/")
    loaded_a = load_submission(storage, "job-a", "images", DIGEST)
    loaded_b = load_submission(storage, "job-b", "images", DIGEST)
    assert loaded_a is not None and loaded_a.run_id == "a1"
    assert loaded_b is not None and loaded_b.run_id == "b1"
    assert [r.record_id for r in run_submissions(storage, "job-a", "a1")] == [a.record_id]
    assert run_submissions(storage, "job-a", "b1") == []
    assert sorted(jobs_in_flight(storage)) == ["job-a", "job-b"]


def test_clear_removes_only_the_same_record(storage: Storage) -> None:
    old = record()
    assert create_submission(storage, old)
    newer = record()
    update_submission(storage, newer)  # e.g. replaced by a later attempt
    assert clear_submission(storage, old) is False
    assert load_submission(storage, "job", "images", DIGEST) == newer
    assert clear_submission(storage, newer) is True
    assert load_submission(storage, "job", "images", DIGEST) is None


def test_an_ambiguous_record_is_replaced_by_exactly_one_attempt(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    stuck = record()
    assert create_submission(storage, stuck)
    assert not replaceable(storage, stuck)  # "submitting": someone may be POSTing
    report_ambiguous(storage, stuck)
    assert replaceable(storage, stuck)
    barrier = threading.Barrier(6)
    wins: list[str] = []

    def attempt() -> None:
        draft = record(run_id="run-2")
        barrier.wait()
        if replace_submission(open_storage(tmp_path.as_uri()), stuck, draft):
            wins.append(draft.record_id)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    current = load_submission(storage, "job", "images", DIGEST)
    assert current is not None and current.record_id == wins[0]


def test_the_in_flight_index_forgets_a_job_only_when_it_has_no_records(storage: Storage) -> None:
    r = record()
    create_submission(storage, r)
    assert forget_if_settled(storage, "job") is False
    assert jobs_in_flight(storage) == ["job"]
    clear_submission(storage, r)
    assert forget_if_settled(storage, "job") is True
    assert jobs_in_flight(storage) == []


def test_stops_are_per_run_or_for_the_whole_job(storage: Storage) -> None:
    assert run_stop_reason(storage, "job", "run-1") is None
    stop_run(storage, "job", "manual__2026-01-01T00:00:00+00:00", "stopped by a person")
    assert run_stop_reason(storage, "job", "manual__2026-01-01T00:00:00+00:00") == "stopped by a person"
    assert run_stop_reason(storage, "job", "run-1") is None
    stop_job(storage, "job", "no credits")
    assert run_stop_reason(storage, "job", "run-1") == "no credits"
