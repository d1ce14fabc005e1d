"""Gate decisions: the Variable contract and the reviewer's answer, parsed and checked in one place.

A decision arrives either from the Airflow UI/REST form (an option label plus form params) or from the
Variable ``video_approval__<job_id>__<stage>`` whose value is ``approve``, ``reject`` or JSON
``{"decision": "approve"|"reject"|"redo", "segments": [3, 7], "prompts": {"3": "…"}, "narrations": {"7": "…"},
"note": "…", "by": "…"}`` (a new narration is spoken again: only that segment's).

Anyone who can write a Variable or call the REST API can send anything, so both parsers are total: whatever
the value (any JSON type, any size, any nesting), they return a :class:`DecisionRequest` or raise
:class:`DecisionError` — never another exception. The gate drops a DecisionError with the reason logged and
keeps waiting; any other exception would fail the gate, and its retry would replay the same answer. Sizes are
bounded before any parsing work (raw length, nesting depth, item counts, digits of a number), and error
messages never echo more than a short, safe excerpt of the input.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from video_pipeline.models import (
    MAX_NARRATION_CHARS,
    MAX_PROMPT_CHARS,
    MAX_TAKES,
    Prompt,
    Stage,
    VideoSegment,
)
from video_pipeline.takes import pick_errors

APPROVE = "Approve"
REJECT = "Reject"
REDO = "Redo segments"
OPTIONS = [APPROVE, REJECT, REDO]
OPTION_TO_DECISION: dict[str, Literal["approve", "reject", "redo"]] = {
    APPROVE: "approve",
    REJECT: "reject",
    REDO: "redo",
}
DECISION_TO_OPTION = {value: key for key, value in OPTION_TO_DECISION.items()}

#: What the review page puts in an answer's ``source`` field: the gate records the answer as made there
#: (``via: review-page``) rather than in the Required Action form (``via: ui``).
REVIEW_PAGE = "review-page"

#: Bounds on an answer. A Variable's raw text is measured before JSON parsing; nesting is measured before
#: parsing too (the deepest valid decision is 2: ``{"prompts": {"3": "…"}}``).
MAX_VARIABLE_CHARS = 256 * 1024
MAX_DEPTH = 4
MAX_VALUES = 10_000  # list items + object members + scalars in a decision value not given as text
MAX_SEGMENT_DIGITS = 6
MAX_SEGMENT_NUMBER = 10**MAX_SEGMENT_DIGITS - 1
MAX_LISTED_SEGMENTS = 1000  # segment numbers in one redo (the default job cap is 500 segments)
MAX_REPLACEMENT_PROMPTS = 100
MAX_NOTE_CHARS = 2000
MAX_BY_CHARS = 200
#: The longest line the form's prompts field takes: "<number>: " and a full-length prompt, with some spaces.
MAX_PROMPT_LINE_CHARS = MAX_SEGMENT_DIGITS + 2 + MAX_PROMPT_CHARS + 100
MAX_SEGMENT_LINE_CHARS = MAX_SEGMENT_DIGITS + 14  # a number with surrounding spaces
#: The longest line the form's narrations field takes: "<number>: " and a full-length narration.
MAX_NARRATION_LINE_CHARS = MAX_SEGMENT_DIGITS + 2 + MAX_NARRATION_CHARS + 100

SEGMENT_NUMBER_HINT = f"segment numbers are whole numbers from 1 to {MAX_SEGMENT_NUMBER}, one per line"


class DecisionError(ValueError):
    """A decision value that cannot be acted on; the message says what a valid one looks like."""


def shown(value: Any, limit: int = 40) -> str:
    """A short, safe rendering of part of an answer for an error message.

    Never ``repr`` of a container (a deeply nested one raises RecursionError) or of a huge integer (over 4300
    digits raises ValueError), and never more than ``limit`` characters of a string.
    """
    if isinstance(value, str):
        return repr(value if len(value) <= limit else value[:limit] + "…")
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "a very large number"
    return f"a {type(value).__name__}"


def _segment_number(value: Any) -> int:
    """A segment number: an integer, or a string of ASCII digits (``"3"``, ``" 12 "``); nothing else.

    ``str.isdigit`` is not enough: ``"²"`` and ``"①"`` are digits to it and ``int()`` refuses them, and a
    5000-digit string makes ``int()`` raise; so: ASCII only, at most ``MAX_SEGMENT_DIGITS`` digits.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= MAX_SEGMENT_DIGITS:
            number = int(text)
    if number is None or not 1 <= number <= MAX_SEGMENT_NUMBER:
        raise ValueError(f"{SEGMENT_NUMBER_HINT}; got {shown(value)}")
    return number


