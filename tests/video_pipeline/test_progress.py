from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from video_pipeline import progress
from video_pipeline.layout import JobLayout
from video_pipeline.progress import ProgressEvent, milestones, rebuild_progress, record_completion
from video_pipeline.storage import LocalStorage, Storage


def test_milestones() -> None:
    assert milestones(20, 20) == [5, 10, 15, 20]
    assert milestones(12, 12) == [5, 10, 12]
    assert milestones(4, 12) == []
    assert milestones(3, 3) == [3]


RUN = "manual__2026-11-30T09:00:00+00:00"


def run_concurrently(
    storage: Storage, total: int, workers: int, duplicates: int, run_id: str = RUN
) -> list[ProgressEvent]:
    order = list(range(1, total + 1)) + random.Random(1).sample(range(1, total + 1), duplicates)  # retries
    random.Random(2).shuffle(order)
    events: list[ProgressEvent] = []
    lock = threading.Lock()
    queue = iter(order)

    def worker() -> None:
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                return
            claimed = record_completion(storage, "job", "images", index, total, run_id=run_id)
            with lock:
                events.extend(claimed)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return events


# moto checks If-None-Match and then writes without a lock, so concurrent claims race inside moto itself
# (real S3 makes the conditional PUT atomic). Concurrency runs against local storage; S3 runs the same
# workload with one worker, which still exercises retries and out-of-order completion.
def workers_for(storage: Storage, wanted: int) -> int:
    return wanted if isinstance(storage, LocalStorage) else 1


def test_twenty_segments_four_workers_with_retries(storage: Storage) -> None:
    events = run_concurrently(storage, total=20, workers=workers_for(storage, 4), duplicates=6)
    assert sorted(e.completed for e in events) == [5, 10, 15, 20]
    assert [e.final for e in sorted(events, key=lambda e: e.completed)] == [False, False, False, True]
    summary = rebuild_progress(storage, "job")
    assert summary["stages"] == {"images": {"completed": 20, "total": 20, "complete": True}}
    on_disk = json.loads(storage.get_bytes("jobs/job/progress.json"))
    assert [e["completed"] for e in on_disk["events"]] == [5, 10, 15, 20]
    assert on_disk["events"][-1]["message"] == "images: 20/20 segments done — stage complete"


def test_total_not_a_multiple_of_five(storage: Storage) -> None:
    events = run_concurrently(storage, total=12, workers=workers_for(storage, 3), duplicates=3)
    assert sorted(e.completed for e in events) == [5, 10, 12]


def test_a_retry_reports_nothing_new(storage: Storage) -> None:
    assert [e.completed for e in record_completion(storage, "job", "clips", 1, 1, run_id=RUN)] == [1]
    assert record_completion(storage, "job", "clips", 1, 1, run_id=RUN) == []


def test_two_runs_of_one_job_each_count_their_own_segments(storage: Storage) -> None:
    """Seen: a re-run reported "10/10" when 5 were done (the first run's markers counted)."""
    first = run_concurrently(storage, total=10, workers=workers_for(storage, 3), duplicates=2, run_id=RUN)
    assert [(e.completed, e.total, e.final) for e in sorted(first, key=lambda e: e.completed)] == [
        (5, 10, False),
        (10, 10, True),
    ]
    rerun = "scheduled__2026-12-01T00:00:00+00:00"
    claimed = [record_completion(storage, "job", "images", i, 10, run_id=rerun) for i in range(1, 11)]
    assert [[e.completed for e in events] for events in claimed] == [[]] * 4 + [[5]] + [[]] * 4 + [[10]]
    assert {e.run_id for events in claimed for e in events} == {rerun}
    assert claimed[4][0].message == "images: 5/10 segments done"
    summary = json.loads(storage.get_bytes("jobs/job/progress.json"))
    assert summary["run_id"] == rerun  # progress.json is the current run's
    assert [e["completed"] for e in summary["events"]] == [5, 10]
    # the first run's milestones are kept, under its own scope
    earlier = rebuild_progress(storage, "job", RUN)
    assert earlier["run_id"] == RUN and earlier["stages"] == {
        "images": {"completed": 10, "total": 10, "complete": True}
    }


def test_the_current_run_after_five_of_ten(storage: Storage) -> None:
    for index in range(1, 11):
        record_completion(storage, "job", "images", index, 10, run_id="run-1")
    for index in range(1, 6):
        record_completion(storage, "job", "images", index, 10, run_id="run-2")
    assert rebuild_progress(storage, "job")["stages"] == {
        "images": {"completed": 5, "total": 10, "complete": False}
    }


def test_a_redo_round_has_its_own_milestones(storage: Storage) -> None:
    for index in range(1, 6):
        record_completion(storage, "job", "images", index, 5, run_id=RUN)
    redo = [record_completion(storage, "job", "images", i, 2, run_id=RUN, round_=2) for i in (2, 4)]
    assert [[(e.completed, e.round) for e in events] for events in redo] == [[], [(2, 2)]]
    assert redo[1][0].message == "images (redo for round 2): 2/2 segments done — all redone"
    summary = rebuild_progress(storage, "job")
    assert summary["stages"] == {"images": {"completed": 5, "total": 5, "complete": True}}
    assert summary["redos"] == {"images": {"round": 2, "completed": 2, "total": 2, "complete": True}}


