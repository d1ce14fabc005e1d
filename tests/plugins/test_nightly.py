"""The nightly DAG's steps on local storage: intake runs valid specs and rejects the rest, settle files each
spec by how its run ended (the run's state comes from a stand-in for Airflow's API server)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from video_pipeline import inbox
from video_pipeline.policy import PolicyError
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow import compat, nightly


def spec(job_id: str) -> bytes:
    return json.dumps({"job_id": job_id, "title": job_id, "segments": [{"prompt": "a lantern"}]}).encode()


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    for name in ("NIGHTLY_APPROVAL", "MAX_BUDGET_CREDITS", "REQUIRE_BUDGET"):
        monkeypatch.delenv(f"AIRFLOW_VAR_VIDEO_PIPELINE_{name}", raising=False)
    return LocalStorage(tmp_path)


def test_intake_returns_the_runs_to_trigger_and_rejects_the_rest(
    storage: LocalStorage, caplog: pytest.LogCaptureFixture
) -> None:
    storage.put_bytes("inbox/fox.json", spec("fox"))
    storage.put_bytes("inbox/broken.json", b"{not json")
    with caplog.at_level(logging.INFO, logger=nightly.__name__):
        specs = nightly.intake()
    assert [s["conf"]["job_id"] for s in specs] == ["fox"]
    (fox,) = specs
    assert fox["run_id"] == inbox.run_id_for(fox["conf"]) and storage.exists(inbox.PROCESSING + fox["name"])
    assert nightly.trigger_kwargs(fox) == {"trigger_run_id": fox["run_id"], "conf": fox["conf"]}
    rejected = [k for k in storage.list(inbox.REJECTED) if k.endswith(".error.txt")]
    assert len(rejected) == 1 and "broken" in rejected[0]
    assert "Nightly intake: 1 to run, 1 rejected" in caplog.text


def test_a_misconfigured_policy_fails_the_intake_before_moving_anything(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put_bytes("inbox/fox.json", spec("fox"))
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_NIGHTLY_APPROVAL", "sometimes")
    with pytest.raises(PolicyError, match="video_pipeline_nightly_approval"):
        nightly.intake()
    assert storage.exists("inbox/fox.json")


class RunStates:
    """Stands in for RuntimeTaskInstance.get_dagrun_state (it asks the Airflow API server)."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.asked: list[tuple[str, str]] = []

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        self.asked.append((dag_id, run_id))
        return self.state


@pytest.mark.parametrize(("state", "folder"), [("success", inbox.DONE), ("failed", inbox.FAILED)])
def test_settle_files_the_spec_by_how_its_run_ended(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch, state: str, folder: str
) -> None:
    storage.put_bytes("inbox/fox.json", spec("fox"))
    (fox,) = nightly.intake()
    runs = RunStates(state)
    monkeypatch.setattr(compat, "runtime_task_instance", lambda: runs)
    assert nightly.settle(fox) == folder + fox["name"]
    assert runs.asked == [(nightly.TARGET_DAG, fox["run_id"])]
    assert storage.exists(folder + fox["name"]) and not storage.exists(inbox.PROCESSING + fox["name"])


def test_settle_of_a_run_still_going_fails_and_keeps_the_spec(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.put_bytes("inbox/fox.json", spec("fox"))
    (fox,) = nightly.intake()
    monkeypatch.setattr(compat, "runtime_task_instance", lambda: RunStates("running"))
    with pytest.raises(RuntimeError, match=r"is still running"):
        nightly.settle(fox)
    assert storage.exists(inbox.PROCESSING + fox["name"])