SegmentNumber = Annotated[int, BeforeValidator(_segment_number)]

PICKS_HINT = f'picks are {{"<segment number>": <take number>}}, a take a whole number from 1 to {MAX_TAKES}'


def _take_number(value: Any) -> int:
    """A take number: a JSON integer (not a boolean, a float or a string) from 1 to ``MAX_TAKES``."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_TAKES:
        return value
    raise ValueError(f"{PICKS_HINT}; got {shown(value)}")


TakeNumber = Annotated[int, BeforeValidator(_take_number)]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "redo"]
    segments: list[SegmentNumber] = Field(default_factory=list, max_length=MAX_LISTED_SEGMENTS)
    prompts: dict[SegmentNumber, Prompt] = Field(default_factory=dict, max_length=MAX_REPLACEMENT_PROMPTS)
    narrations: dict[SegmentNumber, Annotated[str, Field(max_length=MAX_NARRATION_CHARS)]] = Field(
        default_factory=dict, max_length=MAX_REPLACEMENT_PROMPTS
    )
    picks: dict[SegmentNumber, TakeNumber] = Field(default_factory=dict, max_length=MAX_LISTED_SEGMENTS)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)
    by: str | None = Field(default=None, max_length=MAX_BY_CHARS)

    @model_validator(mode="after")
    def _prompts_name_their_segments(self) -> DecisionRequest:
        """A replacement prompt or narration names its segment: it is redone even if not listed again. A
        reject goes nowhere: it picks nothing."""
        if self.decision == "reject":
            self.picks = {}
        self.narrations = {n: text.strip() for n, text in self.narrations.items()}
        if any(not text for text in self.narrations.values()):
            raise ValueError("a new narration must hold text")
        self.segments = list(dict.fromkeys([*self.segments, *self.prompts, *self.narrations]))
        return self


def gate_task_id(stage: Stage) -> str:
    """The task id of a stage's gate in the pipeline's DAG (the review page finds the stage by it)."""
    return f"{stage}_gate"


def gate_stage(task_id: str) -> Stage | None:
    """The stage whose gate has the task id ``task_id``, if any."""
    stages: tuple[Stage, ...] = ("images", "clips")
    return next((stage for stage in stages if gate_task_id(stage) == task_id), None)


def variable_key(job_id: str, stage: Stage) -> str:
    return f"video_approval__{job_id}__{stage}"


VALID_VALUES_HINT = (
    'use "approve", "reject", or JSON like {"decision": "redo", "segments": [3, 7], "note": "…", "by": "…"}'
)


def _describe(exc: ValidationError) -> str:
    """One short line per problem, naming the field; field names taken from the input are shortened."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False)[:5]:
        parts = [_loc_part(p) for p in err["loc"]]
        loc = ".".join(p if isinstance(p, str) and len(p) <= 40 else shown(p) for p in parts)
        lines.append(f"{loc or 'value'}: {err['msg'][:200]}")
    return "; ".join(lines)


def _loc_part(part: Any) -> Any:
    return str(part) if isinstance(part, int) and not isinstance(part, bool) else part


def _validated(data: dict[str, Any], hint: str) -> DecisionRequest:
    try:
        request = DecisionRequest.model_validate(data)
    except ValidationError as exc:
        raise DecisionError(f"invalid decision: {_describe(exc)}; {hint}") from None
    if request.decision == "redo" and not request.segments:
        raise DecisionError(f'a "redo" decision needs "segments" (the numbers to regenerate); {hint}')
    return request


_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')


def _check_nesting(text: str) -> None:
    """Refuse JSON text nested deeper than MAX_DEPTH before parsing it (``json.loads`` recurses: 100 000
    nested brackets raise RecursionError). Brackets inside strings do not count."""
    depth = 0
    in_string = False
    escaped_at = -1  # the position of the character a backslash escapes
    for match in _JSON_STRUCTURE.finditer(text):
        char, at = match.group(), match.start()
        if in_string:
            if at == escaped_at:
                continue
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise DecisionError(f"decision value is nested too deeply (at most {MAX_DEPTH} levels)")
        elif char in "]}":
            depth -= 1