@pytest.mark.parametrize("run_id", ["manual__2026-11-30T09:00:00.123+00:00", "..", "a/b/../c", "ü" * 300, ""])
def test_any_run_id_gives_a_valid_key_of_its_own(storage: Storage, run_id: str) -> None:
    assert [e.completed for e in record_completion(storage, "job", "clips", 1, 1, run_id=run_id)] == [1]
    assert [e.completed for e in record_completion(storage, "job", "clips", 1, 1, run_id=run_id + "x")] == [1]


def test_a_hundred_segments_eight_workers_with_retries(storage: Storage) -> None:
    events = run_concurrently(storage, total=100, workers=workers_for(storage, 8), duplicates=30)
    assert sorted(e.completed for e in events) == list(range(5, 101, 5))
    assert [e.completed for e in events if e.final] == [100]


class NoListing:
    """Storage that refuses listings and counts the calls a completion makes."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.calls = 0

    def list(self, prefix: str) -> None:
        raise AssertionError(f"a completion listed {prefix}")

    def __getattr__(self, name: str) -> object:
        self.calls += 1
        return getattr(self.storage, name)


def completion_calls(storage: Any, counted: NoListing, order: list[int], run_id: str) -> list[int]:
    calls = []
    for index in order:
        counted.calls = 0
        record_completion(storage, "job", "clips", index, len(order), run_id=run_id)
        calls.append(counted.calls)
    return calls


def test_a_completion_lists_nothing_and_its_calls_grow_logarithmically(tmp_path: Path) -> None:
    counted = NoListing(LocalStorage(tmp_path))
    storage: Any = counted
    # measured: in order (the guess, the segment's number, is right) at most 9 calls whatever N; in reverse
    # order (the guess as far off as it gets) at most 21 at N = 100 and 27 at N = 1000
    for n, far_off in ((100, 21), (1000, 27)):
        in_order = completion_calls(storage, counted, list(range(1, n + 1)), f"in-order-{n}")
        reverse = completion_calls(storage, counted, list(range(n, 0, -1)), f"reverse-{n}")
        assert max(in_order) <= 9 and max(reverse) <= far_off


def test_progress_json_follows_each_milestone_without_rereading_the_events(storage: Storage) -> None:
    for index in range(1, 13):
        record_completion(storage, "job", "images", index, 12, run_id=RUN)
        on_disk = json.loads(storage.get_bytes("jobs/job/progress.json")) if index >= 5 else None
        if on_disk is not None:
            assert on_disk["stages"]["images"]["completed"] == (index // 5) * 5 if index < 12 else 12
    incremental = json.loads(storage.get_bytes("jobs/job/progress.json"))
    assert incremental == rebuild_progress(storage, "job", RUN)


def test_a_retry_after_the_number_was_taken_but_not_recorded_counts_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(1, 5):
        record_completion(storage, "job", "images", index, 10, run_id=RUN)
    original = progress._Counter.record

    def crash(self: Any, index: int, number: int) -> None:
        raise RuntimeError("worker lost")

    monkeypatch.setattr(progress._Counter, "record", crash)
    with pytest.raises(RuntimeError):  # segment 7 took number 5 (a milestone), then its worker died
        record_completion(storage, "job", "images", 7, 10, run_id=RUN)
    monkeypatch.setattr(progress._Counter, "record", original)
    assert [e.completed for e in record_completion(storage, "job", "images", 6, 10, run_id=RUN)] == []
    retried = record_completion(storage, "job", "images", 7, 10, run_id=RUN)
    assert [e.completed for e in retried] == [5]  # its own number found again, its milestone reported
    assert record_completion(storage, "job", "images", 7, 10, run_id=RUN) == []
    finals = [record_completion(storage, "job", "images", i, 10, run_id=RUN) for i in (5, 8, 9, 10)]
    assert [[e.completed for e in events] for events in finals] == [[], [], [], [10]]


def test_a_retry_after_the_segment_was_marked_but_no_number_taken_counts_once(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(self: Any, index: int, number: int) -> int:
        raise RuntimeError("worker lost")

    original = progress._Counter.take
    monkeypatch.setattr(progress._Counter, "take", crash)
    with pytest.raises(RuntimeError):
        record_completion(storage, "job", "clips", 1, 5, run_id=RUN)
    monkeypatch.setattr(progress._Counter, "take", original)
    claimed = [record_completion(storage, "job", "clips", i, 5, run_id=RUN) for i in (2, 3, 1, 1, 4, 5)]
    assert [[e.completed for e in events] for events in claimed] == [[], [], [], [], [], [5]]


def test_a_retry_after_the_milestone_was_not_written_reports_it(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for index in range(1, 5):
        record_completion(storage, "job", "images", index, 5, run_id=RUN)
    original = JobLayout.progress_event

    def crash(*args: Any) -> str:
        raise RuntimeError("worker lost")

    monkeypatch.setattr(JobLayout, "progress_event", crash)  # after the number was taken and recorded
    with pytest.raises(RuntimeError):
        record_completion(storage, "job", "images", 5, 5, run_id=RUN)
    monkeypatch.setattr(JobLayout, "progress_event", original)
    assert [e.completed for e in record_completion(storage, "job", "images", 5, 5, run_id=RUN)] == [5]
    assert record_completion(storage, "job", "images", 5, 5, run_id=RUN) == []
