"""Operators called directly in these tests run inside the current context the Task Runner sets for a task
(``get_current_context()`` works in ``execute`` and ``execute_complete``, whatever context dict is passed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk.execution_time.context import set_current_context

RUN_ID = "manual__2026-11-30T09:00:00+00:00"


@pytest.fixture(autouse=True)
def task_runner_context() -> Iterator[dict[str, Any]]:
    context: Any = {"run_id": RUN_ID}
    with set_current_context(context):
        yield context
