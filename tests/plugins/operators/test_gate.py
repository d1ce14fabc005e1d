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

from video_pipeline.approval import answer_via, gate_stage
from video_pipeline.contact_sheets import ContactSheet
from video_pipeline.gate_form import GatePreview, inert
from video_pipeline.generation import make_takes, plan_clip
from video_pipeline.manifest import load_manifest, save_manifest
from video_pipeline.models import JobSpec, Manifest, Stage
from video_pipeline.providers.storyboard import StoryboardProvider
from video_pipeline.segmentation import segments_for
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
    monkeypatch.setattr(
        gate_module,
        "build_preview",
        lambda *args: GatePreview([ContactSheet(1, "jobs/x/sheet.jpg", (1,))], []),
    )
    monkeypatch.setattr(gate_module, "notify", lambda *args: False)
    monkeypatch.setattr(ApprovalGateOperator, "_wait", lambda *args: None)
    monkeypatch.setattr(ApprovalGateOperator, "_form_link", lambda *args: "http://ui/form")

    job = JobSpec.model_validate(CONF)
    context: Any = {"run_id": "manual__1", "task_instance": SimpleNamespace(id="0192-ti")}
    gate._open(context, LocalStorage(tmp_path), job, Manifest(job=job), changed=[])

    params = sent["params"]
    assert set(params) == {"segments", "prompts", "narrations", "picks", "note", "source"}
    assert all(params[name]["value"] is None for name in params)
    assert params["picks"]["schema"] == {"type": ["object", "null"]}
    assert params["segments"]["schema"] == {"type": ["array", "null"]}
    assert all(p["source"] == "task" for p in params.values())
    assert isinstance(params["segments"]["description"], str)
    json.dumps(params)  # stored as JSON in the request row
    assert sent["options"] == ["Approve", "Reject", "Redo segments"]


def test_form_fields_are_new_objects_each_time() -> None:
    """A value the run writes into one gate's Params cannot reach another gate's request."""
    first, second = form_params(), form_params()
    assert all(first[name] is not second[name] for name in first)


def test_form_fields_are_bounded_where_the_run_conf_cannot_reach() -> None:
    """The prompts and note fields carry their bounds to the UI. "segments" cannot: the job spec's segments
    (any number of objects) are validated against it before the gate runs (the first test above)."""
    params = ApprovalGateOperator.form_request_params()
    assert params["note"]["schema"]["maxLength"] == 2000
    assert params["prompts"]["schema"]["maxItems"] == 100
    assert params["prompts"]["schema"]["items"] == {"type": "string", "maxLength": 1108}
    many = {**CONF, "segments": [{"prompt": f"Scene {i}", "duration_s": 2} for i in range(1, 1200)]}
    gate = gate_in_dag()
    assert gate.dag is not None
    process_params(gate.dag, gate, many, suppress_exception=False)  # a big job's conf still passes


# -- answers through the gate: unusable ones re-open it, a redo regenerates from the new prompt ----------------

RUN_ID = "manual__2026-11-30T09:00:00+00:00"


class GateHarness:
    """A gate on real local storage; Airflow's request row (written by the gate, answered by the form, wiped
    by every new opening), its Variables and notifications stand in memory."""

    def __init__(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stage: Stage, spec: dict[str, Any]
    ) -> None:
        self.storage = LocalStorage(tmp_path / "store")
        self.job = JobSpec.model_validate(spec)
        self.requests: list[dict[str, Any]] = []
        self.response: dict[str, Any] | None = None  # the answer the request holds
        self.deferrals = 0
        monkeypatch.setattr(gate_module, "get_storage", lambda: self.storage)
        monkeypatch.setattr(gate_module, "upsert_hitl_detail", self._upsert)
        monkeypatch.setattr(gate_module, "get_hitl_detail_content_detail", self._detail)
        monkeypatch.setattr(gate_module, "notify", lambda *args: False)
        monkeypatch.setattr(gate_module, "Variable", SimpleNamespace(delete=lambda key: None))
        monkeypatch.setattr(ApprovalGateOperator, "_wait", lambda *args: self._deferred())
        monkeypatch.setattr(ApprovalGateOperator, "_form_link", lambda *args: "http://ui/form")
        provider = StoryboardProvider()
        segments = [make_takes(self.storage, self.job, s, provider, "images") for s in segments_for(self.job)]
        if stage == "clips":
            segments = [make_takes(self.storage, self.job, s, provider, "clips") for s in segments]
        self.gate = ApprovalGateOperator(
            task_id=f"{stage}_gate",
            stage=stage,
            job=self.job.model_dump(mode="json"),
            segments=[s.model_dump(mode="json") for s in segments],
        )
        context: Any = {
            "run_id": RUN_ID,
            "task_instance": SimpleNamespace(id="0192-ti"),
            "ti": SimpleNamespace(try_number=1),
        }
        save_manifest(self.storage, Manifest(job=self.job, run_id=RUN_ID))
        self.context = context
        self.gate.execute(context)  # opens the gate: request 1

    def _deferred(self) -> None:
        self.deferrals += 1

    def _upsert(self, **request: Any) -> None:
        self.requests.append(request)
        self.response = None  # as Airflow's upsert does to an answered request

    def _detail(self, ti_id: Any) -> SimpleNamespace:
        held = self.response or {}
        return SimpleNamespace(
            response_received=self.response is not None,
            chosen_options=held.get("chosen_options"),
            params_input=held.get("params_input", {}),
        )

    def answer(self, option: str, params: Any, user: str = "ana") -> Any:
        """The form's answer: written into the request, then handed to the gate (as the REST handler does)."""
        self.response = {"chosen_options": [option], "params_input": params}
        return self.redeliver(option, params, user)

    def redeliver(self, option: str, params: Any, user: str = "ana") -> Any:
        """An event for an answer, whether or not the request (still) holds it."""
        event = {
            "chosen_options": [option],
            "params_input": params,
            "responded_by_user": {"id": user, "name": user},
        }
        return self.gate.execute_complete(self.context, event)

    def manifest(self) -> Manifest:
        manifest = load_manifest(self.storage, self.job.job_id)
        assert manifest is not None
        return manifest


