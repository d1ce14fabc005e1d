"""The fake Runway behaves like the real API: lifecycle, concurrency, expiry, validation, faults, counters.

These tests speak raw HTTP (httpx), not the project's client, so the fake is checked on its own terms.
"""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from video_pipeline_dev.fake_runway import API_VERSION, NOT_ENOUGH_CREDITS, FakeRunway

KEY = "fake-test-key"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeRunway]:
    with FakeRunway(api_key=KEY) as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeRunway) -> FakeRunway:
    fake_server.reset(api_key=KEY, image_latency=0.3, video_latency=0.4, retry_after=0.2)
    return fake_server


@pytest.fixture
def api(fake: FakeRunway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5) as client:
        yield client


def image_body(prompt: str = "a fox", **extra: Any) -> dict[str, Any]:
    return {"model": "gen4_image", "promptText": prompt, "ratio": "1280:720", "seed": 1, **extra}


def video_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gen4_turbo",
        "promptImage": "https://example.com/a.png",
        "ratio": "1280:720",
        "duration": 5,
        "promptText": "it moves",
        **extra,
    }


def submit(api: httpx.Client, body: dict[str, Any], path: str = "/v1/text_to_image") -> str:
    response = api.post(path, json=body)
    assert response.status_code == 200, response.text
    task_id = response.json()["id"]
    assert isinstance(task_id, str)
    return task_id


def poll(api: httpx.Client, task_id: str) -> dict[str, Any]:
    response = api.get(f"/v1/tasks/{task_id}")
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, dict)
    return data


