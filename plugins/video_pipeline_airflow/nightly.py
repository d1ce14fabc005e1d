"""Steps of the nightly batch DAG; the inbox rules themselves live in ``video_pipeline.inbox``."""

from __future__ import annotations

import logging
import os
from typing import Any

from video_pipeline import inbox
from video_pipeline_airflow import compat
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.settings import job_policy

log = logging.getLogger(__name__)
TARGET_DAG = "video_generation"


def intake(*, only_moved: bool = False) -> list[dict[str, Any]]:
    """Valid specs to run: new ones from the inbox plus any still in processing/ (re-triggering those is a
    no-op: same run id). Every file that cannot run is moved to inbox/rejected/ with its reason.

    :param only_moved: only the specs this intake moved from the inbox (the intake on a spec's arrival);
        what an earlier batch left in processing/ is the nightly batch's.
    """
    accepted, rejected = inbox.intake(get_storage(), policy=job_policy(), only_moved=only_moved)
    for spec in rejected:
        log.error("Rejected %s: %s (moved to %s)", spec.name, spec.error, inbox.REJECTED)
    log.info(
        "%s intake: %d to run, %d rejected",
        "Arrival" if only_moved else "Nightly",
        len(accepted),
        len(rejected),
    )
    return [{"name": a.name, "run_id": a.run_id, "conf": a.conf} for a in accepted]


def trigger_kwargs(spec: dict[str, Any]) -> dict[str, Any]:
    return {"trigger_run_id": spec["run_id"], "conf": spec["conf"]}


def settle(spec: dict[str, Any]) -> str:
    state = compat.runtime_task_instance().get_dagrun_state(TARGET_DAG, spec["run_id"])
    if state not in ("success", "failed"):
        raise RuntimeError(f"run {spec['run_id']} is still {state}")
    target = inbox.settle(get_storage(), spec["name"], "done" if state == "success" else "failed")
    log.info("%s: run %s ended %s → %s", spec["name"], spec["run_id"], state, target)
    return target


#: How often a batch's trigger checks on the runs it started (env; short in tests).
POKE_SECONDS = int(os.environ.get("VIDEO_PIPELINE_NIGHTLY_POKE_SECONDS", "60"))


def intake_batch(*, only_moved: bool = False) -> None:
    """The tasks of an intake DAG (nightly or on arrival), built inside the DAG: take the inbox's specs in
    (``only_moved``: only those this intake moved itself), start one ``video_generation`` run per spec and wait
    for it deferred, then settle each spec (done / failed) whatever its run's outcome."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.sdk import task

    @task(task_id="intake")
    def take_in() -> list[dict[str, Any]]:
        return intake(only_moved=only_moved)

    @task(
        task_id="settle", trigger_rule="all_done", map_index_template="{{ task.op_kwargs['spec']['name'] }}"
    )
    def settle_spec(spec: dict[str, Any]) -> str:
        return settle(spec)

    specs = take_in()
    triggered = TriggerDagRunOperator.partial(
        task_id="trigger_job",
        trigger_dag_id="video_generation",
        skip_when_already_exists=True,
        wait_for_completion=True,
        deferrable=True,
        poke_interval=POKE_SECONDS,
        map_index_template="{{ task.trigger_run_id }}",
    ).expand_kwargs(specs.map(trigger_kwargs))
    triggered >> settle_spec.expand(spec=specs)
