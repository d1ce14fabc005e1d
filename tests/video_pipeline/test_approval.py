from __future__ import annotations

import json
import random
import string
from typing import Any

import pytest

from video_pipeline.approval import (
    APPROVE,
    MAX_VARIABLE_CHARS,
    REDO,
    REJECT,
    DecisionError,
    DecisionRequest,
    check_picks,
    check_segments,
    parse_form_answer,
    parse_variable_value,
    variable_key,
)
from video_pipeline.models import VideoSegment


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


# -- hostile answers: every value is either a decision or a DecisionError, never anything else -----------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        nested(100_000),  # json.loads would raise RecursionError
        '{"decision": "redo", "segments": ' + nested(5000) + "}",
        '{"decision": "redo", "note": "' + "[" * 100_000 + '"}',  # brackets in a string do not nest: too long
        '{"decision": "redo", "segments": [' + "7" * 5000 + "]}",  # int() refuses over 4300 digits
        "7" * 5000,
        '{"decision": "redo", "segments": [' + "7" * 4000 + "]}",
        '{"decision": "redo", "segments": ["²"]}',
        '{"decision": "redo", "segments": ["①"]}',
        '{"decision": "redo", "segments": [true]}',
        '{"decision": "redo", "segments": [2.0]}',
        '{"decision": "redo", "segments": [1234567]}',
        '{"decision": "redo", "prompts": {"²": "a fox"}}',
        '{"decision": "redo", "prompts": {"' + "3" * 5000 + '": "a fox"}}',
        '{"decision": "redo", "prompts": {"3": ""}}',
        '{"decision": "approve", "note": "' + "n" * 2001 + '"}',
        '{"decision": "approve", "note": 5}',
        '{"decision": "approve", "by": ["ana"]}',
        '{"decision": "redo", "segments": [' + ",".join(["1"] * 1001) + "]}",
        "x" * (MAX_VARIABLE_CHARS + 1),
        "NaN",
        '{"decision": "approve", "' + "k" * 100_000 + '": 1}',
    ],
    ids=lambda raw: raw[:30],
)
def test_hostile_variable_values_are_decision_errors(raw: str) -> None:
    with pytest.raises(DecisionError) as info:
        parse_variable_value(raw)
    assert len(str(info.value)) < 1500  # the reason is logged: it must not echo the input


def test_a_value_nested_deep_as_an_object_is_refused_without_recursion() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(DecisionError, match="nested too deeply"):
        parse_variable_value({"decision": "redo", "segments": deep})
    with pytest.raises(DecisionError, match="whole numbers"):
        parse_form_answer([REDO], {"segments": deep})
    with pytest.raises(DecisionError, match="note must be text"):
        parse_form_answer([APPROVE], {"note": deep})
    with pytest.raises(DecisionError):
        parse_form_answer(deep, {})


@pytest.mark.parametrize(
    ("option", "params", "message"),
    [
        (APPROVE, {"note": "n" * 2001}, "at most 2000"),
        (REJECT, {"note": 5}, "note must be text"),
        (APPROVE, {"note": ["a", "list"]}, "note must be text"),
        (REDO, {"segments": ["²"]}, "whole numbers"),
        (REDO, {"segments": ["①"]}, "whole numbers"),
        (REDO, {"segments": ["٣"]}, "whole numbers"),  # Arabic-Indic three: int() takes it, we do not
        (REDO, {"segments": ["7" * 5000]}, "whole numbers"),
        (REDO, {"segments": [7**5000]}, "whole numbers"),
        (REDO, {"segments": ["1234567"]}, "whole numbers"),
        (REDO, {"segments": ["0"]}, "whole numbers"),
        (REDO, {"segments": [str(i) for i in range(1, 1002)]}, "at most 1000"),
        (REDO, {"prompts": ["²: a fox"]}, "<segment number>: <new prompt>"),
        (REDO, {"prompts": ["7" * 5000 + ": a fox"]}, "<segment number>: <new prompt>"),
        (REDO, {"prompts": [{"3": "a fox"}]}, "<segment number>: <new prompt>"),
        (REDO, {"prompts": [f"{i}: p" for i in range(1, 102)]}, "at most 100"),
        (REDO, "segments", "must be an object"),
    ],
)
def test_hostile_form_answers_are_decision_errors(option: str, params: object, message: str) -> None:
    with pytest.raises(DecisionError, match=message) as info:
        parse_form_answer([option], params)
    assert len(str(info.value)) < 1500


