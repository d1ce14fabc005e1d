"""Fixtures for the Runway client's contract tests: a fake Runway on loopback and clients pointed at it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.runway import AsyncRunwayClient, RunwayClient, TaskStatus
from video_pipeline_dev.fake_runway import FakeRunway

#: A canary: if this string shows up in any error, repr or log line, the key leaked.
CANARY_KEY = "rk_CANARY_7f3a9c1e5b2d4f60a8e7c9d1b3f5a7c9"


class RecordingTransport(httpx.BaseTransport):
    """A real HTTP transport that also remembers every request it sent (method, URL, headers)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=CANARY_KEY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeRunway) -> FakeRunway:
    """The shared fake, reset to a fresh state (tasks, counters, settings) for each test."""
    fake_server.reset(api_key=CANARY_KEY, image_latency=0.3, video_latency=0.4, retry_after=0.3)
    return fake_server


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(fake: FakeRunway, recorder: RecordingTransport) -> Iterator[RunwayClient]:
    with RunwayClient(
        fake.base_url,
        CANARY_KEY,
        timeout=5,
        max_retries=3,
        backoff_base=0.01,
        backoff_cap=1.0,
        transport=recorder,
    ) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeRunway) -> AsyncIterator[AsyncRunwayClient]:
    async with AsyncRunwayClient(
        fake.base_url, CANARY_KEY, timeout=5, max_retries=3, backoff_base=0.01, backoff_cap=1.0
    ) as c:
        yield c


def image_request(
    prompt: str = "a red fox at dawn", *, ratio: str = "1280:720", seed: int = 7
) -> ImageRequest:
    return ImageRequest(prompt=prompt, seed=seed, ratio=ratio, model="gen4_image", index=1)


def clip_request(
    prompt: str = "the fox turns its head",
    *,
    model: str = "gen4_turbo",
    duration_s: int = 5,
    ratio: str = "1280:720",
    seed: int = 7,
) -> ClipRequest:
    return ClipRequest(
        prompt=prompt,
        seed=seed,
        ratio=ratio,
        model=model,
        duration_s=duration_s,
        index=1,
        image_sha256="0" * 64,
    )


def wait_terminal(client: RunwayClient, task_id: str, timeout: float = 5.0) -> TaskStatus:
    """Poll until the task ends (test latencies are sub-second, so a short poll interval is the need)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_task(task_id)
        if status.terminal or time.monotonic() > deadline:
            return status
        time.sleep(0.05)
