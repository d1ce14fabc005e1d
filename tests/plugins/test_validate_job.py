"""``validate_job`` on a run's conf merged over the DAG's Params as the task runner does: the spec is the conf
(and the spec's own defaults), the deployment's policy and the audio track are checked, and a refusal names the
field before anything is stored or spent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.definitions.param import process_params

from video_pipeline.handoff import handed_off
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.models import JobSpec
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow import stages
from video_pipeline_airflow.params import job_spec_params

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "jobs"
SEGMENTS = [{"prompt": "A lantern over dark water", "duration_s": 2}, {"prompt": "Mist on the pines"}]


class TaskInstance:
    """What validate_job uses of the task instance: its DAG (for the job's claim) and somewhere to push XComs.
    A test that validates one job several times plays runs one after another: an earlier run asked about has
    ended, so the next one takes its claim over."""

    dag_id = "video_generation"
    task_id = "validate_job"

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        return "success"

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalStorage:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", tmp_path.as_uri())
    for name in ("NIGHTLY_APPROVAL", "MAX_BUDGET_CREDITS", "REQUIRE_BUDGET"):
        monkeypatch.delenv(f"AIRFLOW_VAR_VIDEO_PIPELINE_{name}", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_RUNWAY_DEFAULT", raising=False)
    return LocalStorage(tmp_path)


RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def validate(conf: dict[str, Any], run_id: str = RUN_ID) -> TaskInstance:
    with DAG("video_generation", schedule=None, params=job_spec_params(EXAMPLES / "demo.json")) as dag:
        task = EmptyOperator(task_id="validate_job")
    ti = TaskInstance()
    params = process_params(dag, task, conf, suppress_exception=False)
    context = {"params": params, "run_id": run_id, "ti": ti}
    ti.xcom["returned"] = stages.validate_job(context)  # type: ignore[arg-type]
    return ti


def refusal(conf: dict[str, Any], run_id: str = "manual__x") -> str:
    with pytest.raises(stages.InvalidJobSpec) as info:
        validate(conf, run_id)
    return str(info.value)


def test_a_script_spec_is_its_conf_and_nothing_of_the_demo(storage: LocalStorage) -> None:
    conf = json.loads((EXAMPLES / "script.json").read_text())
    ti = validate(conf)
    assert JobSpec.model_validate(ti.xcom["job"]) == JobSpec.model_validate(conf)
    assert ti.xcom["job"]["segments"] is None and ti.xcom["total"] > 1
    assert storage.exists("jobs/lighthouse-script/manifest.json")


def test_a_conf_without_seed_gets_the_specs_default_and_empty_form_fields_are_defaults(
    storage: LocalStorage,
) -> None:
    # null is what the trigger form sends for an optional field left empty
    conf = {
        "job_id": "no-seed",
        "title": "No seed",
        "segments": SEGMENTS,
        "script": None,
        "budget_credits": None,
    }
    ti = validate(conf)
    assert ti.xcom["job"]["seed"] == JobSpec.model_fields["seed"].default == 0
    assert ti.xcom["returned"] == [1, 2]  # the numbers to map over; each task reads its own segment
    handed = [handed_off(storage, "no-seed", RUN_ID, "validate_job", n) for n in ti.xcom["returned"]]
    assert [segment.seed for segment in handed] == [1, 2]  # segment n: seed + n


def test_a_triggered_run_may_carry_its_parents_openlineage_ids(storage: LocalStorage) -> None:
    """With lineage on, the nightly and arrival batches' TriggerDagRunOperator adds them to the conf."""
    parent = {"parentRunId": "0191d3a4-7c2e-7b3a-9f00-000000000001", "parentJobName": "nightly.trigger_job"}
    conf = {"job_id": "from-inbox", "title": "From the inbox", "segments": SEGMENTS}
    ti = validate({**conf, "openlineage": parent}, run_id="nightly__from-inbox__0123456789ab")
    assert "openlineage" not in ti.xcom["job"]
    assert JobSpec.model_validate(ti.xcom["job"]) == JobSpec.model_validate(conf)
    assert "extra" in refusal({**conf, "lineage": parent}).lower()  # anything else is still refused


def test_the_required_fields_have_no_default() -> None:
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError, match="job_id"):
        validate({"segments": SEGMENTS})
    with pytest.raises(ParamValidationError, match="title"):
        validate({"job_id": "x", "segments": SEGMENTS})


def test_a_nightly_run_must_keep_the_gates_the_deployment_requires(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = {"job_id": "nightly-fox", "title": "Fox", "segments": SEGMENTS, "approval": "none"}
    validate(conf, run_id="nightly__nightly-fox__0123456789ab")  # no policy set: allowed
    storage.delete("jobs/nightly-fox/manifest.json")
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_NIGHTLY_APPROVAL", "both")
    message = refusal(conf, run_id="nightly__nightly-fox__0123456789ab")
    assert "approval: nightly runs must wait for a reviewer at images and clips" in message
    assert "video_pipeline_nightly_approval = both" in message
    assert not storage.exists("jobs/nightly-fox/manifest.json")
    validate(conf, run_id="manual__now")  # a run someone triggers by hand is not a nightly run


def test_a_paid_job_needs_a_budget_within_the_maximum(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = {"job_id": "paid", "title": "Paid", "segments": SEGMENTS, "provider": "runway"}
    message = refusal(conf)
    assert (
        "budget_credits: required for provider 'runway'" in message
        and "video_pipeline_require_budget" in message
    )
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_MAX_BUDGET_CREDITS", "100")
    message = refusal({**conf, "budget_credits": 500})
    assert "budget_credits: 500 is over" in message and "video_pipeline_max_budget_credits" in message
    # within the bounds, the next check runs: the provider's connection (none here), still before any spend
    assert "runway is not configured" in refusal({**conf, "budget_credits": 100})
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_MAX_BUDGET_CREDITS", "a lot")
    assert "Variable video_pipeline_max_budget_credits: 'a lot'" in refusal({**conf, "budget_credits": 100})


def test_the_audio_track_is_checked_before_anything_is_spent(storage: LocalStorage, tmp_path: Path) -> None:
    def with_track(key: str) -> dict[str, Any]:
        return {"job_id": "track", "title": "Track", "segments": SEGMENTS, "finishing": {"audio_key": key}}

    assert "finishing.audio_key: there is no 'assets/music.mp3'" in refusal(with_track("assets/music.mp3"))
    outside = tmp_path.parent / "outside.mp3"
    run_ffmpeg(["-f", "lavfi", "-i", "sine=d=1", str(outside)])
    playlist = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n{outside}\n#EXT-X-ENDLIST\n".encode()
    storage.put_bytes("assets/music.mp3", playlist)
    assert "finishing.audio_key: 'assets/music.mp3': not a readable audio file" in refusal(
        with_track("assets/music.mp3")
    )
    storage.put_file("assets/music.mp3", outside)
    assert (
        validate(with_track("assets/music.mp3")).xcom["job"]["finishing"]["audio_key"] == "assets/music.mp3"
    )