def _check_shape(value: Any) -> None:
    """The same bounds for a value that arrives already parsed: nesting depth, number of values, text size."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        count += 1
        if isinstance(item, dict | list | tuple):
            if depth >= MAX_DEPTH:
                raise DecisionError(f"decision value is nested too deeply (at most {MAX_DEPTH} levels)")
            count += len(item)
            if count > MAX_VALUES:
                raise DecisionError(f"decision value is too large (at most {MAX_VALUES} values)")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else list(item)
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str) and len(item) > MAX_VARIABLE_CHARS:
            raise DecisionError(f"decision value is too large (at most {MAX_VARIABLE_CHARS} characters)")


def parse_variable_value(raw: Any) -> DecisionRequest:
    """Parse a decision Variable's value; raise DecisionError saying what is wrong and what is valid."""
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw[: MAX_VARIABLE_CHARS * 4 + 1]).decode()
        except UnicodeDecodeError:
            raise DecisionError(f"decision value is not UTF-8 text: {VALID_VALUES_HINT}") from None
    if isinstance(raw, str):
        if len(raw) > MAX_VARIABLE_CHARS:
            raise DecisionError(
                f"decision value is too large ({len(raw)} characters, at most {MAX_VARIABLE_CHARS}); "
                f"{VALID_VALUES_HINT}"
            )
        text = raw.strip()
        if text.lower() in ("approve", "reject"):
            return _validated({"decision": text.lower()}, VALID_VALUES_HINT)
        _check_nesting(text)
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):  # JSONDecodeError, or a number over Python's 4300-digit limit
            raise DecisionError(
                f"decision value {shown(text)} is not understood: {VALID_VALUES_HINT}"
            ) from None
    if not isinstance(raw, dict):
        raise DecisionError(f"decision value must be a string or a JSON object: {VALID_VALUES_HINT}")
    _check_shape(raw)
    return _validated(raw, VALID_VALUES_HINT)


FORM_HINT = f'choose one of {OPTIONS}; for "{REDO}" list the segment numbers, one per line'


def parse_form_answer(chosen_options: Any, params_input: Any) -> DecisionRequest:
    """Turn the HITL form answer (option label + params) into a decision.

    The REST API stores ``params_input`` as sent (any JSON object), so every field is checked here: the
    form's own bounds (``maxLength``, ``maxItems``) only guide the UI.
    """
    if (
        not isinstance(chosen_options, list | tuple)
        or len(chosen_options) != 1
        or not isinstance(chosen_options[0], str)
        or chosen_options[0] not in OPTION_TO_DECISION
    ):
        raise DecisionError(f"choose exactly one of {OPTIONS}")
    if params_input is None:
        params: dict[Any, Any] = {}
    elif isinstance(params_input, dict):
        params = params_input
    else:
        raise DecisionError(f"the form's fields must be an object, got {shown(params_input)}")
    decision = OPTION_TO_DECISION[chosen_options[0]]
    note = _form_note(params.get("note"))
    if decision == "reject":  # the other fields are for approve and redo: whatever they hold, Reject stands
        return _validated({"decision": decision, "note": note}, FORM_HINT)
    picks = _form_picks(params.get("picks"))
    if decision == "approve":  # the segments field is for a redo only: whatever it holds, Approve stands
        return _validated({"decision": decision, "note": note, "picks": picks}, FORM_HINT)
    prompts = _form_prompts(params.get("prompts"))
    narrations = _form_prompts(params.get("narrations"), field="narrations", max_chars=MAX_NARRATION_CHARS)
    segments = list(dict.fromkeys([*_form_segments(params.get("segments")), *prompts, *narrations]))
    if not segments:
        raise DecisionError(f'"{REDO}" needs the segment numbers to regenerate')
    return _validated(
        {
            "decision": decision,
            "segments": segments,
            "prompts": prompts,
            "narrations": narrations,
            "picks": picks,
            "note": note,
        },
        FORM_HINT,
    )


#: The longest picks field given as JSON text: every segment a job may list, each ``"999999": 4, ``.
MAX_PICKS_TEXT_CHARS = MAX_LISTED_SEGMENTS * 16


