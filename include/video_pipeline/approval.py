"""Gate decisions: the Variable contract and the reviewer's answer, parsed and checked in one place.

A decision arrives either from the Airflow UI/REST form (an option label plus form params) or from the
Variable ``video_approval__<job_id>__<stage>`` whose value is ``approve``, ``reject`` or JSON
``{"decision": "approve"|"reject"|"redo", "segments": [3, 7], "note": "…", "by": "…"}``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from video_pipeline.models import MAX_PROMPT_CHARS, Prompt, Stage, describe_validation_error

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


class DecisionError(ValueError):
    """A decision value that cannot be acted on; the message says what a valid one looks like."""


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "redo"]
    segments: list[int] = Field(default_factory=list)
    prompts: dict[int, Prompt] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=2000)
    by: str | None = Field(default=None, max_length=200)


def variable_key(job_id: str, stage: Stage) -> str:
    return f"video_approval__{job_id}__{stage}"


VALID_VALUES_HINT = (
    'use "approve", "reject", or JSON like {"decision": "redo", "segments": [3, 7], "note": "…", "by": "…"}'
)


def parse_variable_value(raw: Any) -> DecisionRequest:
    """Parse a decision Variable's value; raise DecisionError saying what is wrong and what is valid."""
    if isinstance(raw, str):
        text = raw.strip()
        if text.lower() in ("approve", "reject"):
            return DecisionRequest(decision=text.lower())
        try:
            raw = json.loads(text)
        except json.JSONDecodeError:
            raise DecisionError(
                f"decision value {text[:40]!r} is not understood: {VALID_VALUES_HINT}"
            ) from None
    if not isinstance(raw, dict):
        raise DecisionError(f"decision value must be a string or a JSON object: {VALID_VALUES_HINT}")
    try:
        request = DecisionRequest.model_validate(raw)
    except ValidationError as exc:
        raise DecisionError(
            f"invalid decision: {describe_validation_error(exc)}; {VALID_VALUES_HINT}"
        ) from None
    if request.decision == "redo" and not request.segments:
        raise DecisionError(
            f'a "redo" decision needs "segments" (the numbers to regenerate); {VALID_VALUES_HINT}'
        )
    return request


def parse_form_answer(chosen_options: list[str], params_input: dict[str, Any] | None) -> DecisionRequest:
    """Turn the HITL form answer (option label + params) into a decision."""
    if len(chosen_options) != 1 or chosen_options[0] not in OPTION_TO_DECISION:
        raise DecisionError(f"choose exactly one of {OPTIONS}, got {chosen_options}")
    params = params_input or {}
    decision = OPTION_TO_DECISION[chosen_options[0]]
    note = params.get("note") or None
    if decision != "redo":  # the segments field is for a redo only: whatever it holds, Approve/Reject stand
        return DecisionRequest(decision=decision, note=note)
    prompts = _form_prompts(params.get("prompts"))
    segments = list(dict.fromkeys([*_form_segments(params.get("segments")), *prompts]))
    if not segments:
        raise DecisionError('"Redo segments" needs the segment numbers to regenerate')
    return DecisionRequest(decision=decision, segments=segments, prompts=prompts, note=note)


def _form_prompts(raw: Any) -> dict[int, str]:
    """Replacement prompts from the form, one ``<segment number>: <new prompt>`` per line."""
    if raw is None:
        return {}
    prompts: dict[int, str] = {}
    for line in raw if isinstance(raw, list) else [raw]:
        text = str(line).strip()
        if not text:
            continue
        number, sep, prompt = text.partition(":")
        if not sep or not number.strip().isdigit() or not prompt.strip():
            raise DecisionError(
                f'replacement prompts are "<segment number>: <new prompt>", one per line; got {text!r}'
            )
        if len(prompt.strip()) > MAX_PROMPT_CHARS:
            raise DecisionError(
                f"the new prompt for segment {number.strip()} is over {MAX_PROMPT_CHARS} characters"
            )
        prompts[int(number)] = prompt.strip()
    return prompts


def _form_segments(raw: Any) -> list[int]:
    """The form's segment numbers (strings, one per line in the UI); anything else is a DecisionError."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raw = [raw]
    segments = []
    for item in raw:
        text = str(item).strip() if isinstance(item, str | int) and not isinstance(item, bool) else "?"
        if not text:
            continue
        if not text.isdigit():
            raise DecisionError(f"segment numbers must be whole numbers, one per line; got {item!r}")
        segments.append(int(text))
    return segments


def check_segments(request: DecisionRequest, available: list[int]) -> None:
    """A redo may only name segments of this gate."""
    unknown = sorted(set(request.segments) - set(available))
    if unknown:
        raise DecisionError(
            f"segments {unknown} are not in this job (valid: {min(available)}–{max(available)})"
        )
