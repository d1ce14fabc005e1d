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


def test_check_segments_refuses_unknown_numbers() -> None:
    request = parse_variable_value('{"decision": "redo", "segments": [2, 9]}')
    with pytest.raises(DecisionError, match=r"\[9\].*1–6"):
        check_segments(request, [1, 2, 3, 4, 5, 6])
