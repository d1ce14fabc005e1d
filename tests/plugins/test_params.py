"""The trigger form's Params: each declares draft 7, which its schema fits, and still refuses what it should."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG
from airflow.sdk.definitions.param import ParamValidationError, process_params

from video_pipeline_airflow.params import JSON_SCHEMA_DIALECT, job_spec_params

DEMO = Path(__file__).resolve().parents[2] / "examples" / "jobs" / "demo.json"
#: Keywords draft 7 does not know: a Param using one would be validated less strictly than it reads.
NEWER_KEYWORDS = {
    "prefixItems",
    "$dynamicRef",
    "$dynamicAnchor",
    "unevaluatedItems",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "minContains",
    "maxContains",
    "$defs",
}


def keywords(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in keywords(value)}
    if isinstance(node, list):
        return {k for value in node for k in keywords(value)}
    return set()


def test_every_param_declares_draft_7_and_is_a_valid_draft_7_schema() -> None:
    params = job_spec_params(DEMO)
    assert params
    for name, param in params.items():
        assert param.schema["$schema"] == JSON_SCHEMA_DIALECT, name
        jsonschema.Draft7Validator.check_schema(param.schema)
        assert not keywords(param.schema) & NEWER_KEYWORDS, name


def test_the_demo_conf_passes_and_bad_values_are_refused_with_the_field_named() -> None:
    demo = json.loads(DEMO.read_text())
    with DAG("video_generation", schedule=None, params=job_spec_params(DEMO)) as dag:
        task = EmptyOperator(task_id="validate_job")
    assert process_params(dag, task, demo, suppress_exception=False)["job_id"] == demo["job_id"]
    for field, bad in [("seed", "eleven"), ("segments", [{"duration_s": 2}]), ("approval", "maybe")]:
        with pytest.raises(ParamValidationError, match=field):
            process_params(dag, task, {**demo, field: bad}, suppress_exception=False)