def wait(api: httpx.Client, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (data := poll(api, task_id))["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED"):
        assert time.monotonic() < deadline, data
        time.sleep(0.05)
    return data


# --------------------------------------------------------------------------------------------- lifecycle


def test_concurrency_limit_throttles_the_rest(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(concurrency={"gen4_image": 2})
    ids = [submit(api, image_body(f"fox {i}")) for i in range(5)]
    seen: set[str] = set()
    started_order: list[str] = []
    deadline = time.monotonic() + 5
    while True:
        # One atomic snapshot of every task (single requests are at different instants, and a slot can
        # change hands between two of them) …
        snapshot = api.get("/_fake/stats").json()["tasks_by_status"]
        assert snapshot["PENDING"] + snapshot["RUNNING"] <= 2, snapshot
        # … and what a client polling each task sees.
        statuses = {i: poll(api, i)["status"] for i in ids}
        seen |= set(statuses.values())
        busy = [i for i, s in statuses.items() if s in ("PENDING", "RUNNING")]
        started_order += [i for i in busy if i not in started_order]
        if all(s == "SUCCEEDED" for s in statuses.values()):
            break
        assert time.monotonic() < deadline
        time.sleep(0.03)
    assert {"THROTTLED", "RUNNING", "SUCCEEDED"} <= seen
    assert fake.max_running == {"gen4_image": 2}
    assert started_order == ids  # FIFO
    assert fake.tasks_by_status["SUCCEEDED"] == 5


def test_slots_are_per_model(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(concurrency=1)
    first = submit(api, image_body("a"))
    second = submit(api, image_body("b"))
    video = submit(api, video_body(), "/v1/image_to_video")
    assert poll(api, first)["status"] == "PENDING"
    assert poll(api, second)["status"] == "THROTTLED"
    assert poll(api, video)["status"] == "PENDING"


def test_running_has_progress_and_success_has_output(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(image_latency=0.6)
    task_id = submit(api, image_body())
    time.sleep(0.3)
    running = poll(api, task_id)
    assert running["status"] == "RUNNING"
    assert 0 < running["progress"] < 1
    done = wait(api, task_id)
    assert set(done) >= {"id", "status", "createdAt", "output"}
    (url,) = done["output"]
    image = httpx.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_video_output_is_a_real_mp4(fake: FakeRunway, api: httpx.Client) -> None:
    done = wait(api, submit(api, video_body(duration=2), "/v1/image_to_video"))
    video = httpx.get(done["output"][0])
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


def test_video_bytes_override() -> None:
    with FakeRunway(api_key=KEY, video_latency=0.05, video_bytes=b"not really an mp4") as fake:
        headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
        with httpx.Client(base_url=fake.base_url, headers=headers) as api:
            done = wait(api, submit(api, video_body(), "/v1/image_to_video"))
            assert httpx.get(done["output"][0]).content == b"not really an mp4"


def test_outputs_expire_and_refuse_auth_headers(fake: FakeRunway, api: httpx.Client) -> None:
    url = wait(api, submit(api, image_body()))["output"][0]
    assert httpx.get(url, headers={"Authorization": f"Bearer {KEY}"}).status_code == 400  # like S3
    assert httpx.get(url.split("?")[0]).status_code == 403  # unsigned
    assert httpx.get(url).status_code == 200
    fake.configure(output_ttl=0.2)
    time.sleep(0.25)
    expired = httpx.get(url)
    assert expired.status_code == 403
    assert "expired" in expired.text
    assert fake.stats()["expired_downloads"] == 1


def test_delete_cancels_and_frees_the_slot(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(concurrency=1, image_latency=2.0)
    first = submit(api, image_body("a"))
    second = submit(api, image_body("b"))
    assert poll(api, second)["status"] == "THROTTLED"
    assert api.delete(f"/v1/tasks/{first}").status_code == 204
    assert api.get(f"/v1/tasks/{first}").status_code == 404
    assert api.delete(f"/v1/tasks/{first}").status_code == 404
    assert poll(api, second)["status"] == "PENDING"
    fake.cancel_externally(second)
    assert poll(api, second)["status"] == "CANCELLED"
    assert fake.deletes == 2
    assert fake.tasks_by_status["DELETED"] == 1
    assert fake.tasks_by_status["CANCELLED"] == 1


def test_injected_throttling_holds_a_task(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(rate_throttled=1.0, throttle_s=0.3)
    task_id = submit(api, image_body())
    assert poll(api, task_id)["status"] == "THROTTLED"
    time.sleep(0.35)
    assert poll(api, task_id)["status"] in ("PENDING", "RUNNING")
    assert fake.faults["throttled"] == 1


# ---------------------------------------------------------------------------------------------- markers


def test_fail_marker_fails_every_time(api: httpx.Client) -> None:
    for _ in range(2):
        done = wait(api, submit(api, image_body("bad [fail:SAFETY.INPUT.TEXT]")))
        assert done["status"] == "FAILED"
        assert done["failureCode"] == "SAFETY.INPUT.TEXT"
        assert done["failure"]


def test_fail_once_and_fail_n_markers(api: httpx.Client) -> None:
    once = "glitch [fail-once:INTERNAL.BAD_OUTPUT.CODE01]"
    assert wait(api, submit(api, image_body(once, seed=1)))["status"] == "FAILED"
    assert wait(api, submit(api, image_body(once, seed=2)))["status"] == "SUCCEEDED"
    twice = "flaky [fail-2:THIRD_PARTY.UNAVAILABLE]"
    results = [wait(api, submit(api, image_body(twice, seed=s)))["status"] for s in range(3)]
    assert results == ["FAILED", "FAILED", "SUCCEEDED"]


def test_fail_without_code_and_latency_marker(api: httpx.Client) -> None:
    done = wait(api, submit(api, image_body("odd [fail:] [latency:0.05]")))
    assert done["status"] == "FAILED"
    assert "failureCode" not in done


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/image_to_video", video_body(model="gen3a_turbo"), "model"),
        ("/v1/image_to_video", video_body(model="gen5"), "model"),
        ("/v1/image_to_video", video_body(ratio="1920:1080"), "ratio"),
        ("/v1/image_to_video", video_body(duration=1), "duration"),
        ("/v1/image_to_video", video_body(duration=11), "duration"),
        ("/v1/image_to_video", video_body(promptImage="http://example.com/a.png"), "promptImage"),
        ("/v1/image_to_video", video_body(promptImage="runway://uploads/unknown"), "promptImage"),
        ("/v1/image_to_video", video_body(model="gen4.5", promptText=None), "promptText"),
        ("/v1/image_to_video", video_body(seed=-1), "seed"),
        ("/v1/text_to_image", image_body("x" * 1001), "promptText"),
        ("/v1/text_to_image", image_body(ratio="1280:768"), "ratio"),
        ("/v1/text_to_image", image_body(model="gen4_image_turbo"), "referenceImages"),
        ("/v1/text_to_image", {"model": "gen4_image", "ratio": "1280:720"}, "promptText"),
    ],
)
def test_validation_errors(
    api: httpx.Client, fake: FakeRunway, path: str, body: dict[str, Any], field: str
) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    response = api.post(path, json=body)
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "Validation of body failed"
    assert any(issue["path"][:1] == [field] for issue in data["issues"]), data
    assert fake.credits_spent == 0


def test_unknown_keys_and_big_data_uris_are_refused(api: httpx.Client) -> None:
    response = api.post("/v1/image_to_video", json=video_body(prompt="typo"))
    assert response.status_code == 400
    assert "Unrecognized key" in response.text
    huge = "data:image/png;base64," + base64.b64encode(b"\0" * 3_800_000).decode()
    response = api.post("/v1/image_to_video", json=video_body(promptImage=huge))
    assert response.status_code == 400
    assert "maximum size" in response.text
    small = "data:image/png;base64," + base64.b64encode(b"\0" * 1000).decode()
    assert api.post("/v1/image_to_video", json=video_body(promptImage=small)).status_code == 200


def test_auth_and_version_headers(fake: FakeRunway) -> None:
    with httpx.Client(base_url=fake.base_url) as raw:
        assert raw.get("/v1/organization").status_code == 401
        wrong = raw.get(
            "/v1/organization", headers={"Authorization": "Bearer nope", "X-Runway-Version": API_VERSION}
        )
        assert wrong.status_code == 401
        no_version = raw.get("/v1/organization", headers={"Authorization": f"Bearer {KEY}"})
        assert no_version.status_code == 400
        assert "X-Runway-Version" in no_version.json()["error"]
        old = raw.get(
            "/v1/organization", headers={"Authorization": f"Bearer {KEY}", "X-Runway-Version": "2023-01-01"}
        )
        assert old.status_code == 400
    assert fake.stats()["rejections"] == {"401": 2, "400": 2}


def test_upload_flow(fake: FakeRunway, api: httpx.Client) -> None:
    created = api.post("/v1/uploads", json={"filename": "frame.png", "type": "ephemeral"}).json()
    uri, url, fields = created["runwayUri"], created["uploadUrl"], created["fields"]
    assert uri.startswith("runway://")
    assert (
        api.post("/v1/image_to_video", json=video_body(promptImage=uri)).status_code == 400
    )  # not uploaded yet
    files = {"file": ("frame.png", b"\x89PNG fake", "image/png")}
    assert httpx.post(url, data={**fields, "policy": "forged"}, files=files).status_code == 403
    assert httpx.post(url, data=fields, files=files).status_code == 204
    assert api.post("/v1/image_to_video", json=video_body(promptImage=uri)).status_code == 200
    assert fake.stats()["uploads_completed"] == 1


# -------------------------------------------------------------------------------------- credits, counters


def test_credit_accounting(api: httpx.Client, fake: FakeRunway) -> None:
    fake.configure(credit_balance=13)
    submit(api, image_body(ratio="1920:1080"))  # 8 credits (1080p), 5 left
    refused = api.post("/v1/text_to_image", json=image_body(ratio="1920:1080", seed=2))
    assert refused.status_code == 400
    assert refused.json() == {"error": NOT_ENOUGH_CREDITS}
    assert fake.credit_balance == 5  # a refusal costs nothing
    submit(api, image_body(ratio="1280:720", seed=3))  # 5 credits (720p)
    assert fake.credit_balance == 0
    assert fake.credits_spent == 13


def test_credit_balance_is_exact(api: httpx.Client, fake: FakeRunway) -> None:
    fake.configure(credit_balance=40)
    submit(api, video_body(duration=5), "/v1/image_to_video")  # 25
    submit(api, image_body(ratio="720:1280"))  # 5
    assert api.post("/v1/image_to_video", json=video_body(duration=2)).status_code == 200  # 10
    assert api.post("/v1/text_to_image", json=image_body()).status_code == 400  # 5 > 0
    assert fake.credit_balance == 0
    assert fake.credits_spent == 40
    assert api.get("/v1/organization").json()["creditBalance"] == 0


def test_counters_and_stats_endpoint(fake: FakeRunway, api: httpx.Client) -> None:
    a = submit(api, image_body())
    submit(api, image_body())  # the exact same body again: a duplicate submission
    submit(api, image_body(seed=2))  # a different seed is a different body
    for _ in range(3):
        poll(api, a)
    api.delete(f"/v1/tasks/{a}")
    stats = api.get("/_fake/stats").json()
    assert stats == fake.stats() | {"tasks_by_status": stats["tasks_by_status"]}
    assert fake.posts["/v1/text_to_image"] == stats["posts"]["/v1/text_to_image"] == 3
    assert fake.duplicate_submissions == stats["duplicate_submissions"] == 1
    assert fake.polls[a] == stats["polls"][a] == 3
    assert 0 < stats["min_poll_interval_s"] < 1  # for "never poll more often than every N s" checks
    assert fake.deletes == stats["deletes"] == 1
    assert sum(stats["tasks_by_status"].values()) == 3
    fake.reset_counters()
    assert fake.posts == {}
    assert fake.deletes == 0


def test_reset_forgets_everything(fake: FakeRunway, api: httpx.Client) -> None:
    task_id = submit(api, image_body())
    fake.configure(concurrency=9)
    fake.fail_next("GET", "/v1/organization", 503)
    fake.reset(api_key=KEY, credits=50)
    assert api.get(f"/v1/tasks/{task_id}").status_code == 404
    org = api.get("/v1/organization").json()
    assert org["creditBalance"] == 50
    assert org["tier"]["models"]["gen4_image"]["maxConcurrentGenerations"] == 2
    assert fake.stats()["requests"] == 2


def test_runtime_config_endpoint(fake: FakeRunway, api: httpx.Client) -> None:
    changed = api.post(
        "/_fake/config",
        json={
            "image_latency": 0.05,
            "concurrency": {"gen4_image": 7},
            "fail_next": {"GET /v1/organization": [503]},
        },
    )
    assert changed.status_code == 200
    assert changed.json()["image_latency"] == 0.05
    assert api.get("/v1/organization").status_code == 503
    org = api.get("/v1/organization").json()
    assert org["tier"]["models"]["gen4_image"]["maxConcurrentGenerations"] == 7
    assert wait(api, submit(api, image_body()), timeout=1)["status"] == "SUCCEEDED"
    assert api.post("/_fake/config", json={"no_such_knob": 1}).status_code == 400


# ------------------------------------------------------------------------------------------------ faults


def test_scripted_faults(fake: FakeRunway, api: httpx.Client) -> None:
    fake.fail_next("GET", "/v1/organization", 429, 502, "reset")
    limited = api.get("/v1/organization")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "0.2"
    assert api.get("/v1/organization").status_code == 502
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.get("/v1/organization")
    assert api.get("/v1/organization").status_code == 200
    assert fake.faults == {"429": 1, "502": 1, "reset": 1}


def test_reset_after_create_bills_the_task(fake: FakeRunway, api: httpx.Client) -> None:
    fake.fail_next("POST", "/v1/text_to_image", "reset")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/v1/text_to_image", json=image_body())
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}
    assert fake.credits_spent == 5


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_create_then_fail_bills_the_task_then_answers_an_error(
    fake: FakeRunway, api: httpx.Client, status: int
) -> None:
    fake.configure(retry_after_on_503=True)
    fake.fail_next("POST", "/v1/text_to_image", f"create-then-{status}")
    response = api.post("/v1/text_to_image", json=image_body())
    assert response.status_code == status
    assert "retry-after" not in response.headers  # a gateway's failure, not the server's "come back later"
    assert fake.stats()["tasks_created"] == {"gen4_image": 1}
    assert fake.credits_spent == 5
    assert fake.faults == {f"create-then-{status}": 1}
    assert api.post("/v1/text_to_image", json=image_body()).status_code == 200  # the script is used up
    assert fake.duplicate_submissions == 1  # the retry a client must not make


def test_create_then_reset_and_refusals(fake: FakeRunway, api: httpx.Client) -> None:
    fake.fail_next("POST", "/v1/image_to_video", "create-then-reset", "create-then-500")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post("/v1/image_to_video", json=video_body())
    assert fake.stats()["tasks_created"] == {"gen4_turbo": 1}
    refused = api.post("/v1/image_to_video", json=video_body(duration=11))
    assert refused.status_code == 400  # nothing was created, so the refusal stands
    assert fake.stats()["tasks_created"] == {"gen4_turbo": 1}
    with pytest.raises(ValueError, match="create-then"):
        fake.fail_next("POST", "/v1/image_to_video", "create-then-418")


def test_random_create_then_fail_and_create_5xx_statuses(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(rate_create_then_fail=1.0)
    outcomes: set[int | str] = set()
    for seed in range(12):
        try:
            outcomes.add(api.post("/v1/text_to_image", json=image_body(seed=seed)).status_code)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            outcomes.add("reset")
    assert outcomes <= {500, 502, 504, "reset"} and len(outcomes) > 1
    assert fake.stats()["tasks_created"] == {"gen4_image": 12}
    assert api.get("/v1/organization").status_code == 200  # only creating POSTs
    fake.reset(api_key=KEY, rate_5xx=1.0, create_5xx_statuses=(503,), retry_after_on_503=True, retry_after=2)
    for seed in range(5):
        shed = api.post("/v1/text_to_image", json=image_body(seed=seed))
        assert shed.status_code == 503 and shed.headers["retry-after"] == "2"
    reads = {api.get("/v1/organization").status_code for _ in range(20)}
    assert reads > {503}  # reads still draw from every 5xx
    assert fake.stats()["tasks_created"] == {}


def test_retry_after_can_be_any_string(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(retry_after="nan")
    fake.fail_next("GET", "/v1/organization", 429, 503)
    assert api.get("/v1/organization").headers["retry-after"] == "nan"
    assert "retry-after" not in api.get("/v1/organization").headers  # 503 without retry_after_on_503


def test_create_answer_delay(fake: FakeRunway, api: httpx.Client) -> None:
    fake.configure(create_answer_delay=0.3)
    started = time.monotonic()
    submit(api, image_body())
    assert time.monotonic() - started >= 0.3
    with pytest.raises(httpx.ReadTimeout):
        api.post("/v1/text_to_image", json=image_body(seed=2), timeout=httpx.Timeout(5, read=0.05))
    assert fake.stats()["tasks_created"] == {"gen4_image": 2}  # created before the answer was late


# ------------------------------------------------------------------------------------- broken outputs


def test_broken_output_bodies(fake: FakeRunway, api: httpx.Client) -> None:
    url = wait(api, submit(api, image_body()))["output"][0]
    good = httpx.get(url).content
    fake.configure(output_body="html")
    html = httpx.get(url)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert html.content.lower().startswith(b"<!doctype html")
    fake.configure(output_body="truncated")
    short = httpx.get(url)
    assert short.content == good[: len(good) // 2]
    assert short.headers["content-length"] == str(len(good) // 2)
    fake.configure(output_body="oversized", oversize_bytes=300_000)
    big = httpx.get(url)
    assert big.headers["content-length"] == "300000" and big.content.startswith(good)
    fake.configure(output_body="oversized-chunked")
    with httpx.stream("GET", url) as chunked:
        assert "content-length" not in chunked.headers
        assert len(chunked.read()) == 300_000
    assert fake.faults == {
        "output-html": 1,
        "output-truncated": 1,
        "output-oversized": 1,
        "output-oversized-chunked": 1,
    }
    with pytest.raises(ValueError, match="output_body"):
        fake.configure(output_body="gzip-bomb")


def test_output_redirects(fake: FakeRunway, api: httpx.Client) -> None:
    url = wait(api, submit(api, image_body()))["output"][0]
    fake.configure(output_redirect="same-host")
    first = httpx.get(url)
    assert first.status_code == 302
    location = first.headers["location"]
    assert location.startswith("/outputs/") and location.endswith("&hop=1")
    followed = httpx.get(url, follow_redirects=True)
    assert followed.status_code == 200 and followed.content.startswith(b"\x89PNG")
    fake.configure(output_redirect="downgrade")
    assert httpx.get(url).headers["location"] == url.replace("https://", "http://") + "&hop=1"
    fake.configure(output_redirect="http://169.254.169.254/latest/meta-data/")
    assert httpx.get(url).headers["location"] == "http://169.254.169.254/latest/meta-data/"
    fake.configure(output_redirect="loop")
    with pytest.raises(httpx.TooManyRedirects):
        httpx.get(url, follow_redirects=True)


def test_tls_mode_serves_https() -> None:
    with FakeRunway(api_key=KEY, tls=True, image_latency=0.05) as fake:
        assert fake.base_url.startswith("https://127.0.0.1:")
        headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
        with pytest.raises(httpx.ConnectError):  # a self-signed certificate nobody trusts by default
            httpx.get(f"{fake.base_url}/v1/organization", headers=headers)
        with httpx.Client(base_url=fake.base_url, headers=headers, verify=fake.ssl_context()) as api:
            url = wait(api, submit(api, image_body()))["output"][0]
            assert url.startswith("https://")
            fake.configure(output_redirect="downgrade")
            image = httpx.get(url, verify=fake.ssl_context())
        assert image.status_code == 302
        assert image.headers["location"] == "http://" + url.removeprefix("https://") + "&hop=1"


def _fault_sequence(seed: int) -> list[int | str]:
    with FakeRunway(api_key=KEY, rate_429=0.3, rate_5xx=0.2, rate_reset=0.1, seed=seed) as fake:
        headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
        out: list[int | str] = []
        with httpx.Client(base_url=fake.base_url, headers=headers) as api:
            for _ in range(30):
                try:
                    out.append(api.get("/v1/organization").status_code)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    out.append("reset")
        return out


def test_random_faults_are_seeded() -> None:
    first, second, other = _fault_sequence(1), _fault_sequence(1), _fault_sequence(2)
    assert first == second != other
    assert {429, 200, "reset"} <= set(first)
    assert set(first) & {500, 502, 503, 504}


# ------------------------------------------------------------------------------------------------ process


def test_runs_as_a_process() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "video_pipeline_dev.fake_runway",
            "--port",
            "0",
            "--api-key",
            KEY,
            "--image-latency",
            "0.05",
            "--concurrency",
            "gen4_image=3,gen4_turbo=1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:")
        headers = {"Authorization": f"Bearer {KEY}", "X-Runway-Version": API_VERSION}
        with httpx.Client(base_url=base_url, headers=headers, timeout=5) as api:
            org = api.get("/v1/organization").json()
            assert org["tier"]["models"]["gen4_image"]["maxConcurrentGenerations"] == 3
            assert org["tier"]["models"]["gen4_turbo"]["maxConcurrentGenerations"] == 1
            assert wait(api, submit(api, image_body()), timeout=2)["status"] == "SUCCEEDED"
            assert api.get("/_fake/stats").json()["posts"] == {"/v1/text_to_image": 1}
    finally:
        proc.terminate()
        # uvicorn re-raises the signal after a graceful shutdown
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
