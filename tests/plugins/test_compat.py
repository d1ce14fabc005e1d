"""Each Airflow-internal symbol we rely on is still where ``compat`` says: an upgrade that moves one fails here,
naming it, instead of silently breaking what uses it. And no other module imports Airflow's internals."""

from __future__ import annotations

import ast
import importlib
import inspect
import typing
from pathlib import Path

import pytest

from video_pipeline_airflow import compat

REPO = Path(__file__).resolve().parents[2]
#: Airflow's public interface, as ``compat`` defines it: the Task SDK (its namespace, not its submodules, but
#: for its exceptions), and the extension points and providers with everything under them.
PUBLIC_MODULES = ("airflow.sdk", "airflow.sdk.exceptions")
PUBLIC_PACKAGES = (
    "airflow.triggers.base",
    "airflow.listeners",
    "airflow.plugins_manager",
    "airflow.providers",
)


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


@pytest.mark.parametrize("name", sorted(compat.SYMBOLS))
def test_symbol_is_importable_from_compat(name: str) -> None:
    symbol = compat.SYMBOLS[name]
    assert getattr(compat, name) is symbol.load()


def _airflow_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, module) for line, module in found if module == "airflow" or module.startswith("airflow.")]


def _public(module: str) -> bool:
    return module in PUBLIC_MODULES or any(
        module == package or module.startswith(f"{package}.") for package in PUBLIC_PACKAGES
    )


def test_only_compat_imports_airflow_internals() -> None:
    sources = [*(REPO / "plugins").rglob("*.py"), *(REPO / "dags").rglob("*.py")]
    internal = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in sources
        if path.name != "compat.py"
        for line, module in _airflow_imports(path)
        if not _public(module)
    ]
    assert not internal, "take these from video_pipeline_airflow.compat instead:\n" + "\n".join(internal)


def test_the_public_check_tells_internals_apart() -> None:
    assert (
        _public("airflow.sdk") and _public("airflow.sdk.exceptions") and _public("airflow.providers.amazon")
    )
    assert not _public("airflow.sdk.execution_time.hitl") and not _public("airflow.sdk.timezone")
    assert not _public("airflow.models.dag") and not _public("airflow.configuration")


def test_runtime_task_instance_still_answers_state_queries() -> None:
    runtime_ti = compat.runtime_task_instance()
    for method in ("get_task_states", "get_dr_count", "get_dagrun_state"):
        params = inspect.signature(getattr(runtime_ti, method)).parameters
        assert "dag_id" in params, method
    assert {"run_ids"} <= set(inspect.signature(runtime_ti.get_task_states).parameters)
    assert {"run_ids"} <= set(inspect.signature(runtime_ti.get_dr_count).parameters)
    assert {"task_ids", "map_index"} <= set(inspect.signature(runtime_ti.get_task_states).parameters)
    assert "run_id" in inspect.signature(runtime_ti.get_dagrun_state).parameters


def test_the_user_action_cancel_message_is_a_string() -> None:
    message = compat.user_action_cancel_message()
    assert isinstance(message, str) and message


def test_the_hitl_calls_take_what_the_gate_passes() -> None:
    """The keyword arguments the gate and its trigger pass, and the answer fields they read."""
    upsert = inspect.signature(compat.upsert_hitl_detail).parameters
    assert {"ti_id", "options", "subject", "body", "defaults", "multiple", "params", "assigned_users"} <= set(
        upsert
    )
    update = inspect.signature(compat.update_hitl_detail_response).parameters
    assert {"ti_id", "chosen_options", "params_input"} <= set(update)
    assert "ti_id" in inspect.signature(compat.get_hitl_detail_content_detail).parameters
    # The answer's type is named only for type checkers (the Task SDK's generated API models).
    models = importlib.import_module("airflow.sdk.api.datamodels._generated")
    answer = typing.get_type_hints(compat.get_hitl_detail_content_detail, vars(models))["return"]
    assert {
        "response_received",
        "chosen_options",
        "params_input",
        "responded_at",
        "responded_by_user",
    } <= set(answer.model_fields)


def test_the_preview_routes_auth_symbols_take_what_it_passes() -> None:
    """(``test_media_route`` runs the route against a real auth manager.)"""
    assert callable(compat.get_auth_manager) and callable(compat.get_user)
    assert {"id", "team_name"} <= set(inspect.signature(compat.DagDetails).parameters)
    assert callable(compat.DagModel.get_team_name)
    assert compat.conf.get("api", "base_url", fallback="x") is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        compat.nothing_here  # noqa: B018
