"""The fake fal queue behaves like the real API: lifecycle, account-wide concurrency, errors, billing, uploads,
expiry, faults, counters.

These tests speak raw HTTP (httpx), not the project's client, so the fake is checked on its own terms.
"""

from __future__ import annotations

import base64
import io
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.fake_fal import LOCKED, NO_USER, PRICES_SOURCE, FakeFal
from video_pipeline.outputs import verify_output

KEY = "fake-fal-test-key"
REPO = Path(__file__).resolve().parents[2]
FLUX = "fal-ai/flux/dev"
KLING = "fal-ai/kling-video/v2.1/standard/image-to-video"
HAILUO = "fal-ai/minimax/hailuo-02/standard/image-to-video"
RAY2 = "fal-ai/luma-dream-machine/ray-2/image-to-video"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeFal]:
    with FakeFal(api_key=KEY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeFal) -> FakeFal:
    fake_server.reset(api_key=KEY, image_latency=0.3, video_latency=0.4, retry_after=0.2)
    return fake_server


@pytest.fixture
def api(fake: FakeFal) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Key {KEY}"}, timeout=10) as client:
        yield client


def image_body(prompt: str = "a fox", **extra: Any) -> dict[str, Any]:
    return {"prompt": prompt, "image_size": {"width": 1280, "height": 720}, "seed": 1, **extra}


def png_data_uri(width: int = 64, height: int = 36) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def video_body(**extra: Any) -> dict[str, Any]:
    return {"prompt": "it moves", "image_url": "https://example.com/a.png", "duration": "5", **extra}


def submit(api: httpx.Client, body: dict[str, Any], model: str = FLUX) -> dict[str, Any]:
    response = api.post(f"/{model}", json=body)
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


