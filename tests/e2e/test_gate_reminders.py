"""Reminders and the escalation of a gate nobody answers, on a real Airflow, counted by a local HTTP receiver
that Apprise posts to (``json://``): each arrives exactly once although the triggerer is restarted between the
first reminder and the rest, the escalation arrives before the timeout rejects, and the "gate opened"
notification carries the review page's link."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from tests.e2e.conftest import DAG_ID, manifest_of, six_segment_job
from video_pipeline.storage import Storage
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
NOTIFY, ESCALATE = "video_pipeline_notify", "e2e_escalation"
GATE_TIMEOUT_S = 60


class Receiver:
    """Every notification Apprise posts, with the path it was posted to and when it arrived."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append({**body, "path": self.path, "at": datetime.now(UTC)})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]

    def about(self, job_id: str) -> list[dict[str, Any]]:
        return [r for r in list(self.received) if job_id in r.get("title", "") + r.get("message", "")]


@pytest.fixture
def receiver(airflow: LocalAirflow) -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    for conn_id, path in ((NOTIFY, "notify"), (ESCALATE, "escalate")):
        body = {
            "connection_id": conn_id,
            "conn_type": "apprise",
            "extra": json.dumps({"config": {"path": f"json://127.0.0.1:{receiver.port}/{path}"}}),
        }
        airflow.api("POST", "/api/v2/connections", json=body).raise_for_status()
    try:
        yield receiver
    finally:
        for conn_id in (NOTIFY, ESCALATE):
            airflow.api("DELETE", f"/api/v2/connections/{conn_id}")
        receiver.server.shutdown()


def test_each_reminder_and_the_escalation_arrive_once_across_a_triggerer_restart(
    airflow: LocalAirflow, local_storage: Storage, receiver: Receiver
) -> None:
    job_id = "e2e-reminders"
    spec = six_segment_job(
        job_id,
        approval="images",
        gate_timeout=GATE_TIMEOUT_S,
        reminders=[0.3, 0.6],
        escalate_to=ESCALATE,
    )
    spec["segments"] = spec["segments"][:2]
    run_id = airflow.trigger(DAG_ID, spec)
    airflow.wait_for_task_state(DAG_ID, run_id, "images_gate", {"deferred"}, timeout=240)

    def titled(word: str) -> list[dict[str, Any]]:
        return [r for r in receiver.about(job_id) if r["title"].startswith(word)]

    airflow.wait_until(lambda: titled("Reminder"), 90, "the first reminder", interval=0.5)
    airflow.stop_process("triggerer")  # a restart: the trigger runs again from the top
    airflow.start_process("triggerer")
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=240) == "success"  # the gate rejected at its timeout
    time.sleep(10)  # anything sent twice would arrive by now (the triggerer looks every 2 s)

    manifest = manifest_of(local_storage, job_id)
    (decision,) = [d for d in manifest.decisions if d.stage == "images"]
    assert (decision.decision, decision.via) == ("reject", "timeout")
    reminders, escalations = titled("Reminder"), titled("Escalation")
    assert [r["path"] for r in reminders] == ["/notify", "/notify"], reminders
    assert [r["path"] for r in escalations] == ["/escalate"], escalations
    assert "waited 30 %" in reminders[0]["message"] and "waited 60 %" in reminders[1]["message"]
    assert escalations[0]["at"] < decision.at, (escalations[0]["at"], decision.at)
    opened = [r for r in receiver.about(job_id) if r["title"].startswith("Review images")]
    assert len(opened) == 1 and "/tasks/images_gate/plugin/video-review" in opened[0]["message"], opened
    review_link = f"/dags/{DAG_ID}/runs/"
    assert all(review_link in r["message"] for r in [*reminders, *escalations])
