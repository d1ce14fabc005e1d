from __future__ import annotations

import pytest

from video_pipeline.approval import (
    APPROVE,
    REDO,
    REJECT,
    DecisionError,
    check_segments,
    parse_form_answer,
    parse_variable_value,
    variable_key,
)


def test_variable_key() -> None:
    assert variable_key("fox-1", "images") == "video_approval__fox-1__images"


@pytest.mark.parametrize(
    ("raw", "decision"),
    [("approve", "approve"), (" Reject\n", "reject"), ('{"decision": "approve", "by": "ana"}', "approve")],
)
def test_simple_values(raw: str, decision: str) -> None:
    assert parse_variable_value(raw).decision == decision


def test_redo_json() -> None:
    request = parse_variable_value(
        '{"decision": "redo", "segments": [3, 7], "note": "too dark", "by": "ana"}'
    )
    assert (request.decision, request.segments, request.note, request.by) == (
        "redo",
        [3, 7],
        "too dark",
        "ana",
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("maybe", "not understood"),
        ("", "not understood"),
        ("[1, 2]", "JSON object"),
        ('{"decision": "perhaps"}', "decision"),
        ('{"decision": "approve", "extra": 1}', "extra"),
        ('{"decision": "redo"}', "segments"),
        ('{"decision": "redo", "segments": ["x"]}', "segments"),
    ],
)
def test_bad_values_explain_themselves(raw: str, message: str) -> None:
    with pytest.raises(DecisionError, match=message) as info:
        parse_variable_value(raw)
    assert "approve" in str(info.value)


def test_form_answers() -> None:
    assert parse_form_answer([APPROVE], None).decision == "approve"
    assert parse_form_answer([REJECT], {"note": "no"}).note == "no"
    redo = parse_form_answer([REDO], {"segments": ["2", "5"], "note": None})
    assert (redo.decision, redo.segments) == ("redo", [2, 5])
    with pytest.raises(DecisionError):
        parse_form_answer([REDO], {"segments": None})
    with pytest.raises(DecisionError):
        parse_form_answer([APPROVE, REJECT], {})


def test_form_segments_field_only_matters_for_a_redo() -> None:
    # What the Airflow UI sent when the form's "segments" field was pre-filled with the job spec's segments
    # (the run's conf overrode the gate's Param of the same name): Approve must still approve.
    stray = {"segments": [{"prompt": "Scene 1", "duration_s": 2}], "note": "fine"}
    approve = parse_form_answer([APPROVE], stray)
    assert (approve.decision, approve.segments, approve.note) == ("approve", [], "fine")
    assert parse_form_answer([REJECT], {"segments": ["[object Object]"]}).decision == "reject"
    # the textarea sends one string a line; blank lines and surrounding spaces are fine
    redo = parse_form_answer([REDO], {"segments": [" 3 ", "", "1"], "note": ""})
    assert (redo.segments, redo.note) == ([3, 1], None)


@pytest.mark.parametrize(
    "segments", [[{"prompt": "x"}], ["[object Object]"], ["2.5"], ["-1"], [True], ["two"]]
)
def test_form_redo_with_unusable_segments_is_a_decision_error(segments: list[object]) -> None:
    # a DecisionError re-opens the gate; any other exception would fail the task
    with pytest.raises(DecisionError, match="whole numbers"):
        parse_form_answer([REDO], {"segments": segments})


def test_check_segments_refuses_unknown_numbers() -> None:
    request = parse_variable_value('{"decision": "redo", "segments": [2, 9]}')
    with pytest.raises(DecisionError, match=r"\[9\].*1–6"):
        check_segments(request, [1, 2, 3, 4, 5, 6])


def test_form_redo_with_replacement_prompts() -> None:
    redo = parse_form_answer(
        [REDO],
        {"segments": ["2"], "prompts": ["5: a red fox at dawn", "", " 2 :  the same lighthouse, at night "]},
    )
    assert redo.segments == [2, 5]  # a prompt names its segment: no need to list it twice
    assert redo.prompts == {5: "a red fox at dawn", 2: "the same lighthouse, at night"}
    only_prompts = parse_form_answer([REDO], {"prompts": ["3: a quiet harbour"]})
    assert (only_prompts.segments, only_prompts.prompts) == ([3], {3: "a quiet harbour"})


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (["a fox without a number"], "<segment number>: <new prompt>"),
        (["x: a fox"], "<segment number>: <new prompt>"),
        (["4:   "], "<segment number>: <new prompt>"),
        ([f"4: {'y' * 1001}"], "over 1000 characters"),
    ],
)
def test_form_prompts_that_cannot_be_used(prompts: list[str], message: str) -> None:
    with pytest.raises(DecisionError, match=message):
        parse_form_answer([REDO], {"segments": ["4"], "prompts": prompts})