def status(api: httpx.Client, queued: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = api.get(queued["status_url"])
    return response.status_code, response.json()


def wait(api: httpx.Client, queued: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (data := status(api, queued)[1])["status"] != "COMPLETED":
        assert time.monotonic() < deadline, data
        time.sleep(0.03)
    return data


def result(api: httpx.Client, queued: dict[str, Any]) -> httpx.Response:
    return api.get(queued["response_url"])


# --------------------------------------------------------------------------------------------- lifecycle


def test_a_request_is_queued_runs_and_completes_with_a_real_png(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(image_latency=0.5)
    queued = submit(api, image_body(seed=5))
    request_id = queued["request_id"]
    # Only owner/app addresses a request: the model's sub-path (/dev) is not part of these URLs.
    assert queued["status_url"] == f"{fake.base_url}/fal-ai/flux/requests/{request_id}/status"
    assert queued["response_url"] == f"{fake.base_url}/fal-ai/flux/requests/{request_id}"
    assert queued["cancel_url"] == f"{fake.base_url}/fal-ai/flux/requests/{request_id}/cancel"
    code, running = status(api, queued)
    assert (code, running["status"]) == (202, "IN_PROGRESS")
    assert result(api, queued).status_code == 400  # no result before completion
    done = wait(api, queued)
    assert done["metrics"]["inference_time"] == 0.5
    assert "error" not in done
    assert api.get(queued["status_url"]).status_code == 200
    data = result(api, queued).json()
    (image,) = data["images"]
    assert (image["width"], image["height"], image["content_type"]) == (1280, 720, "image/png")
    assert data["seed"] == 5 and data["has_nsfw_concepts"] == [False]
    png = httpx.get(image["url"])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_status_and_result_answer_only_on_the_app_path(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body())
    request_id = queued["request_id"]
    assert api.get(f"/fal-ai/flux/dev/requests/{request_id}/status").status_code == 404  # sub-path: wrong
    assert api.get(f"/fal-ai/kling-video/requests/{request_id}/status").status_code == 404  # another app
    assert api.get("/fal-ai/flux/requests/no-such-request/status").status_code == 404
    assert api.get(f"/fal-ai/flux/requests/{request_id}/status").status_code in (200, 202)


def test_concurrency_is_account_wide_and_fifo(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(concurrency=1, image_latency=0.3, video_latency=0.3)
    first = submit(api, image_body("a"))
    second = submit(api, video_body(), KLING)  # another model: the same account slot
    third = submit(api, image_body("c"))
    assert status(api, first)[1]["status"] == "IN_PROGRESS"
    waiting = [status(api, q)[1] for q in (second, third)]
    assert [w["status"] for w in waiting] == ["IN_QUEUE", "IN_QUEUE"]
    assert [w["queue_position"] for w in waiting] == [0, 1]
    for queued in (first, second, third):
        wait(api, queued)
    assert fake.max_running == 1
    assert fake.tasks_by_status["SUCCEEDED"] == 3


def test_a_held_request_stays_queued(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(rate_queued=1.0, queue_hold_s=0.3)
    queued = submit(api, image_body())
    assert status(api, queued)[1]["status"] == "IN_QUEUE"
    time.sleep(0.35)
    assert status(api, queued)[1]["status"] in ("IN_PROGRESS", "COMPLETED")
    assert fake.faults["queued"] == 1


def test_video_outputs_are_real_mp4s_in_the_frame_the_model_makes(
    fake: FakeFal, api: httpx.Client, tmp_path: Path
) -> None:
    ray = submit(api, video_body(aspect_ratio="21:9", resolution="720p", duration="5s"), RAY2)
    kling = submit(api, video_body(image_url=png_data_uri(832, 1104)), KLING)  # follows the image: portrait
    for queued, expected in ((ray, (1680, 720)), (kling, (720, 956))):
        wait(api, queued)
        video = result(api, queued).json()["video"]
        assert video["content_type"] == "video/mp4"
        clip = httpx.get(video["url"])
        path = tmp_path / "clip.mp4"
        path.write_bytes(clip.content)
        info = verify_output("clips", path)
        assert (info.width, info.height) == expected
        assert info.duration_s == pytest.approx(5, abs=0.2)


# -------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("model", "body", "field", "kind"),
    [
        (FLUX, {"image_size": "landscape_16_9"}, "prompt", "missing"),
        (FLUX, image_body(steps=3), "steps", "extra_forbidden"),
        (FLUX, image_body(image_size={"width": 5, "height": 5}), "image_size", "value_error"),
        (KLING, video_body(duration="6"), "duration", "value_error"),
        (KLING, video_body(seed=3), "seed", "extra_forbidden"),
        (HAILUO, video_body(duration="5"), "duration", "value_error"),
        (RAY2, video_body(duration="5s", aspect_ratio="1:1"), "aspect_ratio", "value_error"),
        (KLING, video_body(image_url="ftp://example.com/a.png"), "image_url", "url_parsing"),
        (KLING, video_body(prompt="  "), "prompt", "string_too_short"),
    ],
)
def test_invalid_input_completes_with_the_models_422_unbilled(
    fake: FakeFal, api: httpx.Client, model: str, body: dict[str, Any], field: str, kind: str
) -> None:
    queued = submit(api, body, model)  # the queue takes it; the model refuses it when a runner reads it
    done = wait(api, queued)
    assert "error" not in done  # a model's refusal shows on the result
    refused = result(api, queued)
    assert refused.status_code == 422
    assert {"loc": ["body", field], "type": kind} in [
        {"loc": d["loc"], "type": d["type"]} for d in refused.json()["detail"]
    ]
    assert fake.credits_spent == 0 and fake.charges == {}


def test_validation_at_submit_and_model_errors_in_status(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(validate_on_submit=True)
    refused = api.post(f"/{KLING}", json=video_body(duration="7"))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "duration"]
    assert fake.stats()["tasks_created"] == {}
    fake.configure(validate_on_submit=False, model_errors_in_status=True)
    done = wait(api, submit(api, video_body(duration="7"), KLING))
    assert done["error_type"] == "value_error"


def test_data_uris_and_their_limit(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(data_uri_max_bytes=200)
    big = submit(api, video_body(image_url=png_data_uri(200, 200)), KLING)
    wait(api, big)
    assert result(api, big).json()["detail"][0]["type"] == "file_too_large"
    broken = submit(api, video_body(image_url="data:image/png;base64,@@@"), KLING)
    wait(api, broken)
    assert result(api, broken).json()["detail"][0]["type"] == "image_load_error"


# ---------------------------------------------------------------------------------------------- outcomes


def test_platform_errors_show_on_status_and_result(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body("crash [fail:runner_disconnected]"))
    done = wait(api, queued)
    assert done["error_type"] == "runner_disconnected" and done["error"]
    failed = result(api, queued)
    assert failed.status_code == 503
    assert failed.headers["x-fal-error-type"] == "runner_disconnected"
    assert failed.json()["error_type"] == "runner_disconnected"
    assert fake.charges == {}


@pytest.mark.parametrize(
    ("marker", "loc", "code"),
    [
        ("[fail:content_policy_violation]", ["body", "prompt"], 422),
        ("[fail:content_policy_violation@body]", ["body"], 422),
        ("[fail:file_download_error@image_url]", ["body", "image_url"], 422),
        ("[fail:generation_timeout]", ["body", "prompt"], 504),
    ],
)
def test_model_errors_show_on_the_result(
    fake: FakeFal, api: httpx.Client, marker: str, loc: list[str], code: int
) -> None:
    queued = submit(api, video_body(prompt=f"a scene {marker}"), KLING)
    assert "error" not in wait(api, queued)
    failed = result(api, queued)
    assert failed.status_code == code
    (detail,) = failed.json()["detail"]
    assert detail["loc"] == loc
    assert detail["type"] == marker.strip("[]").split(":")[1].split("@")[0]


def test_fail_once_and_fail_n(api: httpx.Client) -> None:
    once = "glitch [fail-once:no_media_generated]"
    first = submit(api, image_body(once))
    wait(api, first)
    assert result(api, first).status_code == 422
    again = submit(api, image_body(once, seed=2))
    wait(api, again)
    assert result(api, again).status_code == 200
    twice = "flaky [fail-2:internal_error]"
    outcomes = []
    for seed in range(3):
        queued = submit(api, image_body(twice, seed=seed))
        outcomes.append(wait(api, queued).get("error_type"))
    assert outcomes == ["internal_error", "internal_error", None]


def test_nsfw_images_are_black_flagged_and_billed(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body("beach [nsfw]"))
    wait(api, queued)
    data = result(api, queued).json()
    assert data["has_nsfw_concepts"] == [True]
    from PIL import Image

    image = Image.open(io.BytesIO(httpx.get(data["images"][0]["url"]).content))
    assert image.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert fake.credits_spent == 2.5  # a flagged image is still an output


def test_latency_marker(api: httpx.Client) -> None:
    started = time.monotonic()
    wait(api, submit(api, image_body("quick [latency:0.05]")))
    assert time.monotonic() - started < 0.3


# ----------------------------------------------------------------------------------------------- billing


def test_billing_follows_the_price_list_and_only_successes_pay(fake: FakeFal, api: httpx.Client) -> None:
    bodies = [
        (FLUX, image_body()),  # 1280x720 = 0.92 MP → 1 MP × $0.025
        (FLUX, image_body(image_size={"width": 1584, "height": 672})),  # 1.06 MP → 2 MP
        ("fal-ai/flux/schnell", image_body(num_images=2)),  # 2 × 1 MP × $0.003
        (KLING, video_body(duration="10")),  # $0.28 + 5 × $0.056
        (HAILUO, video_body(duration="6")),  # 6 × $0.045 at 768P
        (HAILUO, video_body(duration="10", resolution="512P")),  # 10 × $0.017
        (RAY2, video_body(duration="9s", resolution="720p")),  # $0.50 × 2 (720p) × 2 (9 s)
        (KLING, video_body(prompt="boom [fail:runner_server_error]")),  # failed: free
    ]
    fake.configure(video_latency=0.05, image_latency=0.05, concurrency=8)
    ids = [submit(api, body, model)["request_id"] for model, body in bodies]
    deadline = time.monotonic() + 5
    while fake.tasks_by_status["SUCCEEDED"] + fake.tasks_by_status["FAILED"] < len(bodies):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    expected = [2.5, 5.0, 0.6, 56.0, 27.0, 17.0, 200.0]
    assert [fake.charges.get(i) for i in ids] == [*expected, None]
    assert fake.credits_spent == pytest.approx(sum(expected))
    assert fake.credit_balance == pytest.approx(100_000 - sum(expected))
    assert "fal.ai" in PRICES_SOURCE


def test_an_exhausted_balance_locks_the_account(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(credit_balance=3)
    queued = submit(api, image_body())  # 2.5 credits, billed when it succeeds
    wait(api, queued)
    second = submit(api, image_body(seed=2))  # 0.5 left: still unlocked
    wait(api, second)
    assert fake.credit_balance == pytest.approx(-2.0)  # billed after the fact, as fal does
    locked = api.post(f"/{FLUX}", json=image_body(seed=3))
    assert (locked.status_code, locked.json()) == (403, {"detail": LOCKED})
    upload = api.post("/storage/upload/initiate", json={"file_name": "a.png", "content_type": "image/png"})
    assert upload.status_code == 403
    assert status(api, queued)[0] == 200  # reads still work
    assert fake.stats()["tasks_created"] == {FLUX: 2}


# ------------------------------------------------------------------------------------------------ cancel


def test_cancel_queued_running_completed_unknown(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(concurrency=1, image_latency=2.0)
    running = submit(api, image_body("a"))
    queued = submit(api, image_body("b"))
    answer = api.put(queued["cancel_url"])
    assert (answer.status_code, answer.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    done = status(api, queued)[1]
    assert (done["status"], done["error_type"]) == ("COMPLETED", "client_cancelled")
    assert result(api, queued).status_code == 499
    assert api.put(running["cancel_url"]).status_code == 202  # in progress: stopped, its slot freed
    assert status(api, running)[1]["error_type"] == "client_cancelled"
    again = api.put(running["cancel_url"])
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    unknown = api.put("/fal-ai/flux/requests/nope/cancel")
    assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})
    assert fake.charges == {} and fake.cancels == 4
    assert fake.tasks_by_status["CANCELLED"] == 2


# ------------------------------------------------------------------------------------ storage and outputs


def test_storage_upload_flow(fake: FakeFal, api: httpx.Client) -> None:
    started = api.post(
        "/storage/upload/initiate?storage_type=gcs",
        json={"file_name": "frame.png", "content_type": "image/png"},
    )
    assert started.status_code == 200
    upload_url, file_url = started.json()["upload_url"], started.json()["file_url"]
    early = submit(api, video_body(image_url=file_url), KLING)  # not uploaded yet: the runner cannot fetch it
    wait(api, early)
    assert result(api, early).json()["detail"][0]["type"] == "file_download_error"
    png = base64.b64decode(png_data_uri(48, 64).split(",", 1)[1])
    keyed = httpx.put(upload_url, content=png, headers={"Authorization": f"Key {KEY}"})
    assert keyed.status_code == 400  # the presigned URL is the only authority
    assert httpx.put(upload_url.split("?")[0], content=png).status_code == 403  # unsigned
    assert httpx.put(upload_url, content=png, headers={"Content-Type": "image/png"}).status_code == 200
    assert httpx.get(file_url).content == png
    later = submit(api, video_body(image_url=file_url), KLING)
    wait(api, later)
    assert result(api, later).status_code == 200
    assert fake.stats()["uploads_completed"] == 1
    assert fake.stats()["keys_sent_to_outputs"] == 1


def test_outputs_and_results_expire_and_refuse_keys(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body())
    wait(api, queued)
    url = result(api, queued).json()["images"][0]["url"]
    assert httpx.get(url, headers={"Authorization": f"Key {KEY}"}).status_code == 400
    assert httpx.get(url).status_code == 200
    fake.configure(output_ttl=0.1, result_ttl=0.1)
    time.sleep(0.15)
    assert httpx.get(url).status_code == 404
    assert result(api, queued).status_code == 404
    stats = fake.stats()
    assert stats["expired_downloads"] == 1 and stats["keys_sent_to_outputs"] == 1


def test_broken_outputs_and_redirects(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body())
    wait(api, queued)
    url = result(api, queued).json()["images"][0]["url"]
    good = httpx.get(url).content
    fake.configure(output_body="truncated")
    assert httpx.get(url).content == good[: len(good) // 2]
    fake.configure(output_body="ok", output_redirect="same-host")
    assert httpx.get(url).status_code == 302
    assert httpx.get(url, follow_redirects=True).content.startswith(b"\x89PNG")
    fake.configure(output_redirect="http://169.254.169.254/latest/meta-data/")
    assert httpx.get(url).headers["location"] == "http://169.254.169.254/latest/meta-data/"
    assert fake.faults["output-truncated"] == 1


# ------------------------------------------------------------------------------------------------ faults


def test_auth(fake: FakeFal) -> None:
    with httpx.Client(base_url=fake.base_url) as raw:
        missing = raw.post(f"/{FLUX}", json=image_body())
        assert (missing.status_code, missing.json()) == (401, {"detail": NO_USER})
        wrong = raw.post(f"/{FLUX}", json=image_body(), headers={"Authorization": "Key nope"})
        assert wrong.status_code == 401
        bearer = raw.post(f"/{FLUX}", json=image_body(), headers={"Authorization": f"Bearer {KEY}"})
        assert bearer.status_code == 401
    assert fake.stats()["rejections"] == {"401": 3}
    assert fake.stats()["tasks_created"] == {}


def test_unknown_model(api: httpx.Client) -> None:
    assert api.post("/fal-ai/no-such-model", json={"prompt": "x"}).status_code == 404


def test_scripted_faults(fake: FakeFal, api: httpx.Client) -> None:
    queued = submit(api, image_body())
    fake.fail_next("GET", "/fal-ai/flux/requests/", 429, 502, "reset")
    limited = api.get(queued["status_url"])
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0.2"
    assert api.get(queued["status_url"]).status_code == 502
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get(queued["status_url"])
    assert api.get(queued["status_url"]).status_code in (200, 202)
    assert fake.faults == {"429": 1, "502": 1, "reset": 1}


@pytest.mark.parametrize(
    "fault", ["create-then-500", "create-then-502", "create-then-503", "create-then-504"]
)
def test_create_then_fail_queues_the_request_then_answers_an_error(
    fake: FakeFal, api: httpx.Client, fault: str
) -> None:
    fake.configure(retry_after_on_503=True)
    fake.fail_next("POST", f"/{FLUX}", fault)
    response = api.post(f"/{FLUX}", json=image_body())
    assert response.status_code == int(fault.rsplit("-", 1)[1])
    assert "retry-after" not in response.headers  # a gateway's failure, not a "come back later"
    assert fake.stats()["tasks_created"] == {FLUX: 1}
    submit(api, image_body())  # the script is used up …
    assert fake.duplicate_submissions == 1  # … and this is the retry a client must not make


def test_create_then_reset_and_reset_before(fake: FakeFal, api: httpx.Client) -> None:
    fake.fail_next("POST", f"/{KLING}", "create-then-reset", "reset-before")
    for _ in range(2):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            api.post(f"/{KLING}", json=video_body())
    assert fake.stats()["tasks_created"] == {KLING: 1}  # only the first one was queued
    with pytest.raises(ValueError, match="create-then"):
        fake.fail_next("POST", f"/{KLING}", "create-then-418")


@pytest.mark.parametrize("status_code", [429, 503])
def test_refuse_creates_refuses_every_submit(fake: FakeFal, api: httpx.Client, status_code: int) -> None:
    queued = submit(api, image_body())
    fake.configure(refuse_creates=status_code, retry_after=2)
    for seed in range(3):
        refused = api.post(f"/{FLUX}", json=image_body(seed=seed + 10))
        assert (refused.status_code, refused.headers["retry-after"]) == (status_code, "2")
    assert api.get(queued["status_url"]).status_code in (200, 202)  # reads are unaffected
    assert fake.stats()["tasks_created"] == {FLUX: 1}
    assert fake.faults[f"refused-{status_code}"] == 3
    with pytest.raises(ValueError, match="refuse_creates"):
        fake.configure(refuse_creates=500)


def test_create_answer_delay(fake: FakeFal, api: httpx.Client) -> None:
    fake.configure(create_answer_delay=0.3)
    with pytest.raises(httpx.ReadTimeout):
        api.post(f"/{FLUX}", json=image_body(), timeout=httpx.Timeout(5, read=0.05))
    assert fake.stats()["tasks_created"] == {FLUX: 1}  # queued before the answer was late


def _fault_sequence(seed: int) -> list[int | str]:
    with FakeFal(api_key=KEY, rate_429=0.3, rate_5xx=0.2, rate_reset=0.1, seed=seed) as fake:
        out: list[int | str] = []
        with httpx.Client(base_url=fake.base_url, headers={"Authorization": f"Key {KEY}"}) as api:
            for _ in range(30):
                try:
                    out.append(api.get("/fal-ai/flux/requests/unknown/status").status_code)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    out.append("reset")
        return out


def test_random_faults_are_seeded() -> None:
    first, second, other = _fault_sequence(1), _fault_sequence(1), _fault_sequence(2)
    assert first == second != other
    assert {429, 404, "reset"} <= set(first)
    assert set(first) & {500, 502, 503, 504}


# ---------------------------------------------------------------------------------------------- counters


def test_counters_stats_and_runtime_config(fake: FakeFal, api: httpx.Client) -> None:
    a = submit(api, image_body())
    submit(api, image_body())  # the same body again: a duplicate
    submit(api, image_body(seed=2))
    for _ in range(3):
        status(api, a)
    stats = api.get("/_fake/stats").json()
    assert stats["posts"] == {f"/{FLUX}": 3}
    assert stats["tasks_created"] == {FLUX: 3}
    assert stats["submissions"] == {f"{FLUX}|a fox|1": 2, f"{FLUX}|a fox|2": 1}
    assert stats["duplicate_submissions"] == fake.duplicate_submissions == 1
    assert stats["polls"][a["request_id"]] == 3 and 0 < stats["min_poll_interval_s"] < 1
    changed = api.post("/_fake/config", json={"concurrency": 7, "fail_next": {"GET /fal-ai/": [503]}})
    assert changed.status_code == 200 and changed.json()["concurrency"] == 7
    assert api.get(a["status_url"]).status_code == 503
    assert api.post("/_fake/config", json={"no_such_knob": 1}).status_code == 400
    assert api.post("/_fake/reset").status_code == 204
    assert fake.posts == {} and fake.duplicate_submissions == 0
    fake.reset(api_key=KEY, credits=50)
    assert api.get(a["status_url"]).status_code == 404  # a reset forgets every request
    assert fake.credit_balance == 50


# ------------------------------------------------------------------------------------------------ process


def test_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.fake_fal",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--image-latency",
            "0.05",
            "--concurrency",
            "3",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Key {KEY}"}, timeout=10) as api:
            assert wait(api, submit(api, image_body()), timeout=3)["status"] == "COMPLETED"
            assert api.get("/_fake/stats").json()["posts"] == {f"/{FLUX}": 1}
    finally:
        proc.terminate()
        # uvicorn re-raises the signal after a graceful shutdown
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
