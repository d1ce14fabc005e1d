"""video_pipeline_poll_seconds (here for Runway, whose floor is 5 s): read through Airflow's Variable and connection lookup (env-backed), clamped."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from video_pipeline.providers.runway import PROVIDER as RUNWAY
from video_pipeline_airflow.settings import LOOPBACK_POLL_MIN_S, POLL_DEFAULT_S, POLL_MAX_S, poll_seconds

RUNWAY_POLL_DEFAULT_S = POLL_DEFAULT_S
RUNWAY_POLL_MAX_S = POLL_MAX_S
RUNWAY_POLL_MIN_S = RUNWAY.min_poll_s


def runway_poll_seconds() -> float:
    return poll_seconds(RUNWAY)


VARIABLE_ENV = "AIRFLOW_VAR_VIDEO_PIPELINE_POLL_SECONDS"
PointRunway = Callable[[str | None], None]


@pytest.fixture
def runway_at(monkeypatch: pytest.MonkeyPatch) -> PointRunway:
    def point(host: str | None) -> None:
        if host is None:
            monkeypatch.delenv("AIRFLOW_CONN_RUNWAY_DEFAULT", raising=False)
        else:
            conn = {"conn_type": "http", "host": host, "password": "k"}
            monkeypatch.setenv("AIRFLOW_CONN_RUNWAY_DEFAULT", json.dumps(conn))

    return point


@pytest.mark.parametrize(
    ("value", "expected", "warned"),
    [
        (None, RUNWAY_POLL_DEFAULT_S, False),
        ("5", 5.0, False),
        ("12.5", 12.5, False),
        ("0.5", RUNWAY_POLL_MIN_S, True),
        ("0", RUNWAY_POLL_MIN_S, True),
        ("-3", RUNWAY_POLL_MIN_S, True),
        ("-inf", RUNWAY_POLL_MIN_S, True),
        ("86400", RUNWAY_POLL_MAX_S, True),
        ("inf", RUNWAY_POLL_MAX_S, True),
        ("nan", RUNWAY_POLL_DEFAULT_S, True),
        ("soon", RUNWAY_POLL_DEFAULT_S, True),
        ("", RUNWAY_POLL_DEFAULT_S, False),
    ],
)
def test_poll_seconds_against_runway_are_clamped(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    runway_at: PointRunway,
    value: str | None,
    expected: float,
    warned: bool,
) -> None:
    runway_at("https://api.dev.runwayml.com")
    if value is None:
        monkeypatch.delenv(VARIABLE_ENV, raising=False)
    else:
        monkeypatch.setenv(VARIABLE_ENV, value)
    caplog.set_level(logging.WARNING, logger="video_pipeline_airflow.settings")
    assert runway_poll_seconds() == expected
    assert ("video_pipeline_poll_seconds" in caplog.text) is warned


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:8765", "127.0.0.1", "http://localhost:9000", "http://[::1]:8000", "127.8.9.10"]
)
def test_a_fake_runway_on_loopback_may_be_polled_faster(
    monkeypatch: pytest.MonkeyPatch, runway_at: PointRunway, host: str
) -> None:
    runway_at(host)
    monkeypatch.setenv(VARIABLE_ENV, "0.5")
    assert runway_poll_seconds() == 0.5
    monkeypatch.setenv(VARIABLE_ENV, "0")
    assert runway_poll_seconds() == LOOPBACK_POLL_MIN_S  # never a spinning loop


@pytest.mark.parametrize(
    "host",
    [
        "https://api.dev.runwayml.com",
        "http://10.0.0.7:8080",
        "runway-proxy.internal",
        "http://127.0.0.1.nip.io",
    ],
)
def test_anything_else_gets_runways_floor(
    monkeypatch: pytest.MonkeyPatch, runway_at: PointRunway, host: str
) -> None:
    runway_at(host)
    monkeypatch.setenv(VARIABLE_ENV, "0.5")
    assert runway_poll_seconds() == RUNWAY_POLL_MIN_S


def test_without_a_connection_the_floor_applies(
    monkeypatch: pytest.MonkeyPatch, runway_at: PointRunway
) -> None:
    runway_at(None)
    monkeypatch.setenv(VARIABLE_ENV, "1")
    assert runway_poll_seconds() == RUNWAY_POLL_MIN_S
