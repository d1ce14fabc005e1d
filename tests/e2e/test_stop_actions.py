"""Every way a person stops work reaches our stop handlers, and a triggerer restart does not (real Airflow).

One Airflow start, one probe run per stop action, all stopped at once (``tests/e2e/stop_probe``): in each run
``wait`` is deferred (its trigger waits forever), ``busy`` runs on a worker and ``later`` has not started. The
probe's handler, registered through ``VIDEO_PIPELINE_STOP_HANDLER_MODULES``, writes each stop it receives; the
probe's trigger and a second listener write what Airflow fired, so a failure shows what did happen.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stop_probe.record import LOG_ENV, read
from video_pipeline_airflow.stop import HANDLER_MODULES_ENV, StopReason
from video_pipeline_dev.cluster import PG, fresh_metadata_db, reachable
from video_pipeline_dev.local import LocalAirflow

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).resolve().parent / "stop_probe"
DAG = "stop_probe"
TIMEOUT_DAG = "stop_probe_timeout"
RUN_TIMEOUT_S = 50
#: How long after the last stop action every expected stop must have been reported.
REPORT_WITHIN_S = 60

R = StopReason
#: action -> the stops our mechanism promises for that run: (task_id or None for the run, reason).
EXPECTED: dict[str, set[tuple[str | None, StopReason]]] = {
    "mark_run_failed": {
        (None, R.RUN_MARKED_FAILED),
        ("wait", R.TASK_MARKED_FAILED),
        ("busy", R.TASK_MARKED_FAILED),
    },
    "mark_run_success": {
        (None, R.RUN_MARKED_SUCCESS),
        ("wait", R.TASK_MARKED_SUCCESS),
        ("busy", R.TASK_MARKED_SUCCESS),
    },
    # All three set failed: the scheduler then fails the run ("task_failure").
    "mark_tasks_failed": {
        ("later", R.TASK_MARKED_FAILED),
        ("wait", R.TASK_MARKED_FAILED),
        ("busy", R.TASK_MARKED_FAILED),
        (None, R.RUN_FAILED),
    },
    # `later` then runs and the run succeeds by itself: no run stop.
    "mark_tasks_success": {("wait", R.TASK_MARKED_SUCCESS), ("busy", R.TASK_MARKED_SUCCESS)},
    # A cleared task runs again and its new try defers to a new trigger, which resumes the provider task:
    # nothing to stop. The old trigger reports task_cleared only if it asks before the new try has deferred.
    "clear_tasks": set(),
    "clear_run": set(),
    # A running run cannot be deleted (409); its task instances can. With `wait` gone, `later` can never
    # run: the scheduler fails the run ("all_tasks_deadlocked").
    "delete_tasks": {("wait", R.TASK_DELETED), (None, R.RUN_FAILED)},
    "run_timeout": {(None, R.RUN_TIMED_OUT), ("wait", R.TASK_SKIPPED)},
    "finishes_by_itself": set(),
}
#: Stops that may also be reported (a race the mechanism does not promise to win either way).
MAY_ALSO: dict[str, set[tuple[str | None, StopReason]]] = {
    # The scheduler may be deciding the same run's state meanwhile: it then fails it again ("task_failure").
    "mark_run_failed": {(None, R.RUN_FAILED)},
    "clear_tasks": {("wait", R.TASK_CLEARED)},
    "clear_run": {("wait", R.TASK_CLEARED)},
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalAirflow, Path]]:
    """Airflow with our DAGs and plugin plus the probe DAG and the probe's facts listener."""
    root = tmp_path_factory.mktemp("stop-probe")
    dags, plugins = root / "dags", root / "plugins"
    dags.mkdir()
    plugins.mkdir()
    # The pipeline's DAG (LocalAirflow waits for it; it must load with our listener registered), not the
    # nightly one: its scheduled run would only add load.
    (dags / "video_generation.py").symlink_to(REPO / "dags" / "video_generation.py")
    (dags / "stop_probe.py").symlink_to(PROBE / "dags" / "stop_probe.py")
    (plugins / "video_pipeline_plugin.py").symlink_to(REPO / "plugins" / "video_pipeline_plugin.py")
    (plugins / "stop_probe_facts.py").symlink_to(PROBE / "facts_plugin.py")
    log = root / "events.jsonl"
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        # The probe's modules (tests.e2e.stop_probe.*) must import in every Airflow process.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        HANDLER_MODULES_ENV: "tests.e2e.stop_probe.handlers",
        LOG_ENV: str(log),
        "STOP_PROBE_TIMEOUT_S": str(RUN_TIMEOUT_S),
    }
    # Nine runs each hold a worker slot with `busy`, and each `wait` needs one to defer.
    try:
        with ExitStack() as stack:
            # PostgreSQL where the machine has it, as the session's Airflow: on SQLite, with nine runs
            # stopping at once beside another test worker's Airflow, the api-server answered a task PATCH
            # with 500 "Database error" (its audit-log insert gave up on the file lock) in 2 of 4 full runs.
            metadata = stack.enter_context(fresh_metadata_db("vp_stop_probe")) if reachable(PG) else None
            airflow = stack.enter_context(
                LocalAirflow(
                    home=root / "home",
                    storage_url=None,
                    parallelism=14,
                    extra_env=env,
                    sql_alchemy_conn=metadata,
                )
            )
            yield airflow, log
    finally:
        if keep := os.environ.get("STOP_PROBE_KEEP"):  # a directory: to study a run afterwards
            shutil.copytree(
                root, keep, ignore=shutil.ignore_patterns("*.db", "dags", "plugins"), dirs_exist_ok=True
            )


