"""Contract tests for the fal clients against the fake fal queue (real HTTP on loopback): what is sent for each
model, the lifecycle, the bill, the never-pay-twice rules, failure classification, downloads, and the key."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fake_fal import FakeFal
from video_pipeline.models import RATIOS
from video_pipeline.outputs import MAX_OUTPUT_BYTES, OutputRejected, verify_output
from video_pipeline.providers import registry
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.fal import (
    DEFAULT_REST_URL,
    FLUX_DEV,
    FLUX_SCHNELL,
    HAILUO_02_STANDARD,
    KLING_21_STANDARD,
    PROVIDER,
    RAY_2,
    AsyncFalClient,
    FalClient,
    FalOutputRejected,
    classify_failure,
    queue_app,
    split_task_id,
    task_id_for,
)
from video_pipeline.providers.port import (
    FALLBACK_ACTIONS,
    Action,
    Endpoint,
    ProviderError,
    RemoteProvider,
    RemoteStatus,
    SourceImage,
    TaskState,
)

#: A canary in fal's key format (id:secret): if it shows up in any error, repr or log line, the key leaked.
CANARY_KEY = "c4n4ry-1d:fal_CANARY_5e2b9d7c1a3f4e6b8d0c2a4e6f8b0d2c"


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


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeFal]:
    with FakeFal(api_key=CANARY_KEY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeFal) -> FakeFal:
    """The shared fake, reset to a fresh state (requests, counters, settings) for each test."""
    fake_server.reset(
        api_key=CANARY_KEY, image_latency=0.2, video_latency=0.3, retry_after=0.05, concurrency=8
    )
    return fake_server


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport()


def make_client(fake: FakeFal, **options: Any) -> FalClient:
    settings_ = {"timeout": 10, "max_retries": 3, "backoff_base": 0.01, "backoff_cap": 0.2, **options}
    return FalClient(fake.base_url, CANARY_KEY, **settings_)


@pytest.fixture
def client(fake: FakeFal, recorder: RecordingTransport) -> Iterator[FalClient]:
    with make_client(fake, transport=recorder) as c:
        yield c


@pytest.fixture
async def aclient(fake: FakeFal) -> AsyncIterator[AsyncFalClient]:
    async with AsyncFalClient(
        fake.base_url, CANARY_KEY, timeout=10, max_retries=3, backoff_base=0.01, backoff_cap=0.2
    ) as c:
        yield c


def image_request(
    prompt: str = "a red fox at dawn", *, ratio: str = "1280:720", seed: int = 7, model: str = FLUX_DEV
) -> ImageRequest:
    return ImageRequest(prompt=prompt, seed=seed, ratio=ratio, model=model, index=1)


def clip_request(
    prompt: str = "the fox turns its head",
    *,
    model: str = KLING_21_STANDARD,
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


WEB_IMAGE = SourceImage(Path("/nonexistent/frame.png"), url="https://images.example.com/frame.png")


def png(path: Path, width: int = 64, height: int = 36) -> Path:
    from PIL import Image

    Image.new("RGB", (width, height), (200, 40, 40)).save(path)
    return path


def wait_done(client: FalClient, task_id: str, timeout: float = 8.0) -> RemoteStatus:
    deadline = time.monotonic() + timeout
    while not (status := client.status(task_id)).terminal:
        assert time.monotonic() < deadline, status
        time.sleep(0.03)
    return status


def request_id(task_id: str) -> str:
    return split_task_id(task_id)[1]


def bodies(fake: FakeFal) -> list[tuple[str, dict[str, Any]]]:
    return [(model, body) for _, model, body in fake.task_bodies()]


def all_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc) + repr(exc.args)


# ------------------------------------------------------------------------------------- what is submitted


def test_an_image_submit_sends_the_key_the_body_and_polls_the_app_path(
    client: FalClient, fake: FakeFal, recorder: RecordingTransport
) -> None:
    task_id = client.submit_image(image_request("a red fox", ratio="1104:832", seed=42))
    assert task_id.startswith("fal-ai/flux/")
    assert bodies(fake) == [
        (
            FLUX_DEV,
            {
                "prompt": "a red fox",
                "image_size": {"width": 1104, "height": 832},
                "seed": 42,
                "num_images": 1,
                "output_format": "png",
                "enable_safety_checker": True,
            },
        )
    ]
    wait_done(client, task_id)
    submit, status = recorder.requests[0], recorder.requests[1]
    assert (submit.method, submit.url.path) == ("POST", "/fal-ai/flux/dev")
    assert submit.headers["authorization"] == f"Key {CANARY_KEY}"
    # Status and result use the app (fal-ai/flux), never the model's endpoint path (/dev).
    assert status.url.path == f"/fal-ai/flux/requests/{request_id(task_id)}/status"
    assert {r.url.path for r in recorder.requests[1:]} <= {
        f"/fal-ai/flux/requests/{request_id(task_id)}/status",
        f"/fal-ai/flux/requests/{request_id(task_id)}",
    }


@pytest.mark.parametrize("ratio", sorted(RATIOS))
@pytest.mark.parametrize("model", [FLUX_DEV, FLUX_SCHNELL])
def test_every_job_ratio_is_asked_for_at_its_own_size(
    client: FalClient, fake: FakeFal, ratio: str, model: str
) -> None:
    client.submit_image(image_request(ratio=ratio, model=model))
    ((sent_to, body),) = bodies(fake)
    width, height = RATIOS[ratio]
    assert (sent_to, body["image_size"]) == (model, {"width": width, "height": height})


@pytest.mark.parametrize(
    ("model", "duration", "ratio", "extra"),
    [
        (KLING_21_STANDARD, 5, "1280:720", {"duration": "5"}),
        (KLING_21_STANDARD, 10, "960:960", {"duration": "10"}),
        (HAILUO_02_STANDARD, 6, "720:1280", {"duration": "6"}),
        (HAILUO_02_STANDARD, 10, "1584:672", {"duration": "10"}),
        (RAY_2, 5, "1280:720", {"duration": "5s", "aspect_ratio": "16:9", "resolution": "720p"}),
        (RAY_2, 9, "720:1280", {"duration": "9s", "aspect_ratio": "9:16", "resolution": "720p"}),
        (RAY_2, 5, "1104:832", {"duration": "5s", "aspect_ratio": "4:3", "resolution": "720p"}),
        (RAY_2, 5, "832:1104", {"duration": "5s", "aspect_ratio": "3:4", "resolution": "720p"}),
        (RAY_2, 5, "1584:672", {"duration": "5s", "aspect_ratio": "21:9", "resolution": "720p"}),
    ],
)
def test_clip_bodies_map_duration_and_ratio_and_send_no_seed(
    client: FalClient, fake: FakeFal, model: str, duration: int, ratio: str, extra: dict[str, str]
) -> None:
    task_id = client.submit_clip(clip_request(model=model, duration_s=duration, ratio=ratio), WEB_IMAGE)
    ((sent_to, body),) = bodies(fake)
    assert sent_to == model
    assert body == {"prompt": "the fox turns its head", "image_url": WEB_IMAGE.url, **extra}
    assert task_id.startswith(queue_app(model) + "/")
    assert wait_done(client, task_id).state == TaskState.SUCCEEDED  # the fake's schema took it


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (clip_request(model=RAY_2, ratio="960:960"), "cannot make 960:960"),
        (clip_request(duration_s=6), "5, 10 s, not 6 s"),
        (clip_request(model=HAILUO_02_STANDARD, duration_s=5), "6, 10 s, not 5 s"),
        (clip_request("   "), "needs a prompt"),
        (clip_request(model="fal-ai/veo9/image-to-video"), "no clips model"),
        (clip_request(model=FLUX_DEV), "no clips model"),
    ],
)
def test_requests_a_model_cannot_take_fail_before_any_post(
    client: FalClient, fake: FakeFal, request_: ClipRequest, reason: str
) -> None:
    with pytest.raises(ProviderError, match=reason) as info:
        client.submit_clip(request_, WEB_IMAGE)
    assert info.value.action == Action.FAIL
    assert fake.posts == {}


def test_an_image_model_for_images_only(client: FalClient, fake: FakeFal) -> None:
    with pytest.raises(ProviderError, match="no images model") as info:
        client.submit_image(image_request(model=KLING_21_STANDARD))
    assert info.value.action == Action.FAIL
    assert fake.posts == {}


def test_a_local_image_goes_inline_when_small_and_through_storage_when_not(
    fake: FakeFal, recorder: RecordingTransport, tmp_path: Path
) -> None:
    frame = png(tmp_path / "frame.png", 832, 1104)
    with make_client(fake, transport=recorder) as c:
        c.submit_clip(clip_request(ratio="832:1104"), SourceImage(frame))
    with make_client(fake, transport=recorder, data_uri_max_bytes=100) as c:
        c.submit_clip(clip_request(ratio="832:1104"), SourceImage(frame))
    (_, inline), (_, uploaded) = bodies(fake)
    assert inline["image_url"].startswith("data:image/png;base64,")
    assert uploaded["image_url"].startswith(f"{fake.base_url}/files/uploads/")
    assert fake.stats()["uploads_completed"] == 1
    initiate = next(r for r in recorder.requests if r.url.path == "/storage/upload/initiate")
    put = next(r for r in recorder.requests if r.method == "PUT")
    assert initiate.headers["authorization"] == f"Key {CANARY_KEY}"
    assert "authorization" not in put.headers  # the presigned URL is its own authority
    assert fake.stats()["keys_sent_to_outputs"] == 0


def test_the_storage_api_lives_on_fals_rest_host_unless_the_base_url_is_custom() -> None:
    with (
        FalClient("https://queue.fal.run", CANARY_KEY) as real,
        FalClient("http://127.0.0.1:9", CANARY_KEY) as own,
    ):
        assert real._core.rest_url == DEFAULT_REST_URL
        assert own._core.rest_url == "http://127.0.0.1:9"


# -------------------------------------------------------------------------------------------- lifecycle


def test_lifecycle_queued_running_succeeded_outputs_download(
    client: FalClient, fake: FakeFal, tmp_path: Path
) -> None:
    fake.configure(concurrency=1, image_latency=0.4)
    first = client.submit_image(image_request("first"))
    second = client.submit_image(image_request("second", ratio="1584:672"))
    assert client.status(first).state == TaskState.RUNNING
    waiting = client.status(second)
    assert (waiting.state, waiting.detail, waiting.queue_position) == (TaskState.QUEUED, "IN_QUEUE", 0)
    assert not waiting.terminal
    done = wait_done(client, second)
    assert (done.state, done.detail, done.failure()) == (TaskState.SUCCEEDED, "COMPLETED", None)
    (url,) = client.outputs(second)
    path = client.download(url, tmp_path / "image.png", kind="images")
    info = verify_output("images", path)
    assert (info.format, info.width, info.height) == ("PNG", 1584, 672)
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]


def test_a_clip_is_a_real_mp4(client: FalClient, fake: FakeFal, tmp_path: Path) -> None:
    frame = png(tmp_path / "frame.png", 1280, 720)
    task_id = client.submit_clip(clip_request(), SourceImage(frame))
    assert wait_done(client, task_id).state == TaskState.SUCCEEDED
    (url,) = client.outputs(task_id)
    info = verify_output("clips", client.download(url, tmp_path / "clip.mp4", kind="clips"))
    assert (info.width, info.height) == (1280, 720)
    assert info.duration_s == pytest.approx(5, abs=0.2)


# ---------------------------------------------------------------------------------------------- the bill


def test_the_estimate_is_what_the_fake_bills(client: FalClient, fake: FakeFal, tmp_path: Path) -> None:
    fake.reset(api_key=CANARY_KEY, video_latency=0.05, image_latency=0.05, concurrency=16, video_bytes=b"mp4")
    images = [image_request(ratio=r, model=m) for r in sorted(RATIOS) for m in (FLUX_DEV, FLUX_SCHNELL)]
    clips = [
        clip_request(model=m, duration_s=d, ratio="1280:720")
        for m, durations in ((KLING_21_STANDARD, (5, 10)), (HAILUO_02_STANDARD, (6, 10)), (RAY_2, (5, 9)))
        for d in durations
    ]
    submitted = [(r, client.submit_image(r)) for r in images] + [
        (r, client.submit_clip(r, WEB_IMAGE)) for r in clips
    ]
    for _, task_id in submitted:
        assert wait_done(client, task_id).state == TaskState.SUCCEEDED
    charges = fake.charges
    for request_, task_id in submitted:
        assert PROVIDER.estimate(request_) == pytest.approx(charges[request_id(task_id)], abs=1e-9), request_
    total = sum(PROVIDER.estimate(r) for r, _ in submitted)
    assert fake.credits_spent == pytest.approx(total)
    # 6 ratios × (2.5 + 0.3), 1584:672 is 2 MP (+2.8); Kling 28 + 56, Hailuo 27 + 45, Ray 2 100 + 200
    assert total == pytest.approx(6 * 2.8 + 2.8 + 84 + 72 + 300)


def test_estimates_refuse_what_has_no_price() -> None:
    with pytest.raises(ValueError, match="no image price"):
        PROVIDER.estimate(image_request(model="fal-ai/flux-pro/v9"))
    with pytest.raises(ValueError, match="makes clips of 5, 10 s"):
        PROVIDER.estimate(clip_request(duration_s=7))
    with pytest.raises(ValueError, match="no clip price"):
        PROVIDER.estimate(clip_request(model=FLUX_DEV))


# ---------------------------------------------------------------------------------- never paid twice


@pytest.mark.parametrize(
    "fault", ["create-then-500", "create-then-502", "create-then-503", "create-then-504", "create-then-reset"]
)
def test_create_then_fail_queues_exactly_one_request_and_is_ambiguous(
    client: FalClient, fake: FakeFal, fault: str
) -> None:
    fake.configure(retry_after_on_503=True)  # even so: a gateway's 503 after the queueing has no Retry-After
    fake.fail_next("POST", f"/{FLUX_DEV}", fault)
    with pytest.raises(ProviderError, match="may have been created") as info:
        client.submit_image(image_request())
    assert info.value.action == Action.AMBIGUOUS
    stats = fake.stats()
    assert stats["posts"] == {f"/{FLUX_DEV}": 1}  # never sent again …
    assert stats["tasks_created"] == {FLUX_DEV: 1}  # … so queued (and billed) once
    assert fake.duplicate_submissions == 0


@pytest.mark.parametrize("status_code", [500, 502, 503, 504])
def test_a_5xx_without_proof_is_ambiguous_and_not_retried(
    client: FalClient, fake: FakeFal, status_code: int
) -> None:
    # The fake answered before queueing anything, but a gateway's answer looks the same after the queue took it.
    fake.fail_next("POST", f"/{KLING_21_STANDARD}", status_code)
    with pytest.raises(ProviderError) as info:
        client.submit_clip(clip_request(), WEB_IMAGE)
    assert (info.value.action, info.value.status_code) == (Action.AMBIGUOUS, status_code)
    assert fake.posts[f"/{KLING_21_STANDARD}"] == 1


@pytest.mark.parametrize("status_code", [429, 503])
def test_answers_that_prove_nothing_was_created_are_retried(
    client: FalClient, fake: FakeFal, status_code: int
) -> None:
    fake.configure(retry_after_on_503=True)  # 429 always carries Retry-After
    fake.fail_next("POST", f"/{FLUX_DEV}", status_code, status_code)
    client.submit_image(image_request())
    assert fake.posts[f"/{FLUX_DEV}"] == 3
    assert fake.stats()["tasks_created"] == {FLUX_DEV: 1}
    assert fake.duplicate_submissions == 0


@pytest.mark.parametrize("status_code", [429, 503])
def test_a_provider_that_keeps_refusing_is_unavailable(fake: FakeFal, status_code: int) -> None:
    fake.configure(refuse_creates=status_code)
    with make_client(fake, max_retries=2) as c, pytest.raises(ProviderError) as info:
        c.submit_image(image_request())
    assert info.value.action == Action.UNAVAILABLE
    assert info.value.action in FALLBACK_ACTIONS  # the stage's fallback provider takes over
    assert "3 attempts" in str(info.value)
    assert fake.posts[f"/{FLUX_DEV}"] == 3
    assert fake.stats()["tasks_created"] == {}


@pytest.mark.parametrize("fault", ["reset", "reset-before"])
def test_a_dropped_submit_is_ambiguous_and_not_retried(client: FalClient, fake: FakeFal, fault: str) -> None:
    fake.fail_next("POST", f"/{FLUX_DEV}", fault)
    with pytest.raises(ProviderError, match="may have been created") as info:
        client.submit_image(image_request())
    assert info.value.action == Action.AMBIGUOUS
    assert fake.posts[f"/{FLUX_DEV}"] == 1
    # "reset" drops the answer after queueing: exactly why a retry would be wrong.
    assert fake.stats()["tasks_created"] == ({FLUX_DEV: 1} if fault == "reset" else {})


class _FailingConnects(httpx.BaseTransport):
    """Fails the first ``n`` requests before sending anything, then forwards to a real transport."""

    def __init__(self, n: int, error: type[httpx.TransportError]) -> None:
        self.n, self.error = n, error
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.n > 0:
            self.n -= 1
            raise self.error("no connection", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
def test_connect_errors_on_submit_are_retried(fake: FakeFal, error: type[httpx.TransportError]) -> None:
    with make_client(fake, transport=_FailingConnects(2, error)) as c:
        c.submit_image(image_request())
    assert fake.posts[f"/{FLUX_DEV}"] == 1
    assert fake.stats()["tasks_created"] == {FLUX_DEV: 1}


def test_a_read_timeout_after_queueing_is_ambiguous(fake: FakeFal) -> None:
    fake.configure(create_answer_delay=1.0)
    with make_client(fake, timeout=httpx.Timeout(5.0, read=0.2)) as c, pytest.raises(ProviderError) as info:
        c.submit_image(image_request())
    assert info.value.action == Action.AMBIGUOUS and "ReadTimeout" in str(info.value)
    assert fake.stats()["tasks_created"] == {FLUX_DEV: 1}


def test_a_2xx_without_a_request_id_is_ambiguous() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>gateway</html>"))
    with (
        FalClient("http://fal.test", CANARY_KEY, transport=transport) as c,
        pytest.raises(ProviderError) as info,
    ):
        c.submit_image(image_request())
    assert info.value.action == Action.AMBIGUOUS and "without a request id" in str(info.value)


def test_random_create_then_fail_never_pays_twice(client: FalClient, fake: FakeFal) -> None:
    fake.configure(rate_create_then_fail=0.5, seed=3)
    outcomes: dict[str, int] = {}
    for i in range(16):
        try:
            client.submit_image(image_request(f"fox {i}"))
            outcome = "ok"
        except ProviderError as exc:
            outcome = exc.action.value
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert set(outcomes) == {"ok", "ambiguous"}
    stats = fake.stats()
    assert stats["posts"] == {f"/{FLUX_DEV}": 16}  # one POST per segment, none retried
    assert stats["tasks_created"] == {FLUX_DEV: 16}
    assert fake.duplicate_submissions == 0
    assert all(n == 1 for n in fake.submissions.values())


# --------------------------------------------------------------------------------------- account and reads


def test_an_exhausted_balance_stops_the_job(client: FalClient, fake: FakeFal, tmp_path: Path) -> None:
    fake.configure(credit_balance=0)
    with pytest.raises(ProviderError, match="User is locked") as info:
        client.submit_image(image_request())
    assert (info.value.action, info.value.code, info.value.status_code) == (
        Action.STOP_JOB,
        "user_locked",
        403,
    )
    assert info.value.action in FALLBACK_ACTIONS
    assert fake.posts[f"/{FLUX_DEV}"] == 1  # not retried
    with make_client(fake, data_uri_max_bytes=10) as c, pytest.raises(ProviderError) as upload:
        c.submit_clip(clip_request(), SourceImage(png(tmp_path / "f.png")))
    assert upload.value.action == Action.STOP_JOB  # the storage upload is refused the same way
    assert fake.stats()["tasks_created"] == {}


def test_a_wrong_key_fails(fake: FakeFal) -> None:
    with FalClient(fake.base_url, "wrong:key", timeout=5) as c, pytest.raises(ProviderError) as info:
        c.submit_image(image_request())
    assert (info.value.action, info.value.status_code) == (Action.FAIL, 401)


@pytest.mark.parametrize("fault", [429, 500, 502, 503, 504, "reset"])
def test_reads_are_retried(client: FalClient, fake: FakeFal, fault: int | str) -> None:
    task_id = client.submit_image(image_request())
    fake.fail_next("GET", "/fal-ai/flux/requests/", fault)
    assert client.status(task_id).task_id == task_id
    assert fake.polls[request_id(task_id)] == 2


def test_reads_that_keep_failing_ask_for_a_retry_later(fake: FakeFal) -> None:
    with make_client(fake, max_retries=2) as c:
        task_id = c.submit_image(image_request())
        fake.fail_next("GET", "/fal-ai/flux/requests/", 502, 502, 502)
        with pytest.raises(ProviderError) as info:
            c.status(task_id)
    assert info.value.action == Action.RETRY  # the request is recorded; polling again later is safe
    assert fake.polls[request_id(task_id)] == 3


def test_an_unknown_request_is_an_unknown_task(client: FalClient) -> None:
    unknown = task_id_for(FLUX_DEV, "0f3c5a8e-0000-4000-8000-000000000000")
    with pytest.raises(ProviderError) as info:
        client.status(unknown)
    assert info.value.unknown_task and info.value.action == Action.RESUBMIT
    with pytest.raises(ValueError, match="invalid fal task id"):
        client.status("not/a/valid/../task")


# --------------------------------------------------------------------------------------- failed requests


@pytest.mark.parametrize("in_status", [False, True])
@pytest.mark.parametrize(
    ("prompt", "action", "code"),
    [
        ("a [fail:runner_disconnected]", Action.RESUBMIT, "runner_disconnected"),
        ("a [fail:request_timeout]", Action.RESUBMIT, "request_timeout"),
        ("a [fail:internal_server_error]", Action.RESUBMIT, "internal_server_error"),
        ("a [fail:content_policy_violation]", Action.FAIL, "content_policy_violation"),
        ("a [fail:content_policy_violation@body]", Action.RESEED, "content_policy_violation"),
        ("a [fail:no_media_generated]", Action.RESEED, "no_media_generated"),
        ("a [fail:image_too_large@image_url]", Action.FAIL, "image_too_large"),
        ("a [fail:something_new]", Action.FAIL, "something_new"),
        ("a beach [nsfw]", Action.RESEED, "nsfw_output"),
    ],
)
def test_failed_requests_are_classified(
    client: FalClient, fake: FakeFal, prompt: str, action: Action, code: str, in_status: bool
) -> None:
    fake.configure(model_errors_in_status=in_status)
    task_id = client.submit_image(image_request(prompt))
    status = wait_done(client, task_id)
    assert (status.state, status.action, status.code) == (TaskState.FAILED, action, code)
    error = status.failure()
    assert error is not None and error.action == action and error.task_id == task_id
    with pytest.raises(ProviderError) as info:
        client.outputs(task_id)
    assert info.value.action == action
    assert fake.charges.get(request_id(task_id)) == (2.5 if code == "nsfw_output" else None)


def test_classification_table() -> None:
    assert classify_failure(None) == Action.RESUBMIT
    assert classify_failure("runner_scheduling_failure") == Action.RESUBMIT
    assert classify_failure("downstream_service_unavailable") == Action.RESUBMIT
    assert classify_failure("content_policy_violation", loc=["body", "image_url"]) == Action.FAIL
    assert classify_failure("content_policy_violation", loc=["body"]) == Action.RESEED
    assert classify_failure("content_policy_violation", loc=[{"odd": 1}, None]) == Action.RESEED
    assert classify_failure("missing", loc=["body", "prompt"]) == Action.FAIL
    assert classify_failure("brand_new_type") == Action.FAIL
    assert classify_failure("brand_new_type", retryable=True) == Action.RESUBMIT
    assert classify_failure("BAD_REQUEST") == Action.FAIL


@pytest.mark.parametrize(
    ("code", "body", "action"),
    [
        (422, {"detail": "prompt is too long"}, Action.FAIL),  # a model's 422 whose detail is a plain string
        (500, {"detail": "boom"}, Action.RESUBMIT),
        (400, {"detail": "Request is still in progress"}, Action.FAIL),  # never resubmitted on a 4xx
        (503, {"detail": "down", "error_type": "runner_disconnected"}, Action.RESUBMIT),
    ],
)
def test_untyped_or_platform_errors_on_the_result(code: int, body: dict[str, Any], action: Action) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            return httpx.Response(200, json={"status": "COMPLETED", "request_id": "x"})
        return httpx.Response(code, json=body)

    task_id = task_id_for(FLUX_DEV, "0f3c5a8e-4444-4000-8000-000000000000")
    with FalClient("http://fal.test", CANARY_KEY, max_retries=0, transport=httpx.MockTransport(answer)) as c:
        status = c.status(task_id)
    assert (status.state, status.action) == (TaskState.FAILED, action)


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_a_passing_5xx_on_a_result_read_is_read_again_not_taken_for_the_models_error(
    client: FalClient, fake: FakeFal, code: int
) -> None:
    """Seen on real Airflow with 10 % injected faults: one gateway 500 on the result read (its body shaped like
    a stored error) made a succeeded request look failed, and the segment paid again. A stored error is still
    there when read again; a passing one is not."""
    task_id = client.submit_image(image_request())
    assert wait_done(client, task_id).state == TaskState.SUCCEEDED
    reads = fake.stats()["results"][request_id(task_id)]
    fake.fail_next("GET", f"/fal-ai/flux/requests/{request_id(task_id)}", code)
    assert client.outputs(task_id)
    assert fake.stats()["results"][request_id(task_id)] == reads + 2


def test_a_result_no_longer_kept_is_resubmitted(client: FalClient, fake: FakeFal) -> None:
    task_id = client.submit_image(image_request())
    wait_done(client, task_id)
    fake.configure(result_ttl=0.05)
    time.sleep(0.1)
    with pytest.raises(ProviderError, match="no longer has the result") as info:
        client.outputs(task_id)
    assert (info.value.action, info.value.code) == (Action.RESUBMIT, "result_gone")


def test_cancel(client: FalClient, fake: FakeFal) -> None:
    fake.configure(concurrency=1, image_latency=2.0)
    running = client.submit_image(image_request("a"))
    queued = client.submit_image(image_request("b"))
    assert client.cancel(queued) is True
    status = client.status(queued)
    assert status.state == TaskState.CANCELLED and status.terminal
    cancelled = status.failure()
    assert cancelled is not None and cancelled.action == Action.FAIL
    assert client.cancel(running) is True
    assert client.cancel(running) is False  # already completed (cancelled): nothing left to stop
    assert client.cancel(task_id_for(FLUX_DEV, "0f3c5a8e-0000-4000-8000-000000000001")) is False
    assert fake.charges == {}


# --------------------------------------------------------------------------------------------- downloads


def _output_url(client: FalClient) -> str:
    task_id = client.submit_image(image_request())
    assert wait_done(client, task_id).state == TaskState.SUCCEEDED
    (url,) = client.outputs(task_id)
    return url


def test_downloads_carry_no_key(
    client: FalClient, fake: FakeFal, recorder: RecordingTransport, tmp_path: Path
) -> None:
    url = _output_url(client)
    client.download(url, tmp_path / "a.png", kind="images")
    (download,) = [r for r in recorder.requests if r.url.path.startswith("/files/")]
    assert "authorization" not in download.headers
    assert fake.stats()["keys_sent_to_outputs"] == 0


def test_an_expired_output_url_is_resubmitted(client: FalClient, fake: FakeFal, tmp_path: Path) -> None:
    url = _output_url(client)
    fake.configure(output_ttl=0.05)
    time.sleep(0.1)
    with pytest.raises(ProviderError, match="expired or gone") as info:
        client.download(url, tmp_path / "late.png", kind="images")
    assert (info.value.action, info.value.status_code) == (Action.RESUBMIT, 404)
    assert list(tmp_path.iterdir()) == []
    assert fake.stats()["expired_downloads"] == 1


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/security-credentials/", "internal address"),
        ("http://[::ffff:169.254.169.254]/latest/meta-data/", "internal address"),
        ("http://10.1.2.3/admin", "internal address"),
        ("http://127.0.0.1:22/", "internal address"),
        ("http://localhost:{port}/files/x.png", "loopback host"),
        ("file:///etc/passwd", "file URL"),
    ],
)
def test_redirects_out_of_bounds_are_refused(
    client: FalClient, fake: FakeFal, tmp_path: Path, target: str, reason: str
) -> None:
    url = _output_url(client)
    fake.configure(output_redirect=target.format(port=httpx.URL(fake.base_url).port))
    with pytest.raises(FalOutputRejected, match=f"refused \\({reason}\\)|{reason} refused") as info:
        client.download(url, tmp_path / "img.png", kind="images")
    assert isinstance(info.value, OutputRejected) and info.value.action == Action.FAIL
    assert list(tmp_path.iterdir()) == []
    assert fake.stats()["downloads"] == 1  # refused before anything was sent to the target


def test_same_host_redirects_are_followed_and_loops_stop(
    client: FalClient, fake: FakeFal, tmp_path: Path
) -> None:
    url = _output_url(client)
    fake.configure(output_redirect="same-host")
    assert verify_output("images", client.download(url, tmp_path / "a.png", kind="images")).format == "PNG"
    fake.configure(output_redirect="loop")
    with pytest.raises(FalOutputRejected, match="more than 5 redirects"):
        client.download(url, tmp_path / "b.png", kind="images")
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


@pytest.mark.parametrize("body", ["oversized", "oversized-chunked"])
def test_oversized_outputs_are_refused_while_streaming(
    client: FalClient, fake: FakeFal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str
) -> None:
    monkeypatch.setitem(MAX_OUTPUT_BYTES, "images", 200_000)
    url = _output_url(client)
    fake.configure(output_body=body, oversize_bytes=5_000_000)
    expected = "5000000 bytes announced" if body == "oversized" else "more than the 200000 bytes allowed"
    with pytest.raises(FalOutputRejected, match=expected):
        client.download(url, tmp_path / "img.png", kind="images")
    assert list(tmp_path.iterdir()) == []


def test_a_cut_download_is_retried(client: FalClient, fake: FakeFal, tmp_path: Path) -> None:
    url = _output_url(client)
    fake.fail_next("GET", "/files/", "reset")
    path = client.download(url, tmp_path / "a.png", kind="images")
    assert verify_output("images", path).format == "PNG"
    assert fake.faults["reset"] == 1 and fake.stats()["downloads"] == 2


def test_https_to_http_is_refused_over_tls(tmp_path: Path) -> None:
    with FakeFal(api_key=CANARY_KEY, tls=True, image_latency=0.05) as tls:
        transport = httpx.HTTPTransport(verify=tls.ssl_context())
        with FalClient(tls.base_url, CANARY_KEY, timeout=5, transport=transport) as c:
            url = _output_url(c)
            assert url.startswith("https://")
            tls.configure(output_redirect="downgrade")
            with pytest.raises(FalOutputRejected, match="scheme downgrade"):
                c.download(url, tmp_path / "a.png", kind="images")


# ---------------------------------------------------------------------------------------------- the key


def test_the_key_never_leaks(fake: FakeFal, caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with make_client(fake, max_retries=1) as c:
        assert CANARY_KEY not in repr(c) and CANARY_KEY not in str(c)
        task_id = c.submit_image(image_request())
        fake.fail_next("POST", f"/{FLUX_DEV}", 503)
        fake.fail_next("POST", f"/{KLING_21_STANDARD}", "reset")
        fake.fail_next("GET", "/fal-ai/flux/requests/", 429, "reset")
        attempts: list[Callable[[], object]] = [
            lambda: c.submit_image(image_request()),  # a bare 503 on a submit: ambiguous
            lambda: c.submit_clip(clip_request(), WEB_IMAGE),  # dropped: ambiguous
            lambda: c.status(task_id),  # 429 + reset: retried, then used up
            lambda: c.submit_clip(clip_request(model=RAY_2, ratio="960:960"), WEB_IMAGE),  # refused locally
            lambda: c.download(
                f"{fake.base_url}/files/out/nope/image-0.png", tmp_path / "x.png", kind="images"
            ),
            lambda: c.status(task_id_for(FLUX_DEV, "0f3c5a8e-0000-4000-8000-000000000002")),
        ]
        for attempt in attempts:
            with pytest.raises(ProviderError) as info:
                attempt()
            errors.append(info.value)
        fake.configure(credit_balance=0)
        with pytest.raises(ProviderError) as locked:
            c.submit_image(image_request())
        errors.append(locked.value)
    with FalClient(fake.base_url, CANARY_KEY + "x", timeout=5) as wrong, pytest.raises(ProviderError) as info:
        wrong.submit_image(image_request())
    errors.append(info.value)
    with FalClient("http://127.0.0.1:9", CANARY_KEY, timeout=1, max_retries=0) as dead:
        with pytest.raises(ProviderError) as unreachable:
            dead.status(task_id)
        errors.append(unreachable.value)
    assert len(errors) == 9
    secret = CANARY_KEY.split(":")[1]
    for err in errors:
        assert secret not in all_text(err)
    assert caplog.records  # retries were logged …
    assert secret not in caplog.text  # … without the key
    assert "HTTP Request:" not in caplog.text  # httpx's own INFO lines (full URLs) stay off


def test_a_key_or_a_signed_url_echoed_by_the_server_is_scrubbed() -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        detail = (
            f"bad header {request.headers['authorization']} fetching https://cdn.example.com/a.png?sig=s3cr3t "
            "from data:image/png;base64,QUJDRA=="
        )
        return httpx.Response(422, json={"detail": detail})

    with (
        FalClient("http://fal.test", CANARY_KEY, transport=httpx.MockTransport(echo)) as c,
        pytest.raises(ProviderError) as info,
    ):
        c.submit_image(image_request())
    text = all_text(info.value)
    assert CANARY_KEY not in text and "s3cr3t" not in text and "QUJDRA" not in text
    assert "[redacted]" in text and "https://cdn.example.com/a.png?[redacted]" in text


def test_a_key_that_cannot_travel_in_a_header_is_refused_without_echo() -> None:
    with pytest.raises(ValueError, match="not allowed") as info:
        FalClient("http://fal.test", CANARY_KEY + "\n")
    assert CANARY_KEY not in all_text(info.value)
    with pytest.raises(ValueError, match="empty"):
        FalClient("http://fal.test", "")


# ------------------------------------------------------------------------------------------- async client


async def test_async_status_and_cancel(aclient: AsyncFalClient, fake: FakeFal) -> None:
    fake.configure(concurrency=1, image_latency=0.3)
    with make_client(fake) as c:
        first = c.submit_image(image_request("a"))
        second = c.submit_image(image_request("b [fail:content_policy_violation]"))
    assert (await aclient.status(second)).state == TaskState.QUEUED
    status = await aclient.status(first)
    while not status.terminal:
        await asyncio.sleep(0.03)
        status = await aclient.status(first)
    assert status.state == TaskState.SUCCEEDED
    status = await aclient.status(second)
    while not status.terminal:
        await asyncio.sleep(0.03)
        status = await aclient.status(second)
    assert (status.state, status.action) == (TaskState.FAILED, Action.FAIL)
    with make_client(fake) as c:
        third = c.submit_image(image_request("c", seed=3))
    assert await aclient.cancel(third) is True
    assert (await aclient.status(third)).state == TaskState.CANCELLED
    assert await aclient.cancel(third) is False
    assert CANARY_KEY not in repr(aclient)


async def test_async_reads_retry_and_give_up_as_retry(fake: FakeFal) -> None:
    with make_client(fake) as c:
        task_id = c.submit_image(image_request())
    fake.fail_next("GET", "/fal-ai/flux/requests/", 503, "reset", 502)
    async with AsyncFalClient(fake.base_url, CANARY_KEY, max_retries=1, backoff_base=0.01) as a:
        with pytest.raises(ProviderError) as info:
            await a.status(task_id)
        assert info.value.action == Action.RETRY
        assert (await a.status(task_id)).task_id == task_id  # the third fault was used; this one answers


# ------------------------------------------------------------------------------------------------ provider


def test_the_provider_satisfies_the_port_and_is_registered() -> None:
    provider: RemoteProvider = PROVIDER  # checked by mypy as well
    assert isinstance(provider, RemoteProvider)
    assert registry.remote("fal") is PROVIDER
    assert (provider.name, provider.conn_id, provider.default_base_url) == (
        "fal",
        "fal_default",
        "https://queue.fal.run",
    )
    assert provider.default_models == {"images": FLUX_DEV, "clips": KLING_21_STANDARD}
    assert registry.model_spec("fal", "clips", None).durations == (5, 10)
    ray = registry.model_spec("fal", "clips", RAY_2)
    assert ray.ratios == frozenset(RATIOS) - {"960:960"}
    assert (ray.clip_duration(4), ray.clip_duration(6)) == (5, 9)
    with pytest.raises(ValueError, match="at most 9 s"):
        ray.clip_duration(10)
    with pytest.raises(ValueError, match="cannot make 960:960"):
        ray.check_ratio("960:960")
    for spec in provider.models.values():
        assert spec.notes


def test_client_settings_come_from_the_connection_extras(fake: FakeFal) -> None:
    fake.configure(refuse_creates=429)
    endpoint = Endpoint(fake.base_url, CANARY_KEY, {"max_retries": 0, "backoff_base": "0.01", "timeout": 5})
    with PROVIDER.client(endpoint) as c, pytest.raises(ProviderError) as info:
        c.submit_image(image_request())
    assert info.value.action == Action.UNAVAILABLE
    assert fake.posts[f"/{FLUX_DEV}"] == 1  # max_retries 0 from the extras
    with pytest.raises(ValueError, match="must be a number"):
        PROVIDER.client(Endpoint(fake.base_url, CANARY_KEY, {"timeout": "soon"}))
    with pytest.raises(ValueError, match="finite number"):
        PROVIDER.async_client(Endpoint(fake.base_url, CANARY_KEY, {"backoff_cap": math.inf}))
    assert CANARY_KEY not in repr(endpoint)


def test_task_ids() -> None:
    assert queue_app(FLUX_DEV) == "fal-ai/flux"
    assert queue_app(KLING_21_STANDARD) == "fal-ai/kling-video"
    assert queue_app("workflows/someone/my-flow/run") == "workflows/someone/my-flow"
    task_id = task_id_for(RAY_2, "0f3c5a8e-1111-4000-8000-000000000000")
    assert task_id == "fal-ai/luma-dream-machine/0f3c5a8e-1111-4000-8000-000000000000"
    assert split_task_id(task_id) == ("fal-ai/luma-dream-machine", "0f3c5a8e-1111-4000-8000-000000000000")
    for bad in ("", "abc", "fal-ai/flux/dev/x", "../flux/x", "fal-ai/flux/", "fal-ai/flux/a b", "a/b/c?x=1"):
        with pytest.raises(ValueError, match="invalid fal task id"):
            split_task_id(bad)
    with pytest.raises(ValueError, match="not a fal model id"):
        queue_app("single")


# ----------------------------------------------------------------------------- answers of every shape


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_STATUS_BODIES = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "", "in_queue"])
            | st.text()
        },
        optional={
            "queue_position": _JSON,
            "error": _JSON,
            "error_type": _JSON,
            "logs": _JSON,
            "metrics": _JSON,
        },
    ),
)
_RESULT_BODIES = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "images": st.lists(st.dictionaries(st.sampled_from(["url", "width"]), _JSON) | _JSON, max_size=3),
            "video": st.dictionaries(
                st.sampled_from(["url", "content_type"]), _JSON | st.just("https://x/y.mp4")
            ),
            "has_nsfw_concepts": _JSON,
            "detail": _JSON
            | st.lists(st.dictionaries(st.sampled_from(["loc", "msg", "type"]), _JSON), max_size=3),
            "error_type": _JSON,
        },
    ),
)
_CODES = st.sampled_from([200, 202, 204, 400, 401, 403, 404, 410, 422, 429, 499, 500, 502, 503, 504])


def _answer(code: int, body: Any, raw: bytes | None) -> httpx.Response:
    if raw is not None:
        return httpx.Response(code, content=raw)
    return httpx.Response(code, json=body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    status_code=_CODES,
    status_body=_STATUS_BODIES,
    status_raw=st.none() | st.binary(max_size=64),
    result_code=_CODES,
    result_body=_RESULT_BODIES,
    result_raw=st.none() | st.binary(max_size=64),
    retry_after=st.none() | st.sampled_from(["0", "nan", "-1", "1e9", "soon"]),
)
def test_any_status_or_result_answer_is_a_status_or_a_provider_error(
    status_code: int,
    status_body: Any,
    status_raw: bytes | None,
    result_code: int,
    result_body: Any,
    result_raw: bytes | None,
    retry_after: str | None,
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            response = _answer(status_code, status_body, status_raw)
        else:
            response = _answer(result_code, result_body, result_raw)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response

    task_id = task_id_for(FLUX_DEV, "0f3c5a8e-2222-4000-8000-000000000000")
    with FalClient(
        "http://fal.test", CANARY_KEY, max_retries=1, backoff_cap=0, transport=httpx.MockTransport(answer)
    ) as c:
        for call in (c.status, c.outputs):
            outcome: Any
            try:
                outcome = call(task_id)
            except ProviderError as exc:  # the one exception allowed; anything else fails the test
                outcome = exc
            if isinstance(outcome, ProviderError):
                assert isinstance(outcome.action, Action)
                assert CANARY_KEY not in all_text(outcome)
            elif isinstance(outcome, RemoteStatus):
                assert outcome.task_id == task_id
                RemoteStatus.model_validate_json(outcome.model_dump_json())  # JSON-safe for the trigger
            else:
                assert all(isinstance(url, str) and url.startswith("http") for url in outcome)


def test_huge_and_deeply_nested_answers_are_provider_errors() -> None:
    answers = {
        "huge": httpx.Response(200, content=b'{"status": "IN_QUEUE", "logs": "' + b"x" * 3_000_000 + b'"}'),
        "deep": httpx.Response(200, content=b"[" * 100_000 + b"]" * 100_000),
    }
    task_id = task_id_for(FLUX_DEV, "0f3c5a8e-3333-4000-8000-000000000000")
    for name, response in answers.items():
        with (
            FalClient(
                "http://fal.test",
                CANARY_KEY,
                max_retries=0,
                transport=httpx.MockTransport(lambda r, a=response: a),
            ) as c,
            pytest.raises(ProviderError) as info,
        ):
            c.status(task_id)
        assert info.value.action == Action.RETRY, name
