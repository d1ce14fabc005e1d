"""DAG integrity: parses without import errors, documents itself, and wires the stages as designed."""

from __future__ import annotations

import copy
import itertools
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.mappedoperator import MappedOperator
from airflow.sdk.definitions.xcom_arg import PlainXComArg
from airflow.serialization.definitions.param import SerializedParamsDict

from video_pipeline.approval import gate_task_id
from video_pipeline_airflow.operators.gate import ApprovalGateOperator

REPO = Path(__file__).resolve().parents[2]
PARSE_SECONDS: list[float] = []


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    started = time.perf_counter()
    bag = DagBag(dag_folder=str(REPO / "dags"), bundle_name="tests")
    PARSE_SECONDS.append(time.perf_counter() - started)
    return bag


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert "video_generation" in dagbag.dags


def test_parse_is_fast(dagbag: DagBag) -> None:
    assert dagbag.dags and PARSE_SECONDS[0] < 10, f"DAG folder took {PARSE_SECONDS[0]:.1f} s to parse"


def test_documented_and_tagged(dagbag: DagBag) -> None:
    for dag in dagbag.dags.values():
        assert dag.doc_md and len(dag.doc_md) > 100, dag.dag_id
        assert dag.tags, dag.dag_id


def test_stage_wiring(dagbag: DagBag) -> None:
    dag = dagbag.dags["video_generation"]
    order = [
        "validate_job",
        "generate_image",
        "images_gate",
        "animate_segment",
        "clips_gate",
        "assemble",
        "publish",
    ]
    assert set(order) <= set(dag.task_ids)
    for upstream, downstream in itertools.pairwise(order):
        assert downstream in dag.get_task(upstream).downstream_task_ids, (upstream, downstream)


def test_segment_tasks_get_the_settings_not_the_whole_spec(dagbag: DagBag) -> None:
    """Each of the 2N mapped tasks would otherwise pull, render and store all N segments."""
    dag = dagbag.dags["video_generation"]
    for task_id in ("generate_image", "animate_segment"):
        task = dag.get_task(task_id)
        assert isinstance(task, MappedOperator), task_id
        job = task.partial_kwargs["job"]
        assert (job.operator.task_id, job.key) == ("validate_job", "settings"), task_id
    gate = dag.get_task("images_gate")
    assert isinstance(gate, ApprovalGateOperator)
    assert (gate.job.operator.task_id, gate.job.key) == ("validate_job", "job")


def test_mapped_tasks_after_a_sequential_step_read_their_own_segment(dagbag: DagBag) -> None:
    """Airflow gives every task mapped over an unmapped task's return value all of it: such a step returns
    segment numbers and hands the segments off, and its mapped tasks read theirs (segment_from)."""
    dag = dagbag.dags["video_generation"]
    for task_id, step in (
        ("narrate_segment", "validate_job"),
        ("generate_image", None),
        ("animate_segment", "images_gate"),
    ):
        task = dag.get_task(task_id)
        assert isinstance(task, MappedOperator), task_id
        mapped = task.expand_input.value
        assert isinstance(mapped, dict) and isinstance(mapped["segment"], PlainXComArg), task_id
        upstream = mapped["segment"].operator
        assert task.partial_kwargs.get("segment_from") == step, task_id
        assert upstream.is_mapped == (step is None), task_id  # a mapped upstream is read item by item
        if step is not None:
            assert upstream.task_id == step, task_id
    gates = [dag.get_task(task_id) for task_id in ("images_gate", "clips_gate")]
    assert [isinstance(gate, ApprovalGateOperator) and gate.hands_off for gate in gates] == [True, False]


def test_generation_tasks_retry_with_backoff(dagbag: DagBag) -> None:
    dag = dagbag.dags["video_generation"]
    for task_id in ("generate_image", "animate_segment"):
        task = dag.get_task(task_id)
        assert (task.retries or 0) >= 2
        assert task.retry_exponential_backoff
        assert task.map_index_template and "seg" in task.map_index_template


def test_assembly_cannot_hold_a_worker_for_ever(dagbag: DagBag) -> None:
    """Clips come from outside: whatever they hold, assembling them ends (a timeout fails the task)."""
    timeout = dagbag.dags["video_generation"].get_task("assemble").execution_timeout
    assert timeout is not None and timedelta(minutes=30) <= timeout <= timedelta(hours=3)


