"""The pipeline's metrics reach a StatsD server (UDP on loopback) through Airflow's own client, under
Airflow's prefix, with the names the README documents; a provider client reports call latency and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from video_pipeline.models import Decision
from video_pipeline.providers.port import Action, ProviderError, RemoteStatus, TaskState
from video_pipeline_airflow import compat, metrics
from video_pipeline_airflow.metered_client import AsyncMeteredClient, MeteredClient
from video_pipeline_dev.statsd_listener import StatsdListener

P = "airflow.video_pipeline"


def _initialise() -> None:
    compat.stats_initialize(factory=compat.get_stats_factory(), export_legacy_names=False)


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdListener]:
    with StatsdListener(keep="video_pipeline") as listener:
        for key, value in {
            "STATSD_ON": "True",
            "STATSD_HOST": "127.0.0.1",
            "STATSD_PORT": str(listener.port),
            "STATSD_PREFIX": "airflow",
        }.items():
            monkeypatch.setenv(f"AIRFLOW__METRICS__{key}", value)
        _initialise()
        yield listener
        monkeypatch.delenv("AIRFLOW__METRICS__STATSD_ON")
        _initialise()  # back to what the configuration says without the listener: no metrics


def test_a_run_end_counts_the_run_and_its_credits(statsd: StatsdListener) -> None:
    metrics.run_ended("succeeded", {"images": 10.0, "clips": 25.5})
    assert statsd.wait_for(f"{P}.credits_spent.clips") == [(25.5, "c")]
    assert statsd.metrics(f"{P}.credits_spent") == [(35.5, "c")]
    assert statsd.metrics(f"{P}.credits_spent.images") == [(10.0, "c")]
    assert statsd.metrics(f"{P}.runs.succeeded") == [(1.0, "c")]


def test_a_gate_answer_times_the_wait_and_counts_redone_segments(statsd: StatsdListener) -> None:
    at = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    redo = Decision(
        stage="images",
        decision="redo",
        segments=[2, 5],
        via="ui",
        at=at,
        opened_at=at - timedelta(seconds=90),
    )
    metrics.gate_answered(redo)
    metrics.gate_answered(Decision(stage="clips", decision="approve", via="auto", at=at))  # never opened
    assert statsd.wait_for(f"{P}.segments_redone.images") == [(2.0, "c")]
    assert statsd.metrics(f"{P}.gate_wait.images") == [(90000.0, "ms")]
    assert not statsd.metrics(f"{P}.gate_wait.clips")


def test_segments_are_counted_as_generated_or_from_the_cache(statsd: StatsdListener) -> None:
    metrics.segment_done("clips", from_cache=False)
    metrics.segment_done("clips", from_cache=True)
    assert statsd.wait_for(f"{P}.segments_from_cache.clips") == [(1.0, "c")]
    assert statsd.metrics(f"{P}.segments_generated.clips") == [(1.0, "c")]


def test_metrics_go_out_where_no_airflow_process_set_the_client_up(statsd: StatsdListener) -> None:
    """The triggerer's trigger runner and the api-server initialise only their own copy of the client."""
    compat.stats_initialize(factory=None, export_legacy_names=False)
    metrics.segment_done("images", from_cache=False)
    assert statsd.wait_for(f"{P}.segments_generated.images") == [(1.0, "c")]


def test_names_keep_one_segment_per_dimension() -> None:
    assert metrics.name("provider", "fal.ai/x", "status") == "video_pipeline.provider.fal_ai_x.status"


class ProviderClient:
    """A provider's client as the port describes it: one task that failed on the provider's side, and a
    provider that refuses new work (what a real client raises after its own retries)."""

    entered = exited = False

    def __enter__(self) -> ProviderClient:
        self.entered = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.exited = True

    def status(self, task_id: str) -> RemoteStatus:
        return RemoteStatus(
            provider="acme", task_id=task_id, state=TaskState.FAILED, code="BAD_OUTPUT", action=Action.RESEED
        )

    def submit_image(self, request: Any) -> str:
        raise ProviderError("busy", action=Action.UNAVAILABLE)

    def download(self, url: str, dest: Path, *, kind: str) -> Path:
        raise OSError("disk full")

    def organization(self) -> dict[str, Any]:
        return {"tier": 1}


def test_a_metered_client_times_calls_and_counts_errors_by_class(statsd: StatsdListener) -> None:
    inner = ProviderClient()
    with MeteredClient(inner, "acme") as client:  # type: ignore[arg-type]
        status = client.status("t1")
        with pytest.raises(ProviderError):
            client.submit_image(None)
        with pytest.raises(OSError, match="disk full"):
            client.download("https://x", Path("/nowhere"), kind="images")
        assert client.organization() == {"tier": 1}  # not a port call: passed through, not timed
    assert inner.entered and inner.exited and status.state == TaskState.FAILED
    assert statsd.wait_for(f"{P}.provider_errors.acme.unexpected")  # the last one sent
    assert statsd.metrics(f"{P}.provider_errors.acme.unavailable") == [(1.0, "c")]
    assert [v[1] for v in statsd.metrics(f"{P}.provider.acme.status")] == ["ms"]
    assert len(statsd.metrics(f"{P}.provider.acme.submit_image")) == 1
    assert not statsd.metrics(f"{P}.provider.acme.organization")
    assert statsd.metrics(f"{P}.provider_errors.acme.reseed") == [(1.0, "c")]  # the failed task's class


class AsyncProviderClient:
    async def __aenter__(self) -> AsyncProviderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def status(self, task_id: str) -> RemoteStatus:
        return RemoteStatus(provider="acme", task_id=task_id, state=TaskState.RUNNING)

    async def cancel(self, task_id: str) -> bool:
        raise ProviderError("gone", action=Action.FAIL)


async def test_the_triggers_async_client_is_metered_too(statsd: StatsdListener) -> None:
    async with AsyncMeteredClient(AsyncProviderClient(), "acme") as client:
        assert (await client.status("t1")).state == TaskState.RUNNING
        with pytest.raises(ProviderError):
            await client.cancel("t1")
    assert statsd.wait_for(f"{P}.provider_errors.acme.fail") == [(1.0, "c")]
    assert len(statsd.metrics(f"{P}.provider.acme.status")) == 1
    assert len(statsd.metrics(f"{P}.provider.acme.cancel")) == 1
    assert not statsd.metrics(f"{P}.provider_errors.acme.resubmit")  # running is no failure
