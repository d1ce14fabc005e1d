"""Every Airflow symbol we use that is not part of Airflow's public interface, in one place.

Public means the Task SDK (``airflow.sdk`` and its ``exceptions``), the extension points (``airflow.triggers.base``,
``airflow.listeners``, ``airflow.plugins_manager``) and providers (``airflow.providers.*``). Anything else is
Airflow's own machinery, which an upgrade may move or drop without notice. Code elsewhere takes such symbols
from this module (``from video_pipeline_airflow.compat import upsert_hitl_detail``, or the functions below),
and ``tests/plugins/test_compat.py`` imports each one by the path in :data:`SYMBOLS` and checks that no other
module imports Airflow's internals, so an upgrade that moves one fails a test that names it instead of breaking
a gate, a stop or the preview route at some later moment.

The imports happen on first use, not at import time: this module is imported by the listener that every
Airflow process loads (each task process too), and the triggerer's internals are large. A module that takes a
symbol with ``from … import`` loads it when that module is imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:  # what the type checker sees; at run time :func:`__getattr__` loads each from SYMBOLS
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.core_api.security import get_user
    from airflow.configuration import conf
    from airflow.models.dag import DagModel
    from airflow.models.dagrun import DagRun
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.sdk.execution_time.hitl import (
        get_hitl_detail_content_detail,
        update_hitl_detail_response,
        upsert_hitl_detail,
    )
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
    from airflow.sdk.execution_time.xcom import XCom
    from airflow.utils.session import create_session

__all__ = [
    "SYMBOLS",
    "BaseUser",
    "DagDetails",
    "DagModel",
    "DagRun",
    "HITLDetail",
    "RuntimeTaskInstance",
    "TaskInstance",
    "XCom",
    "conf",
    "create_session",
    "get_auth_manager",
    "get_hitl_detail_content_detail",
    "get_user",
    "runtime_task_instance",
    "task_sdk_stats",
    "update_hitl_detail_response",
    "upsert_hitl_detail",
    "user_action_cancel_message",
    "xcom_backend",
]


class InternalSymbol(NamedTuple):
    module: str
    name: str
    why: str

    def load(self) -> Any:
        return getattr(importlib.import_module(self.module), self.name)


_HITL = "airflow.sdk.execution_time.hitl"
_STATS = "airflow.sdk.observability.stats"
_SHARED_STATS = "airflow.sdk._shared.observability.metrics.stats"
_AUTH_MODELS = "airflow.api_fastapi.auth.managers.models"

#: name -> where it lives in Airflow 3.3.2 and what we use it for.
SYMBOLS: dict[str, InternalSymbol] = {
    "RuntimeTaskInstance": InternalSymbol(
        "airflow.sdk.execution_time.task_runner",
        "RuntimeTaskInstance",
        "its static get_task_states / get_dr_count ask the api-server, from a trigger, whether the task it "
        "waits for is still deferred (the way Airflow's own provider triggers decide safe_to_cancel); "
        "get_dagrun_state tells the nightly DAG how a run it triggered ended",
    ),
    "XCom": InternalSymbol(
        "airflow.sdk.execution_time.xcom",
        "XCom",
        "the XCom backend ([core] xcom_backend) as task code gets it: the provider trigger stores the return "
        "value of a segment task it ends with it (TaskSuccessEvent's own xcoms reach downstream tasks "
        "JSON-encoded twice in 3.3.2, docs/notes/airflow-3.3.md)",
    ),
    "USER_ACTION_CANCEL_MSG": InternalSymbol(
        "airflow.jobs.triggerer_job_runner",
        "_USER_ACTION_CANCEL_MSG",
        "the message the triggerer cancels a trigger with when a person acted on its task; a shutdown "
        "cancels without one",
    ),
    "upsert_hitl_detail": InternalSymbol(
        _HITL,
        "upsert_hitl_detail",
        "the approval gate writes its review request (subject, markdown body, options, form fields) the way "
        "HITLOperator.execute does, then defers to its own trigger instead of waiting in awaiting_input",
    ),
    "get_hitl_detail_content_detail": InternalSymbol(
        _HITL,
        "get_hitl_detail_content_detail",
        "the gate trigger polls the review request for an answer from the form or REST; the gate operator "
        "checks that an answer belongs to the current opening of the gate",
    ),
    "update_hitl_detail_response": InternalSymbol(
        _HITL,
        "update_hitl_detail_response",
        "the gate trigger records a Variable's or a timeout's answer in the review request, so the UI shows "
        "the gate answered and a second answer is refused",
    ),
    "get_auth_manager": InternalSymbol(
        "airflow.api_fastapi.app",
        "get_auth_manager",
        "the preview route asks the api-server's auth manager whether the caller may read the DAG",
    ),
    "get_user": InternalSymbol(
        "airflow.api_fastapi.core_api.security",
        "get_user",
        "the preview route authenticates its caller the way Airflow's REST API does (token or UI cookie)",
    ),
    "BaseUser": InternalSymbol(
        f"{_AUTH_MODELS}.base_user", "BaseUser", "the type of the authenticated caller of the preview route"
    ),
    "DagDetails": InternalSymbol(
        f"{_AUTH_MODELS}.resource_details",
        "DagDetails",
        "names the DAG (and its team) in the preview route's authorisation check",
    ),
    "DagModel": InternalSymbol(
        "airflow.models.dag",
        "DagModel",
        "its get_team_name gives the DAG's team for the preview route's check when multi-team is on",
    ),
    "TaskInstance": InternalSymbol(
        "airflow.models.taskinstance",
        "TaskInstance",
        "the review page finds the task instance it is shown on (is it a gate? its request's id)",
    ),
    "DagRun": InternalSymbol(
        "airflow.models.dagrun",
        "DagRun",
        "the review page reads the run's conf (the job spec) for the job id",
    ),
    "HITLDetail": InternalSymbol(
        "airflow.models.hitl",
        "HITLDetail",
        "the review page reads whether (and by whom) the gate's request was answered",
    ),
    "create_session": InternalSymbol(
        "airflow.utils.session",
        "create_session",
        "the review page reads the metadata database in the api-server (task instance, run, request)",
    ),
    "conf": InternalSymbol(
        "airflow.configuration",
        "conf",
        "the api-server's configuration: [api] base_url for preview links, [core] multi_team for the route",
    ),
    # Metrics. Airflow 3.3's answer for custom metrics from task code is ``from airflow.sdk.observability
    # import stats`` (the module that replaced ``airflow.stats``); it is a submodule of the Task SDK, not its
    # namespace, so it lives here with what initialises it where Airflow has not.
    "stats_incr": InternalSymbol(_STATS, "incr", "counts the pipeline's counters (metrics.py)"),
    "stats_timing": InternalSymbol(_STATS, "timing", "records the pipeline's timers (metrics.py)"),
    "stats_initialize": InternalSymbol(
        _STATS,
        "initialize",
        "sets up the metrics backend in a process where Airflow has not (the triggerer's trigger runner, "
        "the api-server's stop handlers): a task process is set up by the task runner",
    ),
    "stats_factory": InternalSymbol(
        f"{_SHARED_STATS}",
        "_factory",
        "None until the Task SDK's metrics client was initialised in this process",
    ),
    "get_stats_factory": InternalSymbol(
        "airflow.sdk.observability.metrics.stats_utils",
        "get_stats_factory",
        "the backend [metrics] configures (StatsD, DogStatsD, OpenTelemetry or none), as the task runner does",
    ),
    "sdk_conf": InternalSymbol(
        "airflow.sdk.configuration", "conf", "[metrics] legacy_names_on, as the task runner reads it"
    ),
}


def __getattr__(name: str) -> Any:
    """``compat.<name>`` and ``from compat import <name>``: the symbol, imported now."""
    if name in SYMBOLS:
        return SYMBOLS[name].load()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def runtime_task_instance() -> Any:
    """``airflow.sdk.execution_time.task_runner.RuntimeTaskInstance`` (its static state queries)."""
    return SYMBOLS["RuntimeTaskInstance"].load()


def task_sdk_stats() -> Any:
    """``airflow.sdk.observability.stats``, with its backend set up from ``[metrics]`` if nothing in this
    process did yet (the task runner does it for task processes; the triggerer and the api-server set up
    only their own copy of the client, not the Task SDK's)."""
    if SYMBOLS["stats_factory"].load() is None:
        SYMBOLS["stats_initialize"].load()(
            factory=SYMBOLS["get_stats_factory"].load()(),
            export_legacy_names=SYMBOLS["sdk_conf"].load().getboolean("metrics", "legacy_names_on"),
        )
    return importlib.import_module(_STATS)


def xcom_backend() -> Any:
    """``airflow.sdk.execution_time.xcom.XCom``: the configured XCom backend class (``aset`` from a trigger)."""
    return SYMBOLS["XCom"].load()


def user_action_cancel_message() -> str:
    """The triggerer's private ``CancelledError`` message for "a person acted on this task"."""
    return str(SYMBOLS["USER_ACTION_CANCEL_MSG"].load())
