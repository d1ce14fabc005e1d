"""Each Airflow-internal symbol we rely on is still where ``compat`` says: an upgrade that moves one fails here,
naming it, instead of silently breaking what uses it."""

from __future__ import annotations

import importlib
import inspect

import pytest

from video_pipeline_airflow import compat


@pytest.mark.parametrize("name", sorted(compat.SYMBOLS))
def test_symbol_is_where_compat_says(name: str) -> None:
    symbol = compat.SYMBOLS[name]
    try:
        module = importlib.import_module(symbol.module)
    except ImportError as exc:
        pytest.fail(f"{name}: module {symbol.module} is gone ({exc}); it was used for: {symbol.why}")
    assert hasattr(module, symbol.name), (
        f"{name}: {symbol.module}.{symbol.name} is gone; it was used for: {symbol.why}"
    )


def test_runtime_task_instance_still_answers_state_queries() -> None:
    runtime_ti = compat.runtime_task_instance()
    for method in ("get_task_states", "get_dr_count"):
        params = inspect.signature(getattr(runtime_ti, method)).parameters
        assert {"dag_id", "run_ids"} <= set(params), method
    assert {"task_ids", "map_index"} <= set(inspect.signature(runtime_ti.get_task_states).parameters)


def test_the_user_action_cancel_message_is_a_string() -> None:
    message = compat.user_action_cancel_message()
    assert isinstance(message, str) and message