def test_ascii_digits_with_spaces_and_leading_zeros_still_work() -> None:
    assert parse_form_answer([REDO], {"segments": [" 007 ", "12"]}).segments == [7, 12]
    assert parse_form_answer([REDO], {"segments": "2\n5"}).segments == [2, 5]  # REST may send one string
    assert parse_variable_value(
        '{"decision": "redo", "segments": ["3"], "prompts": {"4": "x"}}'
    ).segments == [
        3,
        4,
    ]


ALPHABET = (
    "0123456789²①٣３ -+.:eE\x00\n\r\u2028\"'[]{}\\abcdxyz,"  # digits of every kind, JSON and line syntax
)
FIELDS = ["decision", "segments", "prompts", "note", "by", "approve", "reject", "redo", "extra"]


def random_text(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.1:
        return rng.choice(["approve", "reject", "redo", " Approve ", "REJECT\n"])
    if kind < 0.2:
        return rng.choice(string.digits[1:]) * rng.choice([1, 6, 7, 300, 4301, 5000])
    if kind < 0.25:
        return "x" * rng.choice([999, 1000, 1001, 2000, 2001, 5000])
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, biased towards the shapes and edges of a decision."""
    kind = rng.randrange(10 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, 2, -1, 999_999, 1_000_000, 2**63, 10**4000, rng.randint(-(10**9), 10**9)])
    if kind == 3:
        return rng.choice([0.0, 1.5, 2.0, -0.0, float("inf"), float("nan"), 1e308])
    if kind in (4, 5):
        return random_text(rng)
    if kind in (6, 7):
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [rng.choice(FIELDS) if rng.random() < 0.8 else random_text(rng) for _ in range(rng.randint(0, 5))]
    return {key: random_json(rng, depth + 1) for key in keys}


def random_decision(rng: random.Random) -> dict[str, Any]:
    """A decision-shaped object whose fields hold arbitrary values (reaches the field checks)."""
    value: dict[str, Any] = {"decision": rng.choice(["approve", "reject", "redo", random_json(rng, 3)])}
    for field in ("segments", "prompts", "note", "by"):
        if rng.random() < 0.6:
            value[field] = random_json(rng, 1)
    if rng.random() < 0.3:
        value["segments"] = [
            rng.choice([random_text(rng), rng.randint(-3, 12)]) for _ in range(rng.randint(0, 4))
        ]
    if rng.random() < 0.3:
        value["prompts"] = {random_text(rng): random_json(rng, 3) for _ in range(rng.randint(0, 3))}
    return value


def check_outcome(parse: Any, *args: Any) -> DecisionRequest | None:
    """The property: a valid DecisionRequest, or a DecisionError with a short reason — never another exception."""
    try:
        request = parse(*args)
    except DecisionError as exc:
        reason = str(exc)
    else:
        reason = ""
    if reason:
        assert len(reason) < 1500
        return None
    assert isinstance(request, DecisionRequest)
    DecisionRequest.model_validate(request.model_dump())  # it is valid as it stands
    assert all(isinstance(n, int) and 1 <= n <= 999_999 for n in request.segments)
    assert set(request.prompts) <= set(request.segments)
    assert request.note is None or len(request.note) <= 2000
    assert request.decision != "redo" or request.segments
    return request


def test_fuzz_variable_values() -> None:
    rng = random.Random(20261130)
    accepted = 0
    for _ in range(4000):
        value = random_decision(rng) if rng.random() < 0.5 else random_json(rng)
        for raw in (value, json.dumps(value), random_text(rng)):
            accepted += check_outcome(parse_variable_value, raw) is not None
    assert accepted > 100  # the generator does reach valid decisions, not only errors


def test_fuzz_form_answers() -> None:
    rng = random.Random(14)
    accepted = 0
    for _ in range(4000):
        options: Any = [rng.choice([APPROVE, REJECT, REDO])] if rng.random() < 0.8 else random_json(rng)
        params: Any = {
            field: (
                [random_text(rng) for _ in range(rng.randint(0, 4))]
                if rng.random() < 0.5
                else random_json(rng, 1)
            )
            for field in rng.sample(["segments", "prompts", "note", "other"], rng.randint(0, 4))
        }
        if rng.random() < 0.1:
            params = random_json(rng)
        accepted += check_outcome(parse_form_answer, options, params) is not None
    assert accepted > 100


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def test_the_nesting_bound_counts_what_json_parses() -> None:
    """The scan before parsing agrees with the parsed value's depth; brackets and quotes in strings do not
    count (the random strings are full of ``[``, ``{``, ``"`` and ``\\``)."""
    rng = random.Random(3)
    for _ in range(2000):
        value = {"decision": "approve", "by": random_json(rng)}
        try:
            parse_variable_value(json.dumps(value))
            reason = ""
        except DecisionError as exc:
            reason = str(exc)
        assert ("nested too deeply" in reason) == (depth_of(value) > 4), value


# -- picks: which take goes forward -------------------------------------------------------------------------


def test_picks_from_the_variable_and_the_form_are_the_same_decision() -> None:
    by_variable = parse_variable_value('{"decision": "approve", "picks": {"3": 2, "1": 4}}')
    by_form = parse_form_answer(["Approve"], {"segments": None, "picks": {"3": 2, "1": 4}, "note": None})
    assert by_variable.picks == by_form.picks == {3: 2, 1: 4}
    assert by_form.decision == "approve" and by_form.segments == []


def test_picks_as_json_text_or_an_empty_field_are_read_as_the_object_or_none() -> None:
    assert parse_form_answer(["Approve"], {"picks": ' {"3": 2} '}).picks == {3: 2}
    assert parse_form_answer(["Approve"], {"picks": ""}).picks == {}
    assert parse_form_answer(["Approve"], {"picks": "  "}).picks == {}
    assert parse_form_answer(["Approve"], {"picks": {}}).picks == {}
    for text in ('{"3": ', "[[[[[[[[1]]]]]]]]", "x" * 20_000):
        with pytest.raises(DecisionError, match=r"picks|nested"):
            parse_form_answer(["Approve"], {"picks": text})


def test_a_redo_carries_picks_for_the_segments_it_keeps() -> None:
    request = parse_form_answer(["Redo segments"], {"segments": ["2"], "picks": {"1": 2}})
    assert (request.decision, request.segments, request.picks) == ("redo", [2], {1: 2})


def test_a_reject_picks_nothing_whatever_the_field_holds() -> None:
    assert parse_form_answer(["Reject"], {"picks": "not an object"}).picks == {}
    assert parse_variable_value('{"decision": "reject", "picks": {"1": 2}}').picks == {}


@pytest.mark.parametrize(
    "picks",
    [
        {"3": "2"},
        {"3": 2.0},
        {"3": True},
        {"3": 0},
        {"3": 5},
        {"x": 1},
        {"²": 1},
        {"3": None},
        [3, 2],
        "3: 2",
        7,
    ],
    ids=["string", "float", "bool", "zero", "five", "word", "superscript", "null", "list", "text", "number"],
)
def test_a_pick_that_is_not_a_segment_and_a_take_number_is_refused(picks: Any) -> None:
    with pytest.raises(DecisionError, match="picks"):
        parse_form_answer(["Approve"], {"picks": picks})
    with pytest.raises(DecisionError):
        parse_variable_value(json.dumps({"decision": "approve", "picks": picks}))


def test_too_many_picks_are_refused_before_they_are_read() -> None:
    with pytest.raises(DecisionError, match="at most 1000"):
        parse_form_answer(["Approve"], {"picks": {str(i): 1 for i in range(1, 1200)}})


def test_picks_are_checked_against_the_gates_segments_and_their_takes() -> None:
    two_takes = VideoSegment(
        index=1,
        prompt="p",
        duration_s=5,
        seed=1,
        image_key="jobs/j/images/001.png",
        image_takes=["jobs/j/images/001.png", "jobs/j/images/001.t2.png"],
    )
    one_take = VideoSegment(index=2, prompt="p", duration_s=5, seed=2, image_key="jobs/j/images/002.png")
    check_picks(
        parse_variable_value('{"decision": "approve", "picks": {"1": 2, "2": 1}}'),
        [two_takes, one_take],
        "images",
    )
    for picks, problem in (
        ('{"1": 3}', "segment 1 has 2 takes"),
        ('{"2": 2}', "segment 2 has 1 take"),
        ('{"9": 1}', "segment 9 is not in this job"),
    ):
        request = parse_variable_value(f'{{"decision": "approve", "picks": {picks}}}')
        with pytest.raises(DecisionError, match=f"picks: {problem}"):
            check_picks(request, [two_takes, one_take], "images")
    # the clips gate looks at the clips' takes: segment 1 has one clip
    with pytest.raises(DecisionError, match="segment 1 has 1 take"):
        check_picks(parse_variable_value('{"decision": "approve", "picks": {"1": 2}}'), [two_takes], "clips")
