"""Deployment policy: bounds a job spec must keep that the deployment sets, not whoever writes the spec.

Anyone who can trigger a run or drop a file in the nightly inbox writes the whole spec, ``approval: none`` and
no budget included. The deployment bounds that with three settings (Airflow Variables of the same names; the
adapter reads them, this module only parses and applies them):

- ``video_pipeline_nightly_approval``: the gates every nightly run must have (``both``, ``images``, ``clips``;
  ``none``, the default, sets no rule). A nightly run that must be gated may not approve a gate by timeout.
- ``video_pipeline_max_budget_credits``: the largest ``budget_credits`` a job may give (default: no maximum).
- ``video_pipeline_require_budget``: a job whose provider charges (its estimate is above 0 credits) must give
  ``budget_credits`` (default ``true``; ``false`` allows unlimited paid jobs).

Every refusal names the spec's field and the setting that refused it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

from video_pipeline.models import ApprovalMode, JobSpec, Stage

NIGHTLY_APPROVAL = "video_pipeline_nightly_approval"
MAX_BUDGET_CREDITS = "video_pipeline_max_budget_credits"
REQUIRE_BUDGET = "video_pipeline_require_budget"
SETTINGS = (NIGHTLY_APPROVAL, MAX_BUDGET_CREDITS, REQUIRE_BUDGET)

#: Run ids the nightly DAG gives the runs it triggers (``inbox.run_id_for``).
NIGHTLY_RUN_PREFIX = "nightly__"

_GATES: dict[str, tuple[Stage, ...]] = {
    "both": ("images", "clips"),
    "images": ("images",),
    "clips": ("clips",),
    "none": (),
}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class PolicyError(ValueError):
    """A spec outside the deployment's bounds, or a setting that cannot be read; the message names both."""


@dataclass(frozen=True)
class Policy:
    nightly_approval: ApprovalMode = "none"
    max_budget_credits: int | None = None
    require_budget: bool = True


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def parse_policy(settings: Mapping[str, object]) -> Policy:
    """The policy from its settings' raw values (a missing or empty value takes the default)."""
    approval = (_text(settings.get(NIGHTLY_APPROVAL)) or "none").lower()
    if approval not in get_args(ApprovalMode):
        raise PolicyError(
            f"Variable {NIGHTLY_APPROVAL}: {approval!r} is not one of {', '.join(get_args(ApprovalMode))}"
        )
    raw_max = _text(settings.get(MAX_BUDGET_CREDITS))
    maximum = None
    if raw_max is not None:
        if not raw_max.isascii() or not raw_max.isdigit() or len(raw_max) > 15:
            raise PolicyError(f"Variable {MAX_BUDGET_CREDITS}: {raw_max!r} is not a whole number of credits")
        maximum = int(raw_max)
    raw_require = (_text(settings.get(REQUIRE_BUDGET)) or "true").lower()
    if raw_require not in _TRUE | _FALSE:
        raise PolicyError(f"Variable {REQUIRE_BUDGET}: {raw_require!r} is not true or false")
    return Policy(
        nightly_approval=approval,  # type: ignore[arg-type]  # checked against ApprovalMode above
        max_budget_credits=maximum,
        require_budget=raw_require in _TRUE,
    )


def is_nightly(run_id: str | None) -> bool:
    return bool(run_id) and str(run_id).startswith(NIGHTLY_RUN_PREFIX)


def check_policy(job: JobSpec, *, estimate_credits: float, nightly: bool, policy: Policy) -> None:
    """Refuse a spec outside the policy: ``estimate_credits`` is what the job is expected to cost (above 0
    means its provider charges), ``nightly`` whether the nightly batch triggered the run."""
    if nightly:
        _check_nightly_gates(job, policy)
    paid = estimate_credits > 0
    budget = job.budget_credits
    if policy.max_budget_credits is not None and budget is not None and budget > policy.max_budget_credits:
        raise PolicyError(
            f"budget_credits: {budget} is over this deployment's maximum of {policy.max_budget_credits} "
            f"(Variable {MAX_BUDGET_CREDITS})"
        )
    if paid and budget is None and (policy.require_budget or policy.max_budget_credits is not None):
        because = (
            f"Variable {REQUIRE_BUDGET} is true"
            if policy.require_budget
            else f"Variable {MAX_BUDGET_CREDITS} caps a job at {policy.max_budget_credits}"
        )
        raise PolicyError(
            f"budget_credits: required for provider {job.provider!r}, which charges (this job is estimated at "
            f"{estimate_credits:g} credits; {because})"
        )


def _check_nightly_gates(job: JobSpec, policy: Policy) -> None:
    required = _GATES[policy.nightly_approval]
    missing = [stage for stage in required if not job.gated(stage)]
    setting = f"Variable {NIGHTLY_APPROVAL} = {policy.nightly_approval}"
    if missing:
        raise PolicyError(
            f"approval: nightly runs must wait for a reviewer at {' and '.join(required)} ({setting}); this "
            f"spec has approval {job.approval!r}, which skips {' and '.join(missing)}"
        )
    if required and job.on_gate_timeout == "approve":
        raise PolicyError(
            f"on_gate_timeout: nightly runs must not approve a gate nobody answered ({setting}); use 'reject'"
        )
