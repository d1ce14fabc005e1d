"""Fixtures shared across the test tree."""

from __future__ import annotations

import pytest


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials for moto (never real ones)."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


def _expected_length(item: pytest.Item) -> int:
    """Longest first: own-cluster and fault tests, then the other end-to-end tests, then slow ones."""
    for rank, marker in enumerate(("cluster", "chaos", "e2e", "slow")):
        if item.get_closest_marker(marker):
            return rank
    return 4


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pytest-xdist's work stealing hands each worker a contiguous share of this order and steals from its end:
    # the minutes-long tests first, so no worker starts one when the rest is done (stable: files keep their
    # order within a rank).
    items.sort(key=_expected_length)