def served_params(dag: object) -> SerializedParamsDict:
    """The Params as the API server and scheduler hold them (the serialized DAG), where a trigger's conf is
    merged and validated before the run is created."""
    from airflow.serialization.serialized_objects import DagSerialization

    return DagSerialization.from_dict(DagSerialization.to_dict(dag)).params


def test_finishing_param_is_a_nested_object(dagbag: DagBag) -> None:
    """The nested finishing model renders as one object Param whose default is the model's defaults."""
    from airflow.sdk.definitions.param import ParamsDict

    from video_pipeline.models import Finishing

    dag = dagbag.dags["video_generation"]
    assert dag.params.get_param("finishing").value == Finishing().model_dump(mode="json")
    params = copy.deepcopy(
        ParamsDict(dag.params)
    )  # ParamsDict(…) shares the Params: setting one sets the DAG's
    params["finishing"] = {"transition_s": 0.5, "subtitles": "burned", "audio_key": "assets/music.mp3"}
    assert Finishing.model_validate(params["finishing"]).subtitles == "burned"


def test_params_default_to_the_specs_own_defaults_never_to_the_demo(dagbag: DagBag) -> None:
    """A run's spec is its conf: what a conf leaves out takes the spec's default, not the demo's value."""
    from video_pipeline.models import JobSpec

    dag = dagbag.dags["video_generation"]
    for name, field in JobSpec.model_fields.items():
        param = dag.params.get_param(name)
        if field.is_required():
            assert not param.has_value, name
        else:
            default = field.get_default(call_default_factory=True)
            assert param.value == (
                default.model_dump(mode="json") if hasattr(default, "model_dump") else default
            )
    # the demo is offered, not merged: suggestions on its text fields, a sample in the segments help
    demo = json.loads((REPO / "examples" / "jobs" / "demo.json").read_text())
    assert dag.params.get_param("job_id").schema["examples"] == [demo["job_id"]]
    assert demo["segments"][0]["prompt"] in dag.params.get_param("segments").schema["description_md"]


@pytest.mark.parametrize("example", ["demo.json", "script.json"])
def test_an_example_conf_validates_to_exactly_that_spec(dagbag: DagBag, example: str) -> None:
    from video_pipeline.models import JobSpec

    conf = json.loads((REPO / "examples" / "jobs" / example).read_text())
    merged = served_params(dagbag.dags["video_generation"]).deep_merge(conf).validate()
    spec = JobSpec.model_validate({k: v for k, v in merged.items() if v is not None})  # as validate_job does
    assert spec == JobSpec.model_validate(conf)


@pytest.mark.parametrize("missing", ["job_id", "title"])
def test_a_conf_without_a_required_field_is_refused_naming_it(dagbag: DagBag, missing: str) -> None:
    from airflow.exceptions import ParamValidationError

    conf = {"job_id": "x", "title": "X", "segments": [{"prompt": "a"}]}
    del conf[missing]
    with pytest.raises(ParamValidationError, match=f"param {missing}: No value passed"):
        served_params(dagbag.dags["video_generation"]).deep_merge(conf).validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("job_id", "../x"),
        ("segments", []),
        ("ratio", "4:3"),
        ("approval", "sometimes"),
        ("segments", [{"prompt": "x" * 2000}]),
        ("segments", [{"prompt": "a", "duration_s": 30}]),
        ("finishing", {"transition_s": 5}),
        ("finishing", {"subtitles": "karaoke"}),
        ("finishing", {"music": "a.mp3"}),
    ],
)
def test_param_schema_refuses_bad_conf(dagbag: DagBag, field: str, value: object) -> None:
    from airflow.sdk.definitions.param import ParamsDict

    params = copy.deepcopy(ParamsDict(dagbag.dags["video_generation"].params))
    with pytest.raises(Exception, match=field):
        params[field] = value


def test_publish_announces_the_final_video_through_the_asset_alias(dagbag: DagBag) -> None:
    publish = dagbag.dags["video_generation"].get_task("publish")
    assert [(type(o).__name__, o.name) for o in publish.outlets] == [
        ("AssetAlias", "video_pipeline_final_video")
    ]


def test_gates_have_the_task_ids_the_review_page_finds_their_stage_by(dagbag: DagBag) -> None:
    dag = dagbag.dags["video_generation"]
    gates = {t.task_id: t.stage for t in dag.tasks if isinstance(t, ApprovalGateOperator)}
    assert gates == {gate_task_id("images"): "images", gate_task_id("clips"): "clips"}
