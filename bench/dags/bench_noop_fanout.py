"""Airflow's own floor for the pipeline's task graph: the shape of ``video_generation`` with no-op tasks.

``start`` → ``stage_n`` (N mapped, over start's list: the narration) → ``stage_a`` (N mapped, over stage_n's
output: the images) → ``gate_a`` → ``stage_b`` (N mapped, over gate_a's list: the clips) → ``gate_b`` →
``assemble`` → ``publish``: 3N + 5 task instances, each a real task process that does nothing. Same
``max_active_tasks`` as ``video_generation``; no pools. Trigger with conf ``{"n": 1000}``. Used by
``bench/scale.py``.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param, dag, task


@dag(
    dag_id="bench_noop_fanout",
    schedule=None,
    catchup=False,
    max_active_tasks=16,
    params={"n": Param(1000, type="integer", minimum=1, maximum=10_000)},
    tags=["bench"],
)
def bench_noop_fanout() -> None:
    @task
    def start(**context: Any) -> list[int]:
        return list(range(int(context["params"]["n"])))

    @task
    def stage_n(i: int) -> int:
        return i

    @task
    def stage_a(i: int) -> int:
        return i

    @task
    def gate_a(items: list[int]) -> list[int]:
        return list(items)

    @task
    def stage_b(i: int) -> int:
        return i

    @task
    def gate_b(items: list[int]) -> list[int]:
        return list(items)

    @task
    def assemble(items: list[int]) -> int:
        return len(items)

    @task
    def publish(count: int) -> int:
        return count

    # Airflow types XComArg wiring loosely (as the mypy override for dags/ in pyproject.toml says).
    narrated = stage_n.expand(i=start())
    images = stage_a.expand(i=narrated)
    publish(assemble(gate_b(stage_b.expand(i=gate_a(images)))))  # type: ignore[arg-type]


bench_noop_fanout()
