"""Contract tests for the Runway client against the fake Runway server (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import math
import time
import traceback
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.fake_runway import FakeRunway
from tests.video_pipeline.providers.conftest import (
    CANARY_KEY,
    RecordingTransport,
    clip_request,
    image_request,
    wait_terminal,
)
from video_pipeline.models import RATIOS
from video_pipeline.providers.runway import (
    API_VERSION,
    DATA_URI_MAX_BYTES,
    IMAGE_RATIOS,
    AsyncRunwayClient,
    RunwayAmbiguousSubmit,
    RunwayAuthError,
    RunwayBadOutput,
    RunwayClient,
    RunwayCreditsExhausted,
    RunwayError,
    RunwayNotFound,
    RunwayOutputExpired,
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
    poll_delay,
    retry_after,
)


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


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_on_submit_is_retried(client: RunwayClient, fake: FakeRunway, status: int) -> None:
    fake.fail_next("POST", "/v1/image_to_video", status, status)
    client.image_to_video(clip_request(), "https://example.com/a.png")
    assert fake.posts["/v1/image_to_video"] == 3
    assert fake.stats()["tasks_created"] == {"gen4_turbo": 1}


def test_retries_exhausted_raise_transient(fake: FakeRunway) -> None:
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


def test_retry_after_parsing() -> None:
    assert retry_after(httpx.Response(429, headers={"Retry-After": "3"})) == 3.0
    assert retry_after(httpx.Response(429, headers={"Retry-After": "0.5"})) == 0.5
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    parsed = retry_after(httpx.Response(429, headers={"Retry-After": when}))
    assert parsed is not None
    assert 25 < parsed <= 30
    assert retry_after(httpx.Response(429)) is None
    assert retry_after(httpx.Response(429, headers={"Retry-After": "soon"})) is None


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
    """Refuses the first ``n`` connections (nothing is sent), then forwards to a real transport."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            raise httpx.ConnectError("connection refused", request=request)
        return self.inner.handle_request(request)


def test_connect_errors_on_submit_are_retried(fake: FakeRunway) -> None:
    with RunwayClient(
        fake.base_url, CANARY_KEY, timeout=5, backoff_base=0.01, transport=_FailingConnects(2)
    ) as c:
        c.text_to_image(image_request())
    assert fake.posts["/v1/text_to_image"] == 1
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}


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
        fake.fail_next("POST", "/v1/text_to_image", 503, 503)
        fake.fail_next("POST", "/v1/image_to_video", "reset")
        fake.fail_next("GET", "/v1/tasks/", 429, "reset")
        attempts = [
            lambda: wrong.organization(),
            lambda: c.text_to_image(image_request()),  # transient after retries
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