def spec(job_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "title": "Gate answers",
        "seed": 5,
        "segments": [
            {"prompt": "A lighthouse in fog", "motion_prompt": "slow push towards the lamp", "duration_s": 2},
            {"prompt": "Waves on the rocks", "duration_s": 2},
        ],
        **overrides,
    }


def nested(depth: int) -> Any:
    value: Any = "1"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("option", "params"),
    [
        ("Approve", {"note": "n" * 2001}),
        ("Reject", {"note": 12}),
        ("Approve", {"note": nested(100_000)}),
        ("Redo segments", {"segments": ["²"]}),
        ("Redo segments", {"segments": ["①"]}),
        ("Redo segments", {"segments": ["7" * 5000]}),
        ("Redo segments", {"segments": nested(100_000)}),
        ("Redo segments", {"prompts": ["²: a new fox"]}),
        ("Redo segments", {"segments": ["3"]}),  # the job has 2
        ("Redo segments", ["not", "an", "object"]),
    ],
    ids=[
        "long-note",
        "number-note",
        "deep-note",
        "superscript-two",
        "circled-one",
        "5000-digits",
        "deep-segments",
        "superscript-prompt",
        "unknown-segment",
        "params-not-an-object",
    ],
)
def test_an_unusable_form_answer_reopens_the_gate_and_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, params: Any
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-bad"))
    before = harness.manifest()
    assert harness.answer(option, params) is None  # no exception: the task does not fail (and replay it)
    assert len(harness.requests) == 2 and harness.deferrals == 2  # a fresh request, waiting again
    after = harness.manifest()
    assert after.decisions == before.decisions == []
    assert after.segments == before.segments and after.status == "awaiting_images"
    # a usable answer is still taken afterwards
    approved = harness.answer("Approve", {"note": "fine"})
    assert [s["status"] for s in approved] == ["image_approved", "image_approved"]


@pytest.mark.slow  # renders four clips and their posters (about 5 s on two cores)
def test_a_redo_with_a_new_prompt_at_the_clips_gate_regenerates_the_clip_from_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen: segment 1 has a motion prompt, so the clip was made from it, cache hit, identical bytes, while the
    manifest recorded the new prompt. The new prompt replaces the clip's motion prompt; the image stays."""
    harness = GateHarness(tmp_path, monkeypatch, "clips", spec("gate-redo"))
    storage = harness.storage
    old = {s.index: s for s in harness.manifest().segments}
    old_clips = {i: storage.get_bytes(s.clip_key or "") for i, s in old.items()}
    old_images = {i: storage.get_bytes(s.image_key or "") for i, s in old.items()}

    new = {1: "a slow pan to the left, away from the lamp", 2: "the camera rises over the waves"}
    harness.answer("Redo segments", {"prompts": [f"{i}: {p}" for i, p in new.items()], "note": "more motion"})

    manifest = harness.manifest()
    assert manifest.decisions[-1].decision == "redo" and manifest.decisions[-1].prompts == new
    for segment in manifest.segments:
        index = segment.index
        assert segment.motion_prompt == new[index]  # what the clip is made from, recorded
        assert segment.prompt == old[index].prompt  # the image's prompt, unchanged with the image
        assert storage.get_bytes(segment.image_key or "") == old_images[index]
        clip = storage.get_bytes(segment.clip_key or "")
        assert clip != old_clips[index]
        planned = plan_clip(storage, harness.job, segment)
        assert planned.request.prompt == new[index] and storage.get_bytes(planned.cache_key) == clip
        assert not segment.clip_cache_hit
    assert len(harness.requests) == 2  # re-opened for round 2, showing the new motion prompts (escaped)
    assert "Regenerated in the last round: #1, #2" in harness.requests[-1]["body"]
    assert (
        inert(new[1]) in harness.requests[-1]["body"] and inert("more motion") in harness.requests[-1]["body"]
    )
    progress = json.loads(storage.get_bytes("jobs/gate-redo/progress.json"))
    assert progress["run_id"] == RUN_ID
    assert progress["redos"] == {"clips": {"round": 2, "completed": 2, "total": 2, "complete": True}}


