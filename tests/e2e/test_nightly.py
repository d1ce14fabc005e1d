"""The nightly batch DAG on real Airflow: an inbox of 3 valid specs and hostile files (malformed, invalid,
nested too deep, a link to a secret outside the root, a fifo) → 3 runs, every bad file rejected with its
reason and the batch unharmed; a second night with the same names → nothing overwritten, nothing run twice."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import six_segment_job
from video_pipeline.storage import LocalStorage, Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
NIGHTLY = "video_generation_nightly"
STAMPED = re.compile(r"(?P<stem>.*)\.\d{8}T\d{6}Z-[0-9a-f]{6}\.json")


def video_runs(airflow: LocalAirflow) -> list[str]:
    """This test's runs from the inbox (its jobs are ``nightly-<n>``; the arrival test's share the prefix)."""
    response = airflow.api("GET", "/api/v2/dags/video_generation/dagRuns", params={"limit": 200})
    response.raise_for_status()
    return sorted(
        r["dag_run_id"]
        for r in response.json()["dag_runs"]
        if r["dag_run_id"].startswith("nightly__nightly-")
    )


def by_original_name(storage: LocalStorage, folder: str) -> dict[str, list[str]]:
    """Original inbox name → the keys it is kept under in ``folder`` (error files aside; links and fifos too)."""
    found: dict[str, list[str]] = {}
    for key in sorted([*storage.list(folder), *storage.list_non_regular(folder)]):
        name = key[len(folder) :]
        if "/" in name or name.endswith(".error.txt"):
            continue
        match = STAMPED.fullmatch(name)
        assert match, key
        found.setdefault(f"{match['stem']}.json", []).append(key)
    return found


def test_nightly_batch(airflow: LocalAirflow, local_storage: Storage, tmp_path: Path) -> None:
    assert isinstance(local_storage, LocalStorage)
    specs = {}
    for n in range(1, 4):
        spec = six_segment_job(f"nightly-{n}", approval="none", seed=100 + n)
        spec["segments"] = spec["segments"][:2]
        specs[n] = json.dumps(spec).encode()
        local_storage.put_bytes(f"inbox/job-{n}.json", specs[n])
    local_storage.put_bytes("inbox/broken.json", b'{"job_id": "x", ')
    local_storage.put_bytes("inbox/bad-id.json", json.dumps(six_segment_job("../escape")).encode())
    local_storage.put_bytes("inbox/deep.json", b"[" * 200_000 + b"]" * 200_000)  # RecursionError before
    secret = tmp_path / "airflow.env"
    secret.write_bytes(b"RUNWAY_API_KEY=key_from_outside_the_root")
    os.symlink(secret, local_storage.root / "inbox" / "link.json")
    os.mkfifo(local_storage.root / "inbox" / "pipe.json")

    first = airflow.trigger(NIGHTLY, {})
    assert airflow.wait_for_run(NIGHTLY, first, timeout=400) == "success"
    runs = video_runs(airflow)
    assert len(runs) == 3
    done = by_original_name(local_storage, "done/")
    assert {name: [local_storage.get_bytes(k) for k in keys] for name, keys in done.items()} == {
        f"job-{n}.json": [specs[n]] for n in range(1, 4)
    }
    rejected = by_original_name(local_storage, "inbox/rejected/")
    assert sorted(rejected) == ["bad-id.json", "broken.json", "deep.json", "link.json", "pipe.json"]
    reasons = {
        name: local_storage.get_bytes(f"{keys[0]}.error.txt").decode() for name, keys in rejected.items()
    }
    assert "job_id" in reasons["bad-id.json"]
    assert "JSON" in reasons["broken.json"]
    assert "nested" in reasons["deep.json"]
    assert "symbolic link" in reasons["link.json"] and "fifo" in reasons["pipe.json"]
    assert (local_storage.root / rejected["link.json"][0]).is_symlink()  # moved as a link, never read
    assert not any(b"key_from_outside" in local_storage.get_bytes(k) for k in local_storage.list(""))
    assert not list(local_storage.list("processing/"))
    for n in range(1, 4):
        assert local_storage.exists(f"jobs/nightly-{n}/final.mp4")

    # Night 2: the same names again — a spec already run, and new broken files.
    local_storage.put_bytes("inbox/job-1.json", specs[1])
    local_storage.put_bytes("inbox/broken.json", b"{{{")
    second = airflow.trigger(NIGHTLY, {})
    assert airflow.wait_for_run(NIGHTLY, second, timeout=200) == "success"
    assert video_runs(airflow) == runs  # nothing triggered twice
    done_again = by_original_name(local_storage, "done/")
    assert [local_storage.get_bytes(k) for k in done_again["job-1.json"]] == [specs[1], specs[1]]
    assert set(done["job-1.json"]) < set(done_again["job-1.json"])  # the first night's file is still there
    broken = by_original_name(local_storage, "inbox/rejected/")["broken.json"]
    assert sorted(local_storage.get_bytes(k) for k in broken) == [b'{"job_id": "x", ', b"{{{"]
