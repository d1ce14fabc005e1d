"""Contract tests for the Runway client against the fake Runway server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import math
import random
import socket
import threading
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.video_pipeline.providers.conftest import (
    CANARY_KEY,
    RecordingTransport,
    clip_request,
    image_request,
    wait_terminal,
)
from video_pipeline.generation import Planned, store
from video_pipeline.layout import CacheKind, JobLayout, cache_key, content_hash
from video_pipeline.models import RATIOS, VideoSegment
from video_pipeline.outputs import MAX_OUTPUT_BYTES, OutputRejected, verify_output
from video_pipeline.providers.runway import (
    API_VERSION,
    DATA_URI_MAX_BYTES,
    IMAGE_RATIOS,
    RETRY_AFTER_MAX_S,
    AsyncRunwayClient,
    RunwayAmbiguousSubmit,
    RunwayAuthError,
    RunwayBadOutput,
    RunwayClient,
    RunwayCreditsExhausted,
    RunwayError,
    RunwayNotFound,
    RunwayOutputExpired,
    RunwayOutputRejected,
    RunwayPermanentError,
    RunwayRetryableTaskFailure,
    RunwayTaskCancelled,
    RunwayTransientError,
    RunwayValidationError,
    TaskStatus,
    _Core,
    classify_failure,
    data_uri_size,
    error_for_status,
    estimate_clip_credits,
    estimate_credits,
    estimate_image_credits,
    image_data_uri,
    image_ratio_for,
    image_resolution,
    parse_retry_after,
    poll_delay,
    redact_url,
    retry_after,
)
from video_pipeline.storage import LocalStorage, Storage
from video_pipeline_dev.fake_runway import FakeRunway


def _png(path: Path, size: int = 64) -> Path:
    from PIL import Image

    Image.new("RGB", (size, size), (200, 40, 40)).save(path)
    return path


def _api_requests(recorder: RecordingTransport) -> list[httpx.Request]:
    return [r for r in recorder.requests if r.url.path.startswith("/v1/")]


# ------------------------------------------------------------------------------------------- submissions


def test_text_to_image_sends_auth_version_and_body(
    client: RunwayClient, fake: FakeRunway, recorder: RecordingTransport
) -> None:
    task_id = client.text_to_image(
        image_request("a red fox", ratio="960:960", seed=42), reference_images=["https://example.com/ref.png"]
    )

    (request,) = _api_requests(recorder)
    assert request.method == "POST"
    assert request.url.path == "/v1/text_to_image"
    assert request.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert request.headers["x-runway-version"] == API_VERSION
    ((created_id, body),) = list(fake.task_bodies())
    assert created_id == task_id
    assert body == {
        "model": "gen4_image",
        "promptText": "a red fox",
        "ratio": "1024:1024",
        "seed": 42,
        "referenceImages": [{"uri": "https://example.com/ref.png"}],
    }


def test_image_to_video_body_and_lifecycle(client: RunwayClient, fake: FakeRunway) -> None:
    task_id = client.image_to_video(clip_request(duration_s=4, ratio="1584:672"), "https://example.com/a.png")

    ((_, body),) = list(fake.task_bodies())
    assert body == {
        "model": "gen4_turbo",
        "promptImage": "https://example.com/a.png",
        "promptText": "the fox turns its head",
        "ratio": "1584:672",
        "duration": 4,
        "seed": 7,
    }
    first = client.get_task(task_id)
    assert first.status in ("PENDING", "RUNNING")
    done = wait_terminal(client, task_id)
    assert done.status == "SUCCEEDED"
    assert len(done.output) == 1
    assert ".mp4?" in done.output[0]
    assert done.error() is None


def test_gen45_requires_prompt_text(client: RunwayClient, fake: FakeRunway) -> None:
    with pytest.raises(ValueError, match="promptText"):
        client.image_to_video(clip_request("  ", model="gen4.5"), "https://example.com/a.png")
    assert fake.posts["/v1/image_to_video"] == 0
    client.image_to_video(
        clip_request("waves roll in", model="gen4.5", duration_s=5), "https://example.com/a.png"
    )
    assert fake.credits_spent == 12 * 5


def test_running_task_reports_progress(client: RunwayClient, fake: FakeRunway) -> None:
    fake.configure(image_latency=1.0)
    task_id = client.text_to_image(image_request())
    time.sleep(0.5)
    status = client.get_task(task_id)
    assert status.status == "RUNNING"
    assert status.progress is not None
    assert 0.2 < status.progress < 0.8


# ---------------------------------------------------------------------------------- errors from the API


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"model": "gen3a_turbo"}, "model"),
        ({"duration_s": 11}, "duration"),
        ({"prompt": "x" * 1001}, "promptText"),
    ],
)
def test_validation_errors_name_the_field(
    client: RunwayClient, fake: FakeRunway, request_kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(RunwayValidationError) as info:
        client.image_to_video(clip_request(**request_kwargs), "https://example.com/a.png")  # type: ignore[arg-type]
    err = info.value
    assert err.status_code == 400
    assert f"{field}:" in str(err)
    assert any(issue["path"][0] == field for issue in err.issues)
    assert fake.posts["/v1/image_to_video"] == 1  # a 400 is never retried


def test_retired_model_message(client: RunwayClient) -> None:
    with pytest.raises(RunwayValidationError, match="retired"):
        client.image_to_video(clip_request(model="gen3a_turbo"), "https://example.com/a.png")


def test_wrong_key_is_an_auth_error(fake: FakeRunway) -> None:
    with RunwayClient(fake.base_url, "not-the-key", timeout=5) as c, pytest.raises(RunwayAuthError) as info:
        c.organization()
    assert info.value.status_code == 401
    assert isinstance(info.value, RunwayPermanentError)


def test_unknown_task_and_tolerant_cancel(client: RunwayClient, fake: FakeRunway) -> None:
    with pytest.raises(RunwayNotFound):
        client.get_task("no-such-task")
    assert client.cancel_task("no-such-task") is False
    task_id = client.text_to_image(image_request())
    assert client.cancel_task(task_id) is True
    with pytest.raises(RunwayNotFound):
        client.get_task(task_id)
    assert fake.deletes == 2
    assert fake.tasks_by_status["DELETED"] == 1


def test_credits_exhausted(fake: FakeRunway, client: RunwayClient) -> None:
    fake.configure(credit_balance=4)
    with pytest.raises(RunwayCreditsExhausted, match="enough credits") as info:
        client.text_to_image(image_request())
    assert isinstance(info.value, RunwayPermanentError)
    assert fake.posts["/v1/text_to_image"] == 1
    assert client.organization()["creditBalance"] == 4


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("SAFETY.INPUT.TEXT", RunwayPermanentError),
        ("SAFETY.OUTPUT.VIDEO", RunwayPermanentError),
        ("INPUT_PREPROCESSING.SAFETY.TEXT", RunwayPermanentError),
        ("ASSET.INVALID", RunwayPermanentError),
        ("INTERNAL.BAD_OUTPUT.CODE01", RunwayBadOutput),
        ("THIRD_PARTY.UNAVAILABLE", RunwayRetryableTaskFailure),
        ("INTERNAL", RunwayRetryableTaskFailure),
        ("", RunwayRetryableTaskFailure),
    ],
)
def test_task_failures_are_classified(client: RunwayClient, code: str, expected: type[RunwayError]) -> None:
    task_id = client.text_to_image(image_request(f"a fox [fail:{code}]"))
    status = wait_terminal(client, task_id)
    assert status.status == "FAILED"
    assert status.failure_code == (code or None)
    err = status.error()
    assert type(err) is expected
    assert err is not None
    assert err.task_id == task_id
    assert err.failure_code == (code or None)
    with pytest.raises(expected):
        status.raise_for_failure()


def test_classify_failure_table() -> None:
    assert classify_failure(None) is RunwayRetryableTaskFailure
    assert classify_failure("SAFETY.INPUT.IMAGE") is RunwayPermanentError
    assert classify_failure("safety.output.text") is RunwayPermanentError
    assert classify_failure("INTERNAL.BAD_OUTPUT") is RunwayBadOutput
    assert classify_failure("INTERNAL.TIMEOUT") is RunwayRetryableTaskFailure
    assert classify_failure("INPUT_PREPROCESSING.INTERNAL") is RunwayRetryableTaskFailure
    assert classify_failure("INTERNALS") is RunwayPermanentError  # not a prefix match on a word
    assert classify_failure("SOMETHING.NEW") is RunwayPermanentError  # unknown: a human looks once
    assert not issubclass(RunwayBadOutput, RunwayRetryableTaskFailure)


def test_error_for_status_table() -> None:
    assert type(error_for_status(400, "Validation of body failed")) is RunwayValidationError
    assert (
        type(error_for_status(400, "You do not have enough CREDITS to run this task."))
        is RunwayCreditsExhausted
    )
    assert type(error_for_status(401, "Unauthorized")) is RunwayAuthError
    assert type(error_for_status(404, "Task not found")) is RunwayNotFound
    assert type(error_for_status(405, "Method not allowed")) is RunwayPermanentError
    assert type(error_for_status(503, "down")) is RunwayTransientError


def test_cancelled_task_maps_to_cancelled_error(client: RunwayClient, fake: FakeRunway) -> None:
    task_id = client.text_to_image(image_request())
    fake.cancel_externally(task_id)
    status = client.get_task(task_id)
    assert status.status == "CANCELLED"
    assert status.terminal
    assert isinstance(status.error(), RunwayTaskCancelled)


# ---------------------------------------------------------------------------------------------- retries


def test_429_retry_honours_retry_after(client: RunwayClient, fake: FakeRunway) -> None:
    fake.configure(retry_after=0.6)
    fake.fail_next("POST", "/v1/text_to_image", 429)
    started = time.monotonic()
    task_id = client.text_to_image(image_request())
    waited = time.monotonic() - started
    assert waited >= 0.6
    assert task_id
    assert fake.posts["/v1/text_to_image"] == 2
    assert fake.faults["429"] == 1
    assert fake.duplicate_submissions == 0


@pytest.mark.parametrize("status", [429, 503])
def test_submit_retries_answers_that_prove_nothing_was_created(
    client: RunwayClient, fake: FakeRunway, status: int
) -> None:
    fake.configure(retry_after_on_503=True, retry_after=0.05)  # 429 always carries Retry-After
    fake.fail_next("POST", "/v1/image_to_video", status, status)
    client.image_to_video(clip_request(), "https://example.com/a.png")
    assert fake.posts["/v1/image_to_video"] == 3
    assert fake.stats()["tasks_created"] == {"gen4_turbo": 1}
    assert fake.duplicate_submissions == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_submit_5xx_without_proof_is_ambiguous_not_retried(
    client: RunwayClient, fake: FakeRunway, status: int
) -> None:
    # The fake answered before creating anything, but a gateway's 500/502/504 (or a bare 503) looks the same
    # after the backend created the task: the client cannot tell, so it does not retry.
    fake.fail_next("POST", "/v1/image_to_video", status)
    with pytest.raises(RunwayAmbiguousSubmit, match="may have been created") as info:
        client.image_to_video(clip_request(), "https://example.com/a.png")
    assert info.value.status_code == status
    assert fake.posts["/v1/image_to_video"] == 1


@pytest.mark.parametrize(
    "fault", ["create-then-500", "create-then-502", "create-then-503", "create-then-504", "create-then-reset"]
)
def test_create_then_fail_creates_exactly_one_task(
    client: RunwayClient, fake: FakeRunway, fault: str
) -> None:
    fake.configure(retry_after_on_503=True)  # even so: a gateway's 503 after the create has no Retry-After
    fake.fail_next("POST", "/v1/text_to_image", fault)
    with pytest.raises(RunwayAmbiguousSubmit, match="may have been created"):
        client.text_to_image(image_request())
    stats = fake.stats()
    assert stats["posts"] == {"/v1/text_to_image": 1}
    assert stats["tasks_created"] == {"gen4_image": 1}  # created and billed once …
    assert stats["credits_spent"] == 5
    assert stats["faults"] == {fault: 1}
    assert fake.duplicate_submissions == 0  # … and never a second time


async def test_async_create_then_fail_is_ambiguous(aclient: AsyncRunwayClient, fake: FakeRunway) -> None:
    fake.fail_next("POST", "/v1/image_to_video", "create-then-504")
    with pytest.raises(RunwayAmbiguousSubmit):
        await aclient.image_to_video(clip_request(), "https://example.com/a.png")
    assert fake.stats()["tasks_created"] == {"gen4_turbo": 1}
    assert fake.posts["/v1/image_to_video"] == 1


def test_read_timeout_after_the_task_was_created_is_ambiguous(fake: FakeRunway) -> None:
    fake.configure(create_answer_delay=1.0)  # created at once, answered a second later
    timeout = httpx.Timeout(5.0, read=0.2)
    c = RunwayClient(fake.base_url, CANARY_KEY, timeout=timeout, backoff_base=0.01)
    with c, pytest.raises(RunwayAmbiguousSubmit, match="ReadTimeout"):
        c.text_to_image(image_request())
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}
    assert fake.posts["/v1/text_to_image"] == 1


def test_random_create_then_fail_never_pays_twice(client: RunwayClient, fake: FakeRunway) -> None:
    fake.configure(rate_create_then_fail=0.5, seed=3)
    outcomes = {"ok": 0, "ambiguous": 0}
    for i in range(20):
        try:
            client.text_to_image(image_request(f"fox {i}"))
            outcomes["ok"] += 1
        except RunwayAmbiguousSubmit:
            outcomes["ambiguous"] += 1
    stats = fake.stats()
    assert outcomes["ok"] > 0 and outcomes["ambiguous"] > 0
    assert stats["posts"] == {"/v1/text_to_image": 20}  # one POST per submission, none retried
    assert stats["tasks_created"] == {"gen4_image": 20}  # every POST created its task, once
    assert fake.duplicate_submissions == 0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_uploads_and_reads_still_retry_every_5xx(client: RunwayClient, fake: FakeRunway, status: int) -> None:
    # POST /v1/uploads creates an ephemeral upload slot, nothing billed: a duplicate slot expires unused.
    fake.fail_next("POST", "/v1/uploads", status)
    uri, _, _ = client.create_upload("frame.png")
    assert uri.startswith("runway://")
    assert fake.posts["/v1/uploads"] == 2
    task_id = client.text_to_image(image_request())
    fake.fail_next("GET", "/v1/tasks/", status)
    fake.fail_next("DELETE", "/v1/tasks/", status)
    assert client.get_task(task_id).id == task_id
    assert client.cancel_task(task_id) is True
    assert fake.polls[task_id] == 2
    assert fake.deletes == 2


def test_retries_exhausted_raise_transient(fake: FakeRunway) -> None:
    fake.configure(retry_after_on_503=True, retry_after=0.01)
    fake.fail_next("POST", "/v1/text_to_image", 503, 503, 503)
    c = RunwayClient(fake.base_url, CANARY_KEY, timeout=5, max_retries=2, backoff_base=0.01)
    with c, pytest.raises(RunwayTransientError) as info:
        c.text_to_image(image_request())
    assert info.value.status_code == 503
    assert "3 attempts" in str(info.value)
    assert fake.posts["/v1/text_to_image"] == 3
    assert fake.stats()["tasks_created"] == {}


def test_poll_survives_dropped_connection(client: RunwayClient, fake: FakeRunway) -> None:
    task_id = client.text_to_image(image_request())
    fake.fail_next("GET", "/v1/tasks/", "reset", 502)
    assert client.get_task(task_id).id == task_id
    assert fake.polls[task_id] == 3


def test_backoff_is_full_jitter_within_cap() -> None:
    core = _Core("http://x", "k", max_retries=5, backoff_base=1.0, backoff_cap=5.0)
    for attempt in range(8):
        for _ in range(50):
            assert 0.0 <= core.backoff(attempt, None) <= min(5.0, 2**attempt)
    assert core.backoff(0, 2.5) == 2.5
    assert core.backoff(0, 120.0) == 5.0  # a Retry-After beyond the cap is clamped
    for odd in (math.nan, math.inf, -math.inf):  # never a sleep(nan): the own backoff instead
        assert 0.0 <= core.backoff(2, odd) <= 4.0
    assert 0.0 <= core.backoff(10_000, None) <= 5.0  # no overflow at absurd attempt counts


def _date(delta: timedelta) -> str:
    return email.utils.format_datetime(datetime.now(UTC) + delta, usegmt=True)


def test_retry_after_parsing() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": " 0.5 "})) == 0.5
    parsed = retry_after(httpx.Response(429, headers={"Retry-After": _date(timedelta(seconds=30))}))
    assert parsed is not None
    assert 25 < parsed <= 30
    assert retry_after(httpx.Response(429)) is None
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    # Not delay-seconds, not a date: ignored (the caller backs off on its own), never a crash.
    for junk in ("nan", "NaN", "inf", "-inf", "-5", "1e3", "0x10", "+3", "3 s", "", "   ", "1" * 65, "١٢"):
        assert parse_retry_after(junk) is None, junk
    # Clamped to [0, RETRY_AFTER_MAX_S].
    assert parse_retry_after("0") == 0.0
    assert parse_retry_after("9" * 40) == RETRY_AFTER_MAX_S
    assert parse_retry_after(_date(timedelta(days=-3))) == 0.0
    assert parse_retry_after(_date(timedelta(days=300))) == RETRY_AFTER_MAX_S
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == RETRY_AFTER_MAX_S
    assert parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT") == 0.0
    assert parse_retry_after("Mon, 99 Feb 2024 25:61:61 GMT") is None


def _header_strings(rng: random.Random) -> str:
    """Arbitrary Retry-After values: near-misses of both grammars, odd numbers, dates of any year, noise."""
    pieces = [
        "".join(rng.choice("0123456789.-+eE x") for _ in range(rng.randint(0, 12))),
        rng.choice(["nan", "inf", "-inf", "Infinity", "1e308", "1e309", "-0", "00", ".5", "5.", "1_000"]),
        str(rng.uniform(-1e6, 1e6)),
        str(rng.randint(-(10**30), 10**30)),
        f"{rng.choice(['Mon', 'Tue', 'Xyz', ''])}, {rng.randint(-5, 99):02d} "
        f"{rng.choice(['Jan', 'Feb', 'Dec', 'Foo'])} {rng.randint(0, 99999)} "
        f"{rng.randint(0, 30):02d}:{rng.randint(0, 70):02d}:{rng.randint(0, 70):02d} "
        f"{rng.choice(['GMT', 'UTC', '+0000', '-2359', '+9999', 'XYZ', ''])}",
        "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(0, 80))),
        "".join(chr(rng.randint(0x21, 0x7E)) for _ in range(rng.randint(0, 80))),
    ]
    return rng.choice(pieces)


def test_retry_after_never_raises_and_stays_in_bounds() -> None:
    rng = random.Random(20240611)
    for _ in range(2500):
        value = _header_strings(rng)
        parsed = parse_retry_after(value)
        assert parsed is None or (math.isfinite(parsed) and 0.0 <= parsed <= RETRY_AFTER_MAX_S), value
        if value.isascii() and value.isprintable():  # what can travel in a header
            assert retry_after(httpx.Response(429, headers={"Retry-After": value})) == parsed


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "Tue, 99 Foo 2024 99:99:99 GMT", "soon", "1e400"])
def test_odd_retry_after_over_http_is_survived(client: RunwayClient, fake: FakeRunway, value: str) -> None:
    fake.configure(retry_after=value)
    fake.fail_next("GET", "/v1/organization", 429)
    assert client.organization()["creditBalance"] > 0
    assert fake.faults["429"] == 1


def test_poll_delay_never_below_minimum() -> None:
    delays = [poll_delay() for _ in range(100)]
    assert min(delays) >= 5.0
    assert max(delays) <= 6.25


# ------------------------------------------------------------------------------------ ambiguous submits


@pytest.mark.parametrize("fault", ["reset", "reset-before"])
def test_dropped_connection_on_submit_is_ambiguous_not_retried(
    client: RunwayClient, fake: FakeRunway, fault: str
) -> None:
    fake.fail_next("POST", "/v1/image_to_video", fault)
    with pytest.raises(RunwayAmbiguousSubmit, match="may have been created"):
        client.image_to_video(clip_request(), "https://example.com/a.png")
    assert fake.posts["/v1/image_to_video"] == 1  # not retried
    # "reset" drops the answer after the task was created and billed: exactly why a retry would be wrong.
    assert fake.stats()["tasks_created"] == ({"gen4_turbo": 1} if fault == "reset" else {})
    assert fake.duplicate_submissions == 0


class _FailingConnects(httpx.BaseTransport):
    """Fails the first ``n`` requests before sending anything (as httpcore does when it cannot get a connection),
    then forwards to a real transport."""

    def __init__(self, n: int, error: type[httpx.TransportError] = httpx.ConnectError) -> None:
        self.n = n
        self.error = error
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            raise self.error("no connection", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_connect_errors_on_submit_are_retried(fake: FakeRunway, error: type[httpx.TransportError]) -> None:
    with RunwayClient(
        fake.base_url, CANARY_KEY, timeout=5, backoff_base=0.01, transport=_FailingConnects(2, error)
    ) as c:
        c.text_to_image(image_request())
    assert fake.posts["/v1/text_to_image"] == 1
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}


def test_real_pool_timeout_on_submit_is_retried(fake: FakeRunway, caplog: pytest.LogCaptureFixture) -> None:
    """A real PoolTimeout: the only connection is busy with a slow answer, so the next POST never gets sent."""
    fake.configure(create_answer_delay=0.25)
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    timeout = httpx.Timeout(5.0, pool=0.05)
    with RunwayClient(
        fake.base_url, CANARY_KEY, timeout=timeout, max_retries=20, backoff_base=0.05, transport=transport
    ) as c:
        first = threading.Thread(target=c.text_to_image, args=(image_request("slow one"),))
        first.start()
        time.sleep(0.05)  # the slow POST now holds the one connection
        c.text_to_image(image_request("waits for the pool"))
        first.join()
    assert "PoolTimeout, retry" in caplog.text
    assert fake.posts["/v1/text_to_image"] == 2  # the pooled-out attempts never reached the server
    assert fake.stats()["tasks_created"] == {"gen4_image": 2}
    assert fake.duplicate_submissions == 0


def test_unreachable_server_raises_transient() -> None:
    c = RunwayClient("http://127.0.0.1:9", CANARY_KEY, timeout=1, max_retries=1, backoff_base=0.01)
    with c, pytest.raises(RunwayTransientError, match="ConnectError"):
        c.text_to_image(image_request())


def test_2xx_without_task_id_is_ambiguous() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>gateway</html>"))
    c = RunwayClient("http://runway.test", CANARY_KEY, transport=transport)
    with c, pytest.raises(RunwayAmbiguousSubmit, match="without a task id"):
        c.text_to_image(image_request())


# -------------------------------------------------------------------------------------------- key safety


def _all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc) + repr(exc.args)


def test_canary_key_never_leaks(fake: FakeRunway, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    wrong = RunwayClient(fake.base_url, CANARY_KEY + "x", timeout=5)  # the fake answers 401
    with RunwayClient(fake.base_url, CANARY_KEY, timeout=5, max_retries=1, backoff_base=0.01) as c:
        assert CANARY_KEY not in repr(c)
        assert CANARY_KEY not in str(c)
        fake.fail_next("POST", "/v1/text_to_image", 503)
        fake.fail_next("POST", "/v1/image_to_video", "reset")
        fake.fail_next("GET", "/v1/tasks/", 429, "reset")
        attempts = [
            lambda: wrong.organization(),
            lambda: c.text_to_image(image_request()),  # a bare 503 on a create: ambiguous
            lambda: c.image_to_video(clip_request(), "https://example.com/a.png"),  # ambiguous
            lambda: c.image_to_video(clip_request(model="gen3a_turbo"), "https://e.com/a.png"),  # 400
            lambda: c.get_task("missing"),  # 429 + reset retried, then exhausted
            lambda: c.download(f"{fake.base_url}/outputs/nope.png?sig=x", tmp_path / "x.png"),  # 403
        ]
        for attempt in attempts:
            with pytest.raises(RunwayError) as info:
                attempt()
            errors.append(info.value)
    wrong.close()
    with RunwayClient("http://127.0.0.1:9", CANARY_KEY, timeout=1, max_retries=0) as dead:
        with pytest.raises(RunwayTransientError) as dead_info:
            dead.organization()
        errors.append(dead_info.value)
    assert len(errors) == 7
    for err in errors:
        assert CANARY_KEY not in _all_text(err)
        assert "Bearer" not in _all_text(err)
    assert caplog.records  # retries were logged …
    assert CANARY_KEY not in caplog.text  # … without the key


def test_key_echoed_by_server_is_redacted() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": f"bad header {request.headers['authorization']}"})

    c = RunwayClient("http://runway.test", CANARY_KEY, transport=httpx.MockTransport(echo))
    with c, pytest.raises(RunwayValidationError) as info:
        c.organization()
    assert CANARY_KEY not in _all_text(info.value)
    assert "[redacted]" in str(info.value)


def test_key_with_header_breaking_characters_is_refused_without_echo() -> None:
    with pytest.raises(ValueError, match="not allowed") as info:
        RunwayClient("http://runway.test", CANARY_KEY + "\n")
    assert CANARY_KEY not in _all_text(info.value)
    with pytest.raises(ValueError, match="empty"):
        RunwayClient("http://runway.test", "")


# --------------------------------------------------------------------------------------------- downloads


def test_download_streams_to_file_without_auth(
    client: RunwayClient, fake: FakeRunway, recorder: RecordingTransport, tmp_path: Path
) -> None:
    task = wait_terminal(client, client.text_to_image(image_request()))
    dest = client.download(task.output[0], tmp_path / "img.png")
    assert dest.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(dest) as img:
        assert img.size == (1280, 720)
    assert [p.name for p in tmp_path.iterdir()] == ["img.png"]
    (download,) = [r for r in recorder.requests if r.url.path.startswith("/outputs/")]
    assert "authorization" not in download.headers
    assert "x-runway-version" not in download.headers


def test_download_retries_a_cut_stream(client: RunwayClient, fake: FakeRunway, tmp_path: Path) -> None:
    task = wait_terminal(
        client, client.image_to_video(clip_request(duration_s=2), "https://example.com/a.png")
    )
    fake.fail_next("GET", "/outputs/", "reset")
    dest = client.download(task.output[0], tmp_path / "clip.mp4")
    assert fake.faults["reset"] == 1
    assert fake.stats()["downloads"] == 2
    data = dest.read_bytes()
    assert data[4:8] == b"ftyp"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_expired_output_url(client: RunwayClient, fake: FakeRunway, tmp_path: Path) -> None:
    task = wait_terminal(client, client.text_to_image(image_request()))
    fake.configure(output_ttl=0.2)
    time.sleep(0.3)
    with pytest.raises(RunwayOutputExpired) as info:
        client.download(task.output[0], tmp_path / "late.png")
    assert info.value.status_code == 403
    assert list(tmp_path.iterdir()) == []  # no partial or temp file left behind
    assert fake.stats()["expired_downloads"] == 1


# ------------------------------------------------------------------ downloads: redirects, size caps, content


def _output_url(client: RunwayClient, kind: CacheKind = "images") -> str:
    if kind == "images":
        task_id = client.text_to_image(image_request())
    else:
        task_id = client.image_to_video(clip_request(duration_s=2), "https://example.com/a.png")
    status = wait_terminal(client, task_id)
    assert status.status == "SUCCEEDED"
    return status.output[0]


def _planned(kind: CacheKind) -> tuple[Planned, VideoSegment]:
    request = image_request() if kind == "images" else clip_request(duration_s=2)
    fields = request.cache_fields("runway")
    layout = JobLayout("dl")
    target = layout.image(1) if kind == "images" else layout.clip(1)
    segment = VideoSegment(index=1, prompt=request.prompt, seed=request.seed, duration_s=2)
    return Planned(kind, request, "runway", content_hash(fields), cache_key(kind, fields), target), segment


def _fetch_and_store(client: RunwayClient, url: str, kind: CacheKind, storage: Storage, tmp: Path) -> None:
    """What the segment operator does with a finished task: download, then store (check, cache, copy)."""
    planned, segment = _planned(kind)
    path = client.download(url, tmp / ("output.png" if kind == "images" else "output.mp4"))
    store(storage, planned, segment, path, task_id="t")


def test_same_host_redirect_is_followed(
    client: RunwayClient, fake: FakeRunway, recorder: RecordingTransport, tmp_path: Path
) -> None:
    url = _output_url(client)
    fake.configure(output_redirect="same-host")  # a relative Location on the host the URL started on
    dest = client.download(url, tmp_path / "img.png")
    assert verify_output("images", dest).format == "PNG"
    hops = [r for r in recorder.requests if r.url.path.startswith("/outputs/")]
    assert len(hops) == 2 and hops[1].url.params["hop"] == "1"
    assert not any("authorization" in r.headers for r in hops)
    assert fake.faults["redirect"] == 1


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "internal address"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", "internal address"),
        ("http://[fe80::1]/", "internal address"),
        ("http://10.1.2.3/admin", "internal address"),
        ("http://192.168.0.1/", "internal address"),
        ("http://100.64.0.1/", "internal address"),
        ("http://0.0.0.0:{port}/outputs/x.png", "internal address"),
        ("http://127.0.0.2:{port}/outputs/x.png", "internal address"),
        ("http://127.0.0.1:22/", "internal address"),  # the start host, but another port: another service
        ("http://localhost:{port}/outputs/x.png", "loopback host"),
        ("http://metadata.localhost/", "loopback host"),
        ("file:///etc/passwd", "file URL"),
        ("gopher://example.com/", "gopher URL"),
    ],
)
def test_redirects_out_of_bounds_are_refused(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, target: str, reason: str
) -> None:
    url = _output_url(client)
    fake.configure(output_redirect=target.format(port=httpx.URL(fake.base_url).port))
    with pytest.raises(RunwayOutputRejected, match=f"refused \\({reason}\\)|{reason} refused"):
        client.download(url, tmp_path / "img.png")
    assert list(tmp_path.iterdir()) == []
    assert fake.stats()["downloads"] == 1  # refused before anything was sent to the target


def test_redirect_loop_stops(client: RunwayClient, fake: FakeRunway, tmp_path: Path) -> None:
    url = _output_url(client)
    fake.configure(output_redirect="loop")
    with pytest.raises(RunwayOutputRejected, match="more than 5 redirects"):
        client.download(url, tmp_path / "img.png")
    assert fake.stats()["downloads"] == 6
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """A resolver for ``*.test`` names: each lookup of a name takes the next address of its list (the last one
    repeats) — what a DNS server under someone else's control can answer. Other names resolve as usual."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host  # anyio asks with IDNA-encoded bytes
        if isinstance(name, str) and name in answers:
            queue = answers[name]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return real(address, port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_a_name_resolving_inward_is_refused(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, fake_dns: dict[str, list[str]]
) -> None:
    fake_dns["metadata.test"] = ["169.254.169.254"]
    url = _output_url(client)
    fake.configure(output_redirect="http://metadata.test/latest/meta-data/")
    with pytest.raises(RunwayOutputRejected, match="resolves to an internal address"):
        client.download(url, tmp_path / "img.png")
    assert fake.stats()["downloads"] == 1


def test_dns_rebinding_is_caught_at_connect(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, fake_dns: dict[str, list[str]]
) -> None:
    # The check's lookup sees a public address; the connection's lookup gets loopback (the fake itself).
    fake_dns["cdn.rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    url = httpx.URL(_output_url(client))
    rebound = url.copy_with(host="cdn.rebind.test", params={**dict(url.params), "hop": "1"})
    fake.configure(output_redirect=str(rebound))
    with pytest.raises(RunwayOutputRejected, match="connected to an internal address"):
        client.download(str(url), tmp_path / "img.png")
    assert fake.stats()["downloads"] == 2  # the hop did connect (that is what rebinding does) …
    assert list(tmp_path.iterdir()) == []  # … but its body was never read


async def test_async_dns_rebinding_is_caught_at_connect(
    aclient: AsyncRunwayClient, fake: FakeRunway, tmp_path: Path, fake_dns: dict[str, list[str]]
) -> None:
    fake_dns["cdn.rebind.test"] = ["93.184.216.34", "127.0.0.1"]
    task_id = await aclient.text_to_image(image_request())
    while not (status := await aclient.get_task(task_id)).terminal:
        await asyncio.sleep(0.05)
    url = httpx.URL(status.output[0])
    fake.configure(
        output_redirect=str(url.copy_with(host="cdn.rebind.test", params={**dict(url.params), "hop": "1"}))
    )
    with pytest.raises(RunwayOutputRejected, match="connected to an internal address"):
        await aclient.download(str(url), tmp_path / "img.png")
    assert fake.stats()["downloads"] == 2
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("current", "location", "allowed"),
    [
        ("https://cdn.example.com/a?sig=1", "https://other.example.net/b?sig=2", True),
        ("http://cdn.example.com/a", "https://other.example.net/b", True),  # up to https
        ("http://cdn.example.com/a", "http://other.example.net/b", True),  # same scheme
        ("https://cdn.example.com/a", "http://cdn.example.com/a", False),  # never down to http
        ("https://cdn.example.com/a", "ftp://cdn.example.com/a", False),
        ("https://cdn.example.com/a", "/relative/path?x=1", True),
        ("https://cdn.example.com/a", "https://169.254.169.254/", False),
        ("https://cdn.example.com/a", "https://[::1]/", False),
        ("https://cdn.example.com/a", "https://[2002:a9fe:a9fe::1]/", False),  # 6to4 wrapping 169.254.169.254
    ],
)
def test_redirect_rule_table(current: str, location: str, allowed: bool) -> None:
    core = _Core("https://api.example.com", "k", max_retries=0, backoff_base=0.0, backoff_cap=0.0)
    call = core.download(current, "images")
    response = httpx.Response(302, headers={"Location": location})
    if allowed:
        assert core.check_redirect(call, httpx.URL(current), response) == httpx.URL(current).join(location)
    else:
        with pytest.raises(RunwayOutputRejected, match="refused"):
            core.check_redirect(call, httpx.URL(current), response)


def test_https_to_http_redirect_is_refused_over_tls(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    storage = LocalStorage(tmp_path / "store")
    with FakeRunway(api_key=CANARY_KEY, tls=True, image_latency=0.05) as fake_tls:
        transport = httpx.HTTPTransport(verify=fake_tls.ssl_context())
        with RunwayClient(fake_tls.base_url, CANARY_KEY, timeout=5, transport=transport) as c:
            url = _output_url(c)
            assert url.startswith("https://")
            fake_tls.configure(output_redirect="downgrade")
            with pytest.raises(RunwayOutputRejected, match=r"from https to http://.* refused"):
                _fetch_and_store(c, url, "images", storage, tmp_path)
            assert fake_tls.stats()["downloads"] == 1
            assert not list(storage.list(""))
            fake_tls.configure(output_redirect="same-host")  # https → https on the same host is fine
            _fetch_and_store(c, url, "images", storage, tmp_path)
    assert [k for k in storage.list("") if k.startswith("cache/")]
    signature = httpx.URL(url).params["sig"]
    assert signature not in caplog.text and CANARY_KEY not in caplog.text


@pytest.mark.parametrize("body", ["oversized", "oversized-chunked"])
def test_oversized_output_is_refused_while_streaming(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    monkeypatch.setitem(MAX_OUTPUT_BYTES, "images", 200_000)
    url = _output_url(client)
    fake.configure(output_body=body, oversize_bytes=5_000_000)
    expected = "5000000 bytes announced" if body == "oversized" else "more than the 200000 bytes allowed"
    with pytest.raises(RunwayOutputRejected, match=expected):
        client.download(url, tmp_path / "img.png")
    assert list(tmp_path.iterdir()) == []  # the partial file is gone


@pytest.mark.parametrize(
    ("kind", "settings", "expected"),
    [
        ("images", {"output_body": "html"}, "not an image .* it is an HTML page"),
        ("images", {"output_body": "truncated"}, "corrupt or truncated PNG"),
        ("images", {"output_body": "oversized"}, "announced, more than the 200000 allowed"),
        ("images", {"output_body": "oversized-chunked"}, "more than the 200000 bytes allowed"),
        ("images", {"output_redirect": "http://169.254.169.254/latest/meta-data/"}, "internal address"),
        ("clips", {"output_body": "html"}, "not a readable video .* it is an HTML page"),
        ("clips", {"output_body": "truncated"}, "truncated|not a readable video"),
    ],
)
def test_bad_outputs_never_reach_the_cache(
    client: RunwayClient,
    fake: FakeRunway,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: CacheKind,
    settings: dict[str, Any],
    expected: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setitem(MAX_OUTPUT_BYTES, "images", 200_000)
    storage = LocalStorage(tmp_path / "store")
    url = _output_url(client, kind)
    fake.configure(oversize_bytes=1_000_000, **settings)
    with pytest.raises(OutputRejected, match=expected) as info:
        _fetch_and_store(client, url, kind, storage, tmp_path)
    assert not list(storage.list(""))  # nothing cached, nothing in the job's layout
    assert not list(tmp_path.glob(".*.part"))  # no partial download left behind
    signature = httpx.URL(url).params["sig"]
    assert signature not in caplog.text and signature not in _all_text(info.value)
    assert CANARY_KEY not in caplog.text
    assert "HTTP Request:" not in caplog.text  # httpx's own INFO lines (full URLs) stay off


def test_redirect_logs_show_no_query(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = _output_url(client)
    fake.configure(output_redirect="same-host")
    client.download(url, tmp_path / "img.png")
    assert "redirected to http://127.0.0.1" in caplog.text and "?[redacted]" in caplog.text
    assert httpx.URL(url).params["sig"] not in caplog.text
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING


def test_redact_url() -> None:
    assert redact_url("https://u:p@cdn.example.com:8443/a/b.png?sig=s3cr3t#frag") == (
        "https://cdn.example.com:8443/a/b.png?[redacted]"
    )
    assert redact_url("http://[::1]/x") == "http://[::1]/x"
    assert redact_url("not a url at all \x00") == "<unparsable url>"
    assert redact_url("https://h/p") == "https://h/p"  # nothing to hide, nothing added


async def test_async_download_checks_redirects_and_caps(
    aclient: AsyncRunwayClient, fake: FakeRunway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task_id = await aclient.text_to_image(image_request())
    status = await aclient.get_task(task_id)
    while not status.terminal:
        await asyncio.sleep(0.05)
        status = await aclient.get_task(task_id)
    url = status.output[0]
    fake.configure(output_redirect="same-host")
    assert verify_output("images", await aclient.download(url, tmp_path / "a.png")).width == 1280
    fake.configure(output_redirect="http://169.254.169.254/")
    with pytest.raises(RunwayOutputRejected, match="internal address"):
        await aclient.download(url, tmp_path / "b.png")
    monkeypatch.setitem(MAX_OUTPUT_BYTES, "images", 100_000)
    fake.configure(output_redirect=None, output_body="oversized-chunked", oversize_bytes=1_000_000)
    with pytest.raises(RunwayOutputRejected, match="allowed"):
        await aclient.download(url, tmp_path / "c.png")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_download_kind_comes_from_the_name(client: RunwayClient, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no output kind"):
        client.download("http://127.0.0.1:9/x", tmp_path / "output.bin")


# ------------------------------------------------------------------------------------ uploads, data URIs


def test_upload_then_image_to_video(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path, recorder: RecordingTransport
) -> None:
    image = _png(tmp_path / "frame.png")
    uri = client.upload_file(image)
    assert uri.startswith("runway://")
    upload_post = [r for r in recorder.requests if r.url.path.startswith("/_uploads/")]
    assert len(upload_post) == 1
    assert "authorization" not in upload_post[0].headers
    task_id = client.image_to_video(clip_request(), uri)
    assert wait_terminal(client, task_id).status == "SUCCEEDED"
    assert fake.stats()["uploads_completed"] == 1


def test_upload_not_completed_is_rejected(client: RunwayClient) -> None:
    uri, upload_url, fields = client.create_upload("frame.png")
    assert upload_url.startswith("http")
    assert fields
    with pytest.raises(RunwayValidationError, match="promptImage"):
        client.image_to_video(clip_request(), uri)


def test_image_data_uri_limit(tmp_path: Path) -> None:
    image = _png(tmp_path / "small.png")
    uri = image_data_uri(image)
    assert uri is not None
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == image.read_bytes()
    size = data_uri_size(image.stat().st_size, "image/png")
    assert len(uri) == size
    assert image_data_uri(image, max_bytes=size) == uri
    assert image_data_uri(image, max_bytes=size - 1) is None
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (DATA_URI_MAX_BYTES * 3 // 4))  # base64 grows it past 5 MB
    assert image_data_uri(big) is None


def test_prompt_image_uri_uses_data_uri_when_small(
    client: RunwayClient, fake: FakeRunway, tmp_path: Path
) -> None:
    image = _png(tmp_path / "small.png")
    assert client.prompt_image_uri(image).startswith("data:image/png;base64,")
    assert fake.posts["/v1/uploads"] == 0


# ----------------------------------------------------------------------------------- ratios and credits


@pytest.mark.parametrize(
    ("job_ratio", "image_ratio"),
    [
        ("1280:720", "1280:720"),
        ("720:1280", "720:1280"),
        ("960:960", "1024:1024"),
        ("1104:832", "1024:1024"),
        ("832:1104", "1024:1024"),
        ("1584:672", "1280:720"),
    ],
)
def test_image_ratio_mapping(job_ratio: str, image_ratio: str) -> None:
    assert image_ratio_for(job_ratio) == image_ratio


def test_image_ratio_mapping_covers_every_job_ratio() -> None:
    assert {image_ratio_for(r) for r in RATIOS} <= set(IMAGE_RATIOS)
    assert image_ratio_for("1920:1080") == "1920:1080"  # exact matches win
    assert image_ratio_for("1080:1920") == "1080:1920"


def test_estimate_credits_table() -> None:
    assert estimate_credits("video", "gen4_turbo", duration_s=5) == 25
    assert estimate_credits("video", "gen4.5", duration_s=10) == 120
    assert estimate_credits("image", "gen4_image", resolution="720p") == 5
    assert estimate_credits("image", "gen4_image", resolution="1080p") == 8
    assert estimate_credits("image", "gen4_image", resolution="1920:1080") == 8
    assert image_resolution("960:960") == "1080p"
    with pytest.raises(ValueError, match="no price"):
        estimate_credits("video", "gen3a_turbo", duration_s=5)
    with pytest.raises(ValueError, match="resolution"):
        estimate_credits("image", "gen4_image")


def test_estimates_match_what_the_fake_charges(client: RunwayClient, fake: FakeRunway) -> None:
    before = client.organization()["creditBalance"]
    images = [image_request(ratio=r) for r in ("1280:720", "960:960", "720:1280")]
    clips = [clip_request(duration_s=5), clip_request("waves roll", model="gen4.5", duration_s=4)]
    for req in images:
        client.text_to_image(req)
    for clip in clips:
        client.image_to_video(clip, "https://example.com/a.png")
    expected = sum(estimate_image_credits(r) for r in images) + sum(estimate_clip_credits(c) for c in clips)
    assert expected == 5 + 8 + 5 + 25 + 48
    assert fake.credits_spent == expected
    assert before - client.organization()["creditBalance"] == expected


def test_organization(client: RunwayClient, fake: FakeRunway) -> None:
    fake.configure(concurrency={"gen4_turbo": 1})
    org = client.organization()
    assert org["tier"]["models"]["gen4_turbo"]["maxConcurrentGenerations"] == 1
    assert isinstance(org["creditBalance"], float | int)


# ------------------------------------------------------------------------------------------ async client


async def test_async_submit_poll_download(
    aclient: AsyncRunwayClient, fake: FakeRunway, tmp_path: Path
) -> None:
    task_id = await aclient.text_to_image(image_request())
    status = await aclient.get_task(task_id)
    while not status.terminal:
        await asyncio.sleep(0.05)
        status = await aclient.get_task(task_id)
    assert status.status == "SUCCEEDED"
    dest = await aclient.download(status.output[0], tmp_path / "a.png")
    assert dest.read_bytes().startswith(b"\x89PNG")
    assert await aclient.cancel_task(task_id) is True
    assert fake.deletes == 1


async def test_async_retry_after_and_ambiguity(aclient: AsyncRunwayClient, fake: FakeRunway) -> None:
    fake.configure(retry_after=0.4)
    fake.fail_next("GET", "/v1/organization", 429)
    started = time.monotonic()
    await aclient.organization()
    assert time.monotonic() - started >= 0.4
    fake.fail_next("POST", "/v1/text_to_image", "reset")
    with pytest.raises(RunwayAmbiguousSubmit):
        await aclient.text_to_image(image_request())
    assert fake.posts["/v1/text_to_image"] == 1


async def test_async_errors_and_upload(aclient: AsyncRunwayClient, fake: FakeRunway, tmp_path: Path) -> None:
    with pytest.raises(RunwayNotFound):
        await aclient.get_task("nope")
    fake.configure(credit_balance=1)
    with pytest.raises(RunwayCreditsExhausted):
        await aclient.text_to_image(image_request())
    fake.configure(credit_balance=100)
    uri = await aclient.upload_file(_png(tmp_path / "f.png"))
    task_id = await aclient.image_to_video(clip_request(duration_s=2), uri)
    assert (await aclient.get_task(task_id)).id == task_id
    assert CANARY_KEY not in repr(aclient)


def test_task_status_parsing() -> None:
    status = TaskStatus.model_validate(
        {
            "id": "t",
            "status": "FAILED",
            "failure": "blocked",
            "failureCode": "SAFETY.INPUT.TEXT",
            "createdAt": "2024-11-06T00:00:00Z",
            "somethingNew": 1,
        }
    )
    assert status.failure_code == "SAFETY.INPUT.TEXT"
    assert status.terminal
    assert "SAFETY.INPUT.TEXT" in str(status.error())
    assert math.isclose(TaskStatus(id="t", status="RUNNING", progress=0.5).progress or 0, 0.5)
