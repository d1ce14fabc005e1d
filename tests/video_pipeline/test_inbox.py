from __future__ import annotations

import json
from pathlib import Path

import pytest

from video_pipeline import inbox
from video_pipeline.storage import LocalStorage


def spec(job_id: str, **extra: object) -> bytes:
    return json.dumps({"job_id": job_id, "title": job_id, "segments": [{"prompt": "p"}], **extra}).encode()


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    store = LocalStorage(tmp_path)
    store.put_bytes("inbox/a.json", spec("job-a"))
    store.put_bytes("inbox/b.json", spec("job-b", ratio="1280:720"))
    store.put_bytes("inbox/c.json", spec("job-c", seed=3))
    store.put_bytes("inbox/bad-json.json", b"{not json")
    store.put_bytes("inbox/bad-field.json", spec("../escape"))
    store.put_bytes("inbox/notes.txt", b"ignored: not a .json")
    return store


def test_intake_moves_valid_and_invalid_specs(storage: LocalStorage) -> None:
    accepted, rejected = inbox.intake(storage)
    assert [a.name for a in accepted] == ["a.json", "b.json", "c.json"]
    assert {r.name for r in rejected} == {"bad-json.json", "bad-field.json"}
    assert sorted(storage.list("processing/")) == [
        "processing/a.json",
        "processing/b.json",
        "processing/c.json",
    ]
    assert "job_id" in storage.get_bytes("inbox/rejected/bad-field.json.error.txt").decode()
    assert "JSON" in storage.get_bytes("inbox/rejected/bad-json.json.error.txt").decode()
    assert storage.get_bytes("inbox/rejected/bad-json.json") == b"{not json"  # kept, byte for byte
    assert inbox.pending_specs(storage) == []
    assert storage.exists("inbox/notes.txt")


def test_second_intake_finds_nothing(storage: LocalStorage) -> None:
    inbox.intake(storage)
    assert inbox.intake(storage) == ([], [])


def test_run_id_is_stable_per_content() -> None:
    a = json.loads(spec("job-a"))
    assert inbox.run_id_for(a) == inbox.run_id_for(dict(a))
    assert inbox.run_id_for(a) != inbox.run_id_for({**a, "seed": 9})
    assert inbox.run_id_for(a).startswith("nightly__job-a__")


def test_settle(storage: LocalStorage) -> None:
    inbox.intake(storage)
    assert inbox.settle(storage, "a.json", "done") == "done/a.json"
    assert inbox.settle(storage, "b.json", "failed") == "failed/b.json"
    assert storage.exists("done/a.json") and storage.exists("failed/b.json")
    assert not storage.exists("processing/a.json")