def _form_picks(raw: Any) -> dict[Any, Any]:
    """The form's picks field: an object ``{"<segment number>": <take number>}`` (checked by the decision), or
    that object as JSON text (a form's JSON field may hand its text over); empty text is no picks."""
    if raw is None:
        return {}
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return {}
        if len(text) > MAX_PICKS_TEXT_CHARS:
            raise DecisionError(f"the picks field is too long (at most {MAX_PICKS_TEXT_CHARS} characters)")
        _check_nesting(text)
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise DecisionError(f"{PICKS_HINT}; got {shown(text)}") from None
    if not isinstance(raw, dict):
        raise DecisionError(f"{PICKS_HINT}; got {shown(raw)}")
    if len(raw) > MAX_LISTED_SEGMENTS:
        raise DecisionError(f"picks name {len(raw)} segments; at most {MAX_LISTED_SEGMENTS}")
    return raw


def _form_note(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise DecisionError(f"the note must be text, got {shown(raw)}")
    note = raw.strip()
    if len(note) > MAX_NOTE_CHARS:
        raise DecisionError(f"the note is {len(note)} characters long; at most {MAX_NOTE_CHARS}")
    return note or None


def _form_lines(raw: Any, field: str, max_lines: int, max_line_chars: int) -> list[Any]:
    """A form field that the UI sends as a list of lines (REST may send one string, or anything)."""
    if raw is None:
        return []
    if isinstance(raw, str):
        if len(raw) > max_lines * (max_line_chars + 1):
            raise DecisionError(f'the "{field}" field is too long')
        lines: list[Any] = raw.splitlines()
    elif isinstance(raw, list):
        lines = raw
    else:
        lines = [raw]
    if len(lines) > max_lines:
        raise DecisionError(f'the "{field}" field has {len(lines)} lines; at most {max_lines}')
    return lines


def _form_prompts(raw: Any, field: str = "prompts", max_chars: int = MAX_PROMPT_CHARS) -> dict[int, str]:
    """Replacement prompts (or narrations) from the form, one ``<segment number>: <new text>`` per line."""
    what = "prompt" if field == "prompts" else "narration"
    hint = f'replacement {field} are "<segment number>: <new {what}>", one per line'
    prompts: dict[int, str] = {}
    max_line = MAX_PROMPT_LINE_CHARS if field == "prompts" else MAX_NARRATION_LINE_CHARS
    for line in _form_lines(raw, field, MAX_REPLACEMENT_PROMPTS, max_line):
        if not isinstance(line, str):
            raise DecisionError(f"{hint}; got {shown(line)}")
        text = line.strip()
        if not text:
            continue
        number, sep, prompt = text.partition(":")
        prompt = prompt.strip()
        try:
            index = _segment_number(number) if sep and prompt else None
        except ValueError:
            index = None
        if index is None:
            raise DecisionError(f"{hint}; got {shown(text)}")
        if len(prompt) > max_chars:
            raise DecisionError(f"the new {what} for segment {index} is over {max_chars} characters")
        prompts[index] = prompt
    return prompts


def _form_segments(raw: Any) -> list[int]:
    """The form's segment numbers (strings, one per line in the UI); anything else is a DecisionError."""
    segments = []
    for item in _form_lines(raw, "segments", MAX_LISTED_SEGMENTS, MAX_SEGMENT_LINE_CHARS):
        if isinstance(item, str) and not item.strip():
            continue
        try:
            segments.append(_segment_number(item))
        except ValueError as exc:
            raise DecisionError(str(exc)) from None
    return segments


def answer_via(via: str, params_input: Any) -> str:
    """Where an answer came from: an answer from Airflow's HITL API (``ui``) that the review page sent says
    so in its ``source`` field. Only the channel: who answered is Airflow's record, whatever the field says."""
    if via == "ui" and isinstance(params_input, dict) and params_input.get("source") == REVIEW_PAGE:
        return REVIEW_PAGE
    return via


def check_segments(request: DecisionRequest, available: list[int]) -> None:
    """A redo may only name segments of this gate."""
    unknown = sorted(set(request.segments) - set(available))
    if unknown and not available:
        raise DecisionError("this gate has no segments to redo")
    if unknown:
        listed = ", ".join(map(str, unknown[:10])) + (", …" if len(unknown) > 10 else "")
        raise DecisionError(
            f"segments [{listed}] are not in this job (valid: {min(available)}–{max(available)})"
        )


def check_picks(request: DecisionRequest, segments: list[VideoSegment], stage: Stage) -> None:
    """Every pick names a segment of this gate and a take it has."""
    problems = pick_errors(request.picks, segments, stage)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DecisionError(f"picks: {'; '.join(problems[:5])}{more}")
