"""The approval gate's review request: the form fields it asks the UI to show.

Found in the browser test (tests/e2e/test_review_browser.py): at run time Airflow writes every ``dag_run.conf``
value into the task's Param of the same name, so the job spec's ``segments`` (a list of prompt objects) filled
the gate's "segments" field; the UI showed "[object Object]" lines and sent them back with Approve, and the gate
failed. The request must carry the form's own empty fields, whatever the run's conf holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.param import process_params

from video_pipeline.models import JobSpec, Manifest
from video_pipeline.review import GatePreview
from video_pipeline.storage import LocalStorage
from video_pipeline_airflow.operators import gate as gate_module
from video_pipeline_airflow.operators.gate import ApprovalGateOperator, form_params
from video_pipeline_airflow.params import job_spec_params

EXAMPLE_JOB = Path(__file__).resolve().parents[3] / "examples" / "jobs" / "demo.json"
CONF: dict[str, Any] = {
    **json.loads(EXAMPLE_JOB.read_text()),
    "job_id": "gate-form",
    "segments": [{"prompt": "Scene 1", "duration_s": 2}, {"prompt": "Scene 2", "duration_s": 2}],
}


def gate_in_dag() -> ApprovalGateOperator:
    with DAG("gate_form", schedule=None, params=job_spec_params(EXAMPLE_JOB)):
        return ApprovalGateOperator(task_id="images_gate", stage="images", job={}, segments=[])


def test_run_conf_overwrites_the_task_params_of_the_same_name() -> None:
    """The hazard itself, so the test below keeps meaning something if Airflow changes."""
    gate = gate_in_dag()
    assert gate.dag is not None
    process_params(gate.dag, gate, CONF, suppress_exception=False)
    assert gate.serialized_params["segments"]["value"] == CONF["segments"]


def test_the_request_carries_empty_form_fields_whatever_the_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = gate_in_dag()
    assert gate.dag is not None
    process_params(gate.dag, gate, CONF, suppress_exception=False)  # as the task runner does before execute

    sent: dict[str, Any] = {}
    monkeypatch.setattr(gate_module, "upsert_hitl_detail", lambda **kwargs: sent.update(kwargs))
    monkeypatch.setattr(gate_module, "build_preview", lambda *args: GatePreview("jobs/x/sheet.jpg", []))
    monkeypatch.setattr(gate_module, "notify", lambda *args: False)
    monkeypatch.setattr(ApprovalGateOperator, "_wait", lambda *args: None)
    monkeypatch.setattr(ApprovalGateOperator, "_form_link", lambda *args: "http://ui/form")

    job = JobSpec.model_validate(CONF)
    context: Any = {"run_id": "manual__1", "task_instance": SimpleNamespace(id="0192-ti")}
    gate._open(context, LocalStorage(tmp_path), job, Manifest(job=job), changed=[])

    params = sent["params"]
    assert set(params) == {"segments", "prompts", "note"}
    assert params["segments"]["value"] is None and params["note"]["value"] is None
    assert params["segments"]["schema"] == {"type": ["array", "null"]}
    assert all(p["source"] == "task" for p in params.values())
    assert isinstance(params["segments"]["description"], str)
    json.dumps(params)  # stored as JSON in the request row
    assert sent["options"] == ["Approve", "Reject", "Redo segments"]


def test_form_fields_are_new_objects_each_time() -> None:
    """A value the run writes into one gate's Params cannot reach another gate's request."""
    first, second = form_params(), form_params()
    assert all(first[name] is not second[name] for name in first)