def ti_states(airflow: LocalAirflow, dag_id: str, run_id: str) -> dict[str, str | None]:
    response = rest(airflow, "GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    ok(response)
    return {ti["task_id"]: ti["state"] for ti in response.json()["task_instances"]}


def started(airflow: LocalAirflow, log: Path, dag_id: str, run_id: str) -> bool:
    """`wait` deferred with its trigger running, `busy` inside execute (so its SIGTERM handler is set)."""
    states = ti_states(airflow, dag_id, run_id)
    events = [e for e in read(log) if e.get("run_id") == run_id]
    return (
        states.get("wait") == "deferred"
        and states.get("busy") == "running"
        and any(e["kind"] == "trigger_run" for e in events)
        and any(e["kind"] == "busy_started" for e in events)
    )


def stops_of(log: Path, run_id: str) -> set[tuple[str | None, StopReason]]:
    return {
        (e["task_id"], StopReason(e["reason"]))
        for e in read(log)
        if e["kind"] == "stop" and e["run_id"] == run_id
    }


#: REST calls that took longer than SLOW_REST_S (printed: on SQLite a call can wait up to the 30-s busy timeout
#: for the write lock, which is LocalAirflow's client timeout too).
SLOW_REST_S = 5.0
slow_calls: list[str] = []


def rest(airflow: LocalAirflow, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    """A REST call that outwaits a SQLite lock (the probe is about what fires, not about REST latency)."""
    started = time.monotonic()
    response = httpx.request(
        method,
        f"{airflow.base_url}{path}",
        headers={"Authorization": f"Bearer {airflow.token()}"},
        json=body,
        timeout=120,
    )
    if (took := time.monotonic() - started) > SLOW_REST_S:
        slow_calls.append(f"{method} {path}: {took:.1f} s")
    return response


def trigger(airflow: LocalAirflow, dag_id: str, conf: dict[str, Any]) -> str:
    response = rest(airflow, "POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    ok(response)
    return str(response.json()["dag_run_id"])


def ok(response: httpx.Response) -> None:
    assert response.status_code < 300, f"{response.request.method} {response.request.url}: {response.text}"


def test_each_stop_action_reaches_the_handlers_and_a_triggerer_restart_does_not(
    probe: tuple[LocalAirflow, Path],
) -> None:
    airflow, log = probe
    errors = rest(airflow, "GET", "/api/v2/importErrors").json()
    assert errors["total_entries"] == 0, errors  # our DAGs load with the stop listener registered

    forever = {"wait_s": None, "busy_s": None}
    runs = {
        action: trigger(airflow, DAG, forever)
        for action in EXPECTED
        if action not in {"run_timeout", "finishes_by_itself"}
    }
    runs["finishes_by_itself"] = trigger(airflow, DAG, {"wait_s": 5, "busy_s": 5})
    stoppable = {a: r for a, r in runs.items() if a != "finishes_by_itself"}
    airflow.wait_until(
        lambda: all(started(airflow, log, DAG, run) for run in stoppable.values()),
        180,
        "every probe run to start",
    )

    # A triggerer restart cancels every trigger, but nobody stopped anything: no stop may be reported, and the
    # new triggerer must resume every trigger.
    restart = time.time()
    airflow.stop_process("triggerer")
    airflow.start_process("triggerer")

    def resumed() -> bool:
        again = {e["run_id"] for e in read(log) if e["kind"] == "trigger_run" and e["t"] > restart}
        return set(stoppable.values()) <= again

    airflow.wait_until(resumed, 120, "the new triggerer to resume every trigger")
    events = read(log)
    assert [e for e in events if e["kind"] == "stop"] == []
    # Every trigger saw a CancelledError, without the triggerer's user-action message, and no on_kill.
    cancelled = [e for e in events if e["kind"] == "trigger_cancelled" and e["t"] > restart]
    assert {e["run_id"] for e in cancelled} >= set(stoppable.values())
    assert all(e["user_action"] is False for e in cancelled), cancelled
    assert not [e for e in events if e["kind"] == "trigger_on_kill"]
    for run in stoppable.values():
        assert ti_states(airflow, DAG, run)["wait"] == "deferred"
    finished = f"/api/v2/dags/{DAG}/dagRuns/{runs['finishes_by_itself']}"
    airflow.wait_until(
        lambda: rest(airflow, "GET", finished).json()["state"] == "success", 120, "a run to finish"
    )

    # The timed-out run starts now, so that its timeout falls after the restart.
    runs["run_timeout"] = trigger(airflow, TIMEOUT_DAG, forever)
    timeout_due = time.time() + RUN_TIMEOUT_S
    airflow.wait_until(
        lambda: started(airflow, log, TIMEOUT_DAG, runs["run_timeout"]), 40, "the timed run to start"
    )

    base = f"/api/v2/dags/{DAG}/dagRuns"
    acted: dict[str, float] = {}

    def act(action: str, *calls: tuple[str, str, dict[str, Any] | None]) -> None:
        acted[action] = time.time()
        for method, path, body in calls:
            ok(rest(airflow, method, path, body))

    def set_ti(run: str, task: str, state: str) -> tuple[str, str, dict[str, Any]]:
        return "PATCH", f"{base}/{run}/taskInstances/{task}", {"new_state": state}

    refused = rest(airflow, "DELETE", f"{base}/{runs['mark_run_failed']}")
    assert refused.status_code == 409, refused.text  # so deleting a run is never how a person stops one
    act("mark_run_failed", ("PATCH", f"{base}/{runs['mark_run_failed']}", {"state": "failed"}))
    act("mark_run_success", ("PATCH", f"{base}/{runs['mark_run_success']}", {"state": "success"}))
    run = runs["mark_tasks_failed"]
    act(
        "mark_tasks_failed",
        set_ti(run, "later", "failed"),
        set_ti(run, "wait", "failed"),
        set_ti(run, "busy", "failed"),
    )
    run = runs["mark_tasks_success"]
    act("mark_tasks_success", set_ti(run, "wait", "success"), set_ti(run, "busy", "success"))
    clear = {
        "dry_run": False,
        "only_failed": False,
        "dag_run_id": runs["clear_tasks"],
        "task_ids": ["wait", "busy"],
    }
    act("clear_tasks", ("POST", f"/api/v2/dags/{DAG}/clearTaskInstances", clear))
    act("clear_run", ("POST", f"{base}/{runs['clear_run']}/clear", {"dry_run": False}))
    act(
        "delete_tasks",
        ("DELETE", f"{base}/{runs['delete_tasks']}/taskInstances/wait", None),
        ("DELETE", f"{base}/{runs['delete_tasks']}/taskInstances/busy", None),
    )

    def all_reported() -> bool:
        cleared_waits_again = {
            e["run_id"] for e in read(log) if e["kind"] == "trigger_run" and e["try_number"] == 2
        }
        return {runs["clear_tasks"], runs["clear_run"]} <= cleared_waits_again and all(
            EXPECTED[action] <= stops_of(log, run) for action, run in runs.items()
        )

    try:
        airflow.wait_until(all_reported, RUN_TIMEOUT_S + REPORT_WITHIN_S, "every expected stop", interval=0.5)
        time.sleep(3)  # late duplicates or strays would show up by now
    finally:
        print(timeline(read(log), runs, {**acted, "run_timeout": timeout_due}, restart))
        print("REST calls slower than", SLOW_REST_S, "s:", slow_calls or "none")
    for action, run in runs.items():
        got = stops_of(log, run)
        assert EXPECTED[action] <= got <= EXPECTED[action] | MAY_ALSO.get(action, set()), action
    events = read(log)
    for action in acted:
        reported = [e["t"] for e in events if e["kind"] == "stop" and e["run_id"] == runs[action]]
        assert all(t - acted[action] < REPORT_WITHIN_S for t in reported), action
    for action in ("clear_tasks", "clear_run"):  # the cleared task waits again, for the same provider task
        run = runs[action]
        again = [
            e for e in events if e["kind"] == "trigger_run" and e["run_id"] == run and e["try_number"] == 2
        ]
        assert again and ti_states(airflow, DAG, run)["wait"] == "deferred", action

    # Each stop reaches the handlers once per process that noticed it.
    seen: dict[tuple[Any, ...], int] = {}
    for e in events:
        if e["kind"] == "stop":
            key = (e["pid"], e["run_id"], e["task_id"], e["reason"])
            seen[key] = seen.get(key, 0) + 1
    assert max(seen.values()) == 1, seen
    # The run's conf (the job spec) travels with every stop the api-server or the scheduler reports; a
    # trigger passes what it knows instead.
    stops = [e for e in events if e["kind"] == "stop"]
    assert all(e["conf"] == forever or e["details"] == {"waiting_for": None} for e in stops), stops
    assert any(e["conf"] == forever and e["task_id"] == "wait" for e in stops)
    assert any(e["details"] == {"waiting_for": None} for e in stops)


def timeline(
    events: list[dict[str, Any]], runs: dict[str, str], acted: dict[str, float], restart: float
) -> str:
    """What fired for each action, in which process, how long after the REST call (for the facts note)."""
    lines = ["== triggerer restart"]
    first_action = min(acted.values())
    for e in sorted(events, key=lambda e: e["t"]):
        if restart - 1 <= e["t"] < first_action and e["kind"].startswith("trigger"):
            lines.append(f"  +{e['t'] - restart:6.2f}s  {e['kind']:<18} {e['run_id']} {e.get('args', '')}")
    for action, run in runs.items():
        lines.append(f"== {action} ({run})")
        start = acted.get(action)
        for e in sorted((e for e in events if e.get("run_id") == run), key=lambda e: e["t"]):
            if start is None or e["t"] < start - 1:
                continue
            detail = {
                k: v
                for k, v in e.items()
                if k not in {"t", "pid", "proc", "dag_id", "run_id", "map_index", "kind"}
            }
            lines.append(
                f"  +{e['t'] - start:6.2f}s  {e['kind']:<18} {e['proc'][:38]:<38} {json.dumps(detail)}"
            )
    return "\n".join(lines)
