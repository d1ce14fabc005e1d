"""The narration operator in-process, against the fake OpenAI speech API and real local storage: it speaks
through the voice's connection, turns "nothing spoken" into an Airflow retry and an ambiguous request into a
failure for a person, and a re-run speaks nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from video_pipeline.models import JobSpec
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage
from video_pipeline.submissions import job_submissions
from video_pipeline_airflow.operators import narration as narration_module
from video_pipeline_airflow.operators.narration import NarrateSegmentOperator
from video_pipeline_dev.fake_voices import FakeVoice

KEY = "sk-operator-canary-5e1"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVoice]:
    with FakeVoice("openai", api_key=KEY) as server:
        connection = {
            "conn_type": "http",
            "host": server.base_url,
            "password": KEY,
            "extra": {"backoff_base": 0.01},
        }
        monkeypatch.setenv("AIRFLOW_CONN_OPENAI_DEFAULT", json.dumps(connection))
        monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
        # The run that wrote a record is asked about through the API server; here every run is active.
        monkeypatch.setattr(narration_module, "run_checker", lambda context: lambda dag_id, run_id: True)
        yield server


def operator(spec: JobSpec) -> NarrateSegmentOperator:
    return NarrateSegmentOperator(
        task_id="narrate_segment",
        job=spec.settings().model_dump(mode="json"),
        segment=segments_for(spec)[0].model_dump(mode="json"),
        total=1,
    )


def context() -> Any:
    ti = SimpleNamespace(dag_id="video_generation", run_id="manual__1", map_index=0, try_number=1)
    return {"ti": ti, "run_id": "manual__1"}


def spec() -> JobSpec:
    return JobSpec.model_validate(
        {
            "job_id": "op-voice",
            "title": "t",
            "voice": {"provider": "openai"},
            "budget_credits": 5,
            "segments": [{"prompt": "a fox", "narration": "Dawn comes slowly.", "duration_s": "auto"}],
        }
    )


def test_it_speaks_through_the_voices_connection_and_a_rerun_speaks_nothing(
    fake: FakeVoice, tmp_path: Path
) -> None:
    done = operator(spec()).execute(context())
    assert done["narration_key"] == "jobs/op-voice/narration/001.mp3" and done["fitted_s"] >= 2
    assert fake.stats()["spoken"] == 1
    again = operator(spec()).execute(context())
    assert again["narration_cache_hit"] and fake.stats()["requests"] == 1


def test_nothing_spoken_is_retried_and_an_ambiguous_answer_fails(fake: FakeVoice, tmp_path: Path) -> None:
    fake.reset(api_key=KEY, faults=["429"] * 10)
    with pytest.raises(RuntimeError) as retried:
        operator(spec()).execute(context())
    assert not isinstance(retried.value, AirflowFailException)
    fake.reset(api_key=KEY, faults=["spoken-then-reset"])
    with pytest.raises(AirflowFailException, match="may have been billed"):
        operator(spec()).execute(context())
    (record,) = job_submissions(LocalStorage(tmp_path), "op-voice")
    assert record.state == "ambiguous" and KEY not in record.model_dump_json()
