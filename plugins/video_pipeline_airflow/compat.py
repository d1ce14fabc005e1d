"""Every Airflow symbol we use that is not part of Airflow's public interface, in one place.

An Airflow upgrade may move or drop any of these without notice. Code elsewhere asks this module for them, and
``tests/plugins/test_compat.py`` imports each one by the path below, so an upgrade that moves one fails a test
that names it instead of breaking a stop (or a run) at some later moment.

The imports happen on first use, not at import time: this module is imported by the listener that every
Airflow process loads (each task process too), and the triggerer's internals are large.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple


class InternalSymbol(NamedTuple):
    module: str
    name: str
    why: str

    def load(self) -> Any:
        return getattr(importlib.import_module(self.module), self.name)


#: name -> where it lives in Airflow 3.3.2 and what we use it for.
SYMBOLS: dict[str, InternalSymbol] = {
    "RuntimeTaskInstance": InternalSymbol(
        "airflow.sdk.execution_time.task_runner",
        "RuntimeTaskInstance",
        "its static get_task_states / get_dr_count ask the api-server, from a trigger, whether the task it "
        "waits for is still deferred (the way Airflow's own provider triggers decide safe_to_cancel)",
    ),
    "USER_ACTION_CANCEL_MSG": InternalSymbol(
        "airflow.jobs.triggerer_job_runner",
        "_USER_ACTION_CANCEL_MSG",
        "the message the triggerer cancels a trigger with when a person acted on its task; a shutdown "
        "cancels without one",
    ),
}


def runtime_task_instance() -> Any:
    """``airflow.sdk.execution_time.task_runner.RuntimeTaskInstance`` (its static state queries)."""
    return SYMBOLS["RuntimeTaskInstance"].load()


def user_action_cancel_message() -> str:
    """The triggerer's private ``CancelledError`` message for "a person acted on this task"."""
    return str(SYMBOLS["USER_ACTION_CANCEL_MSG"].load())
