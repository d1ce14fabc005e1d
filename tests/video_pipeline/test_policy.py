"""The deployment's bounds on a spec: gates for nightly runs, a maximum budget, a budget for paid providers."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from video_pipeline.costs import stage_estimates
from video_pipeline.models import JobSpec
from video_pipeline.policy import (
    MAX_BUDGET_CREDITS,
    NIGHTLY_APPROVAL,
    REQUIRE_BUDGET,
    Policy,
    PolicyError,
    check_policy,
    is_nightly,
    parse_policy,
)
from video_pipeline.segmentation import segments_for


def spec(**overrides: Any) -> JobSpec:
    return JobSpec.model_validate(
        {"job_id": "p", "title": "Policy", "segments": [{"prompt": "a fox", "duration_s": 4}], **overrides}
    )


def estimate(job: JobSpec) -> float:
    return sum(stage_estimates(job, segments_for(job)).values())


def test_defaults_require_a_budget_for_paid_jobs_only() -> None:
    assert parse_policy({}) == Policy(nightly_approval="none", max_budget_credits=None, require_budget=True)
    assert parse_policy({NIGHTLY_APPROVAL: " ", MAX_BUDGET_CREDITS: "", REQUIRE_BUDGET: None}) == Policy()


def test_settings_are_parsed_leniently_in_case_and_spaces() -> None:
    policy = parse_policy({NIGHTLY_APPROVAL: " Both ", MAX_BUDGET_CREDITS: " 500\n", REQUIRE_BUDGET: "False"})
    assert policy == Policy(nightly_approval="both", max_budget_credits=500, require_budget=False)
    assert parse_policy({REQUIRE_BUDGET: "yes"}).require_budget is True


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        (NIGHTLY_APPROVAL, "always"),
        (MAX_BUDGET_CREDITS, "-5"),
        (MAX_BUDGET_CREDITS, "5.5"),
        (MAX_BUDGET_CREDITS, "lots"),
        (MAX_BUDGET_CREDITS, "²"),  # isdigit() but not a number int() reads
        (MAX_BUDGET_CREDITS, "9" * 5000),
        (REQUIRE_BUDGET, "maybe"),
    ],
)
def test_an_unreadable_setting_is_refused_naming_the_variable(setting: str, value: str) -> None:
    with pytest.raises(PolicyError, match=f"^Variable {setting}: "):
        parse_policy({setting: value})


def test_a_paid_provider_is_one_whose_estimate_is_above_zero() -> None:
    assert estimate(spec(provider="storyboard")) == 0
    assert estimate(spec(provider="runway")) > 0


def test_a_paid_job_without_a_budget_is_refused() -> None:
    runway = spec(provider="runway")
    with pytest.raises(PolicyError) as info:
        check_policy(runway, estimate_credits=estimate(runway), nightly=False, policy=Policy())
    message = str(info.value)
    assert message.startswith("budget_credits: required for provider 'runway'") and REQUIRE_BUDGET in message
    check_policy(
        spec(provider="runway", budget_credits=100), estimate_credits=25, nightly=False, policy=Policy()
    )
    check_policy(runway, estimate_credits=25, nightly=False, policy=Policy(require_budget=False))
    check_policy(spec(), estimate_credits=0, nightly=True, policy=Policy())  # offline: no budget needed


def test_the_maximum_budget() -> None:
    policy = Policy(max_budget_credits=100, require_budget=False)
    check_policy(
        spec(provider="runway", budget_credits=100), estimate_credits=25, nightly=False, policy=policy
    )
    with pytest.raises(
        PolicyError, match=rf"^budget_credits: 101 is over .* 100 \(Variable {MAX_BUDGET_CREDITS}\)"
    ):
        check_policy(spec(budget_credits=101), estimate_credits=0, nightly=False, policy=policy)
    # a maximum means nothing for a paid job with no budget at all, even where budgets are not required
    with pytest.raises(
        PolicyError, match=rf"^budget_credits: required .*{MAX_BUDGET_CREDITS} caps a job at 100"
    ):
        check_policy(spec(provider="runway"), estimate_credits=25, nightly=False, policy=policy)


APPROVALS = ["both", "images", "clips", "none"]
GATES = {"both": {"images", "clips"}, "images": {"images"}, "clips": {"clips"}, "none": set()}


def test_nightly_gates_over_every_combination() -> None:
    """Every spec approval × on_gate_timeout × required gates × nightly or not, against the rule stated plainly:
    a nightly run needs every required gate, and may not approve a required gate by timeout."""
    for approval, on_timeout, required, nightly in itertools.product(
        APPROVALS, ["reject", "approve"], APPROVALS, [True, False]
    ):
        job = spec(approval=approval, on_gate_timeout=on_timeout)
        policy = Policy(nightly_approval=required)  # type: ignore[arg-type]
        missing = GATES[required] - GATES[approval]
        refused_for = (
            (
                "approval"
                if missing
                else "on_gate_timeout"
                if GATES[required] and on_timeout == "approve"
                else None
            )
            if nightly
            else None
        )
        case = (approval, on_timeout, required, nightly)
        if refused_for is None:
            check_policy(job, estimate_credits=0, nightly=nightly, policy=policy)
            continue
        with pytest.raises(PolicyError) as info:
            check_policy(job, estimate_credits=0, nightly=nightly, policy=policy)
        assert str(info.value).startswith(f"{refused_for}: nightly runs must"), case
        assert f"Variable {NIGHTLY_APPROVAL} = {required}" in str(info.value), case


def test_nightly_runs_are_the_ones_the_nightly_dag_names() -> None:
    assert is_nightly("nightly__fox__0123456789ab")
    assert not is_nightly("manual__2026-01-01T00:00:00+00:00")
    assert not is_nightly("scheduled__nightly__x") and not is_nightly(None) and not is_nightly("")