def test_an_answer_delivered_again_after_the_gate_reopened_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen on real Airflow (tests/e2e/test_chaos.py): a refused form answer reached the gate twice, the second
    time a moment after the gate had re-opened. It must neither re-open the request again nor be taken."""
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-stale"))
    assert harness.answer("Redo segments", {"segments": ["²"]}) is None
    assert (len(harness.requests), harness.deferrals) == (2, 2)
    # the same answer again, and an old usable one: the request holds neither
    for option, params in (("Redo segments", {"segments": ["²"]}), ("Approve", {})):
        assert harness.redeliver(option, params) is None
    assert (len(harness.requests), harness.deferrals) == (2, 4)  # waited again, request untouched
    assert harness.manifest().decisions == [] and harness.manifest().status == "awaiting_images"
    # a reviewer answered the current opening meanwhile: an old event still does not stand in for it
    harness.response = {"chosen_options": ["Reject"], "params_input": {}}
    assert harness.redeliver("Approve", {}) is None and harness.manifest().decisions == []
    approved = harness.answer("Approve", {"note": "fine"})
    assert [s["status"] for s in approved] == ["image_approved", "image_approved"]


def test_a_redo_with_a_new_prompt_at_the_images_gate_replaces_the_image_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-redo-images"))
    old_image = harness.storage.get_bytes("jobs/gate-redo-images/images/002.png")
    harness.answer("Redo segments", {"prompts": ["2: a calm sea at noon"]})
    segment = harness.manifest().segments[1]
    assert (segment.prompt, segment.motion_prompt) == ("a calm sea at noon", None)
    assert harness.storage.get_bytes(segment.image_key or "") != old_image


def test_a_redo_with_a_new_narration_speaks_only_that_segment_again_and_keeps_its_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    voiced = [
        {"prompt": "A lighthouse in fog", "narration": "The lamp is lit.", "duration_s": "auto"},
        {"prompt": "Waves on the rocks", "narration": "The sea is loud.", "duration_s": "auto"},
    ]
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-voice", segments=voiced))
    old_image = harness.storage.get_bytes("jobs/gate-voice/images/002.png")
    new = "The sea keeps rolling in against the black rocks below the lighthouse, all night long."
    harness.answer("Redo segments", {"narrations": [f"2: {new}"]})
    manifest = harness.manifest()
    first, second = manifest.segments
    assert manifest.decisions[-1].narrations == {2: new} and manifest.decisions[-1].segments == [2]
    assert second.narration == new and second.narration_key == "jobs/gate-voice/narration/002.wav"
    assert second.narration_s and second.fitted_s and second.fitted_s > 4  # refitted to the longer line
    assert harness.storage.get_bytes(second.image_key or "") == old_image  # a new narration alone
    assert first.narration_key is None  # not spoken again
    assert "Regenerated in the last round: #2" in harness.requests[-1]["body"]
    assert "Narration spoken by" in harness.requests[-1]["body"]


def test_a_new_narration_the_budget_cannot_pay_for_is_refused_and_the_gate_reopens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_OPENAI_DEFAULT",
        json.dumps({"conn_type": "http", "host": "http://127.0.0.1:9", "password": "sk-never-sent"}),
    )
    voiced = [{"prompt": "A lighthouse in fog", "narration": "The lamp is lit.", "duration_s": 3}]
    overrides = {"segments": voiced, "voice": {"provider": "openai"}, "budget_credits": 0}
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-voice-budget", **overrides))
    harness.answer("Redo segments", {"narrations": ["1: A much longer line that costs credits to speak."]})
    manifest = harness.manifest()
    assert manifest.segments[0].narration == "The lamp is lit."  # unchanged: nothing was spoken
    assert [d.decision for d in manifest.decisions] == []  # the refused redo is not recorded as taken
    body = harness.requests[-1]["body"]
    assert "Redo refused" in body and "budget" in body


def test_an_answer_from_the_review_page_is_recorded_via_review_page_with_its_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness = GateHarness(tmp_path, monkeypatch, "images", spec("gate-page"))
    body = harness.requests[0]["body"]
    assert "[Open the review page](" in body and "/tasks/images_gate/plugin/video-review)" in body
    harness.answer("Approve", {"note": "from my phone", "source": "review-page"}, user="ana")
    (decision,) = harness.manifest().decisions
    assert (decision.decision, decision.via, decision.by, decision.note) == (
        "approve",
        "review-page",
        "ana",
        "from my phone",
    )


def test_a_source_field_does_not_relabel_a_variable_answer() -> None:
    assert answer_via("variable", {"source": "review-page"}) == "variable"
    assert answer_via("ui", {"source": "something"}) == "ui"
    assert answer_via("ui", ["source"]) == "ui"
    assert gate_stage("clips_gate") == "clips" and gate_stage("validate_job") is None
