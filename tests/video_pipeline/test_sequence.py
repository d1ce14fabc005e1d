from __future__ import annotations

from pathlib import Path

import pytest

from video_pipeline.sequence import last_taken
from video_pipeline.storage import LocalStorage, Storage


class Counted:
    """A storage that counts ``exists`` calls and refuses listings (the point is never to list)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.exists_calls = 0

    def exists(self, key: str) -> bool:
        self.exists_calls += 1
        return self.storage.exists(key)

    def list(self, prefix: str) -> None:
        raise AssertionError(f"listed {prefix}")


def key(n: int) -> str:
    return f"seq/{n:05d}"


def fill(storage: Storage, count: int) -> None:
    for n in range(1, count + 1):
        assert storage.create_exclusive(key(n), b"")


def test_finds_the_last_taken_number_from_any_guess(storage: Storage) -> None:
    for count in range(34):
        for guess in (1, 2, 5, 8, 16, 17, 32, 33, 34, 100):
            assert last_taken(storage, key, guess) == count, (count, guess)
        assert storage.create_exclusive(key(count + 1), b"")


def test_a_guess_below_one_starts_at_one(storage: Storage) -> None:
    fill(storage, 3)
    assert last_taken(storage, key, 0) == last_taken(storage, key, -5) == 3


@pytest.mark.parametrize(("count", "guess", "most"), [(1000, 1, 21), (1000, 990, 9), (1000, 1000, 3)])
def test_it_takes_logarithmically_many_calls(tmp_path: Path, count: int, guess: int, most: int) -> None:
    storage = LocalStorage(tmp_path)
    fill(storage, count)
    counted = Counted(storage)
    assert last_taken(counted, key, guess) == count  # type: ignore[arg-type]
    assert counted.exists_calls <= most
