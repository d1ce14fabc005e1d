"""Hostile and partial job specs: whatever JSON arrives, validation answers with a spec that can run or a
refusal naming a field — never another exception, never a long wait.

This is the edge where the trigger form, REST, the CLI and the nightly inbox meet the domain: ``validate_job``
and ``inbox.validate_spec`` both call :func:`check` below's steps, and a crash there (rather than a refusal)
would fail a run without saying why, or stop a nightly batch.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from video_pipeline import inbox
from video_pipeline.costs import stage_estimates
from video_pipeline.models import JobSpec, describe_validation_error
from video_pipeline.policy import Policy, PolicyError, check_policy
from video_pipeline.segmentation import segments_for

BASE: dict[str, Any] = {
    "job_id": "fuzz-job",
    "title": "Fuzz",
    "segments": [
        {"prompt": "a lantern over dark water", "narration": "It glows.", "duration_s": 4},
        {"prompt": "mist on the pines", "motion_prompt": "slow pan", "duration_s": 3},
    ],
    "ratio": "1280:720",
    "provider": "storyboard",
    "seed": 7,
    "approval": "both",
}
FIELDS = [
    *BASE,
    "script",
    "segment_duration_s",
    "budget_credits",
    "gate_timeout",
    "on_gate_timeout",
    "max_redo_rounds",
    "finishing",
    "image_model",
    "video_model",
    "unknown_field",
]
SEGMENT_FIELDS = ["prompt", "motion_prompt", "narration", "duration_s", "extra"]

# Every JSON value: what a conf, a form or an inbox file can hold (strings include control, zero-width and CJK
# characters; numbers include huge, negative, fractional and boolean look-alikes).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        ["", " ", "\u200b", "4", "true", "1280:720", "none", "both", "2", "-1", "1e309", "。。"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def check(spec: Any) -> str | None:
    """Validate as ``validate_job`` does (spec, segmentation, estimate, policy); None if it can run, else the
    refusal. Any exception other than a refusal fails the test."""
    try:
        job = JobSpec.model_validate(spec)
        segments = segments_for(job)
        estimate = sum(stage_estimates(job, segments).values())
        check_policy(job, estimate_credits=estimate, nightly=True, policy=Policy(nightly_approval="both"))
    except ValidationError as exc:
        message = describe_validation_error(exc)
        assert message and ":" in message, message  # names where the problem is
        return message
    except (PolicyError, ValueError) as exc:
        refusal = str(exc)
    else:
        return None
    assert refusal
    return refusal


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values)
def test_any_value_in_any_field_is_accepted_or_refused_by_name(field: str, value: Any) -> None:
    spec = {**BASE, field: value}
    started = time.perf_counter()
    refusal = check(spec)
    assert time.perf_counter() - started < 2.0
    if refusal is None:  # it runs: the validated spec says what was asked, nothing else slipped in
        job = JobSpec.model_validate(spec)
        assert job.job_id == BASE["job_id"] or field == "job_id"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=1),
    field=st.sampled_from(SEGMENT_FIELDS),
    value=json_values,
)
def test_any_value_in_a_segment_is_accepted_or_refused_by_name(index: int, field: str, value: Any) -> None:
    segments = [dict(s) for s in BASE["segments"]]
    segments[index][field] = value
    check({**BASE, "segments": segments})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drop=st.sets(st.sampled_from(list(BASE))), spec_root=json_values)
def test_partial_specs_and_non_objects_are_refused_by_name(drop: set[str], spec_root: Any) -> None:
    """Fields left out (a partial conf) and roots that are not objects at all."""
    partial = {k: v for k, v in BASE.items() if k not in drop}
    refusal = check(partial)
    if {"job_id", "title"} & drop or "segments" in drop:
        assert refusal is not None
    if not isinstance(spec_root, dict):
        assert check(spec_root) is not None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=st.text(max_size=3000))
def test_any_script_is_split_or_refused(script: str) -> None:
    """A script job of any text (any language, any punctuation or none) splits without loss or is refused."""
    refusal = check({**{k: v for k, v in BASE.items() if k != "segments"}, "script": script})
    if refusal is None:
        job = JobSpec.model_validate({**{k: v for k, v in BASE.items() if k != "segments"}, "script": script})
        assert segments_for(job)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values, junk=st.binary(max_size=200))
def test_inbox_files_of_any_content_are_validated_or_refused(value: Any, junk: bytes) -> None:
    """The nightly inbox's validation of raw bytes: JSON of any shape, or not JSON at all."""
    for raw in (json.dumps({**BASE, "finishing": value}).encode(), junk, json.dumps(value).encode()):
        refusal = "accepted"
        try:
            inbox.validate_spec(raw, Policy())
        except inbox.SpecError as exc:
            refusal = str(exc)
        assert refusal  # accepted, or refused saying why
