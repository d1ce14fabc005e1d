"""Gate benchmark: how fast the images gate of an N-segment job opens and shows, in real Chromium.

    .venv/bin/python -m bench.gate                     # N = 100, then N = 1000
    .venv/bin/python -m bench.gate --segments 100      # one N
    .venv/bin/python -m bench.gate --quick             # N = 10 smoke run (never writes RESULTS.md)

One Airflow (api-server, scheduler, dag-processor, triggerer; SQLite + LocalExecutor) with the product's
``dags/video_generation.py``, env ``VIDEO_PIPELINE_MAX_SEGMENTS`` = the largest N, local storage, everyone admin
(the demo's auth: the browser carries the bearer token as the UI's ``_token`` cookie). For each N:

1. Trigger ``video_generation``: provider ``storyboard`` (renders locally), ``approval: images``, no voice, N
   segments of 2 s at 1280:720, and wait for ``images_gate`` to defer (its request open).
2. Gate opening: from the gate task's start to ``gates_opened_at`` in the manifest (written after the contact
   sheets and the form's body are made, before the request is stored): what the reviewer waits for once the
   images are done. The HITL request as REST returns it (``GET …/hitlDetails``): bytes, and the body's size.
3. The form (the gate's Required Action tab in the Airflow UI) in Chromium: time from navigation until the
   body's first line (``N images ready for review``) is visible, in a fresh browser context (the UI's 7 MB
   bundle loaded too) and as the median of 3 reloads; bytes of HTML and JSON (documents, fetch/XHR) received.
4. The review page (``/video-previews/review/…``, what the UI's Review tab frames) in Chromium: time until
   segment #1 is visible, fresh and median of 3 reloads; the page's HTML bytes and segment cards in it; then
   scrolling to the end until all N cards are in the page (fetched 50 at a time): time and bytes fetched.
5. Reject the gate (the Variable), so the run ends without making clips.

Times are wall clock on this machine with the Airflow processes idle but for the api-server (the gate is
deferred). Run it under ``flock /tmp/vp-e2e.lock`` like every test that starts Airflow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from playwright.sync_api import Browser, BrowserContext, Locator, Page, Response, sync_playwright

from bench._harness import (
    DAG_ID,
    PIPELINE_DAG,
    bench_airflow,
    bytecode_note,
    command_line,
    exit_on_sigterm,
    machine,
    md_table,
    query_metadata,
    stamp,
    wait_for_dag,
    wait_for_run,
    write_section,
)
from bench._harness import _db_time as db_time
from video_pipeline.approval import variable_key
from video_pipeline.models import MAX_SEGMENTS_ENV, Manifest
from video_pipeline.review_page import PAGE_SIZE
from video_pipeline.storage import LocalStorage
from video_pipeline_dev.browser import CHROMIUM, CHROMIUM_ARGS
from video_pipeline_dev.local import LocalAirflow

HEADING = "## Gate at N segments"
GATE = "images_gate"
TEXT_TYPES = {"document", "fetch", "xhr"}  # HTML and JSON; scripts, styles and images are not counted
RELOADS = 3
TIMEOUT_MS = 180_000


def job_spec(job_id: str, n: int) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "title": f"Gate bench {job_id}",
        "segments": [
            {"prompt": f"{job_id} segment {i}: a lantern over dark water", "duration_s": 2}
            for i in range(1, n + 1)
        ],
        "ratio": "1280:720",
        "provider": "storyboard",
        "seed": 5,
        "approval": "images",
        "voice": None,
    }


@dataclass
class Shown:
    """One page's first render: fresh context, then the median of the reloads, and the text bytes received."""

    fresh_s: float
    reload_s: float
    text_bytes: int


@dataclass
class SizeResult:
    n: int
    images_s: float  # trigger → gate task start
    open_s: float  # gate task start → request ready
    sheets: int
    hitl_bytes: int
    body_chars: int
    form: Shown
    page: Shown
    page_html_bytes: int
    page_cards: int
    scroll_all_s: float
    scroll_bytes: int


class TextBytes:
    """Bytes of the HTML and JSON responses a page received (bodies read once the page is ready)."""

    def __init__(self, page: Page) -> None:
        self.responses: list[Response] = []
        page.on("response", self._seen)

    def _seen(self, response: Response) -> None:
        if response.request.resource_type in TEXT_TYPES:
            self.responses.append(response)

    def total(self, where: Callable[[Response], bool] = lambda _: True) -> int:
        size = 0
        for response in self.responses:
            if where(response):
                try:
                    size += len(response.body())
                except Exception:  # a redirect has no body
                    continue
        return size


def first_render(context: BrowserContext, url: str, ready: Callable[[Page], Locator]) -> tuple[Shown, Page]:
    """Time until ``ready(page)`` is visible: on a new page of ``context``, then over reloads."""
    page = context.new_page()
    received = TextBytes(page)
    started = time.monotonic()
    page.goto(url, wait_until="commit")
    ready(page).wait_for(state="visible", timeout=TIMEOUT_MS)
    fresh = time.monotonic() - started
    text_bytes = received.total()
    reloads = []
    for _ in range(RELOADS):
        started = time.monotonic()
        page.reload(wait_until="commit")
        ready(page).wait_for(state="visible", timeout=TIMEOUT_MS)
        reloads.append(time.monotonic() - started)
    return Shown(fresh, statistics.median(reloads), text_bytes), page


def scroll_to_all(page: Page, n: int) -> tuple[float, int]:
    """Scroll to the end until the page holds all ``n`` segment cards: seconds, and bytes fetched meanwhile."""
    received = TextBytes(page)
    cards = page.locator("article.segment")
    started = time.monotonic()
    deadline = started + TIMEOUT_MS / 1000
    while cards.count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {cards.count()} of {n} segments after scrolling")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_timeout(50)
    return time.monotonic() - started, received.total(lambda r: "/segments?" in r.url)


def new_context(browser: Browser, airflow: LocalAirflow) -> BrowserContext:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_cookies([{"name": "_token", "value": airflow.token(), "url": airflow.base_url}])
    return context


def gate_started(airflow: LocalAirflow, run_id: str) -> Any:
    rows = query_metadata(
        airflow,
        "SELECT state, start_date FROM task_instance WHERE dag_id = :d AND run_id = :r AND task_id = :t",
        d=DAG_ID,
        r=run_id,
        t=GATE,
    )
    return rows[0] if rows else (None, None)


def run_size(airflow: LocalAirflow, storage: LocalStorage, browser: Browser, n: int) -> SizeResult:
    job_id = f"gate-{n}-{stamp()}"
    triggered = time.time()
    run_id = airflow.trigger(DAG_ID, job_spec(job_id, n))
    print(f"[gate] N = {n}: triggered {run_id}", flush=True)
    airflow.wait_until(lambda: gate_started(airflow, run_id)[0] == "deferred", 7200, "the gate", interval=2)
    started = db_time(gate_started(airflow, run_id)[1])
    assert started is not None
    manifest = Manifest.model_validate_json(storage.get_bytes(f"jobs/{job_id}/manifest.json"))
    opened = manifest.gates_opened_at["images"]
    sheets = len(list(storage.list(f"jobs/{job_id}/preview/")))
    print(f"[gate]   gate open after {(opened - started).total_seconds():.1f} s; {sheets} sheets", flush=True)
    hitl = airflow.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{GATE}/-1/hitlDetails")
    hitl.raise_for_status()

    form_url = f"{airflow.base_url}/dags/{DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{GATE}/required_actions"
    page_url = f"{airflow.base_url}/video-previews/review/{DAG_ID}/{quote(run_id, safe='')}/{GATE}/-1"
    context = new_context(browser, airflow)
    try:
        form, _ = first_render(
            context, form_url, lambda p: p.get_by_text(f"{n} images ready for review").first
        )
        page_context = new_context(browser, airflow)
        try:
            page, review = first_render(page_context, page_url, lambda p: p.locator("#segment-1"))
            html = review.content()
            cards = review.locator("article.segment").count()
            scroll_s, scroll_bytes = scroll_to_all(review, n)
        finally:
            page_context.close()
    finally:
        context.close()
    print(f"[gate]   form {form}, page {page}, all {n} cards after {scroll_s:.1f} s of scrolling", flush=True)
    airflow.set_variable(variable_key(job_id, "images"), "reject")
    wait_for_run(airflow, DAG_ID, run_id, timeout=600)
    return SizeResult(
        n=n,
        images_s=started.timestamp() - triggered,
        open_s=(opened - started).total_seconds(),
        sheets=sheets,
        hitl_bytes=len(hitl.content),
        body_chars=len(hitl.json()["body"] or ""),
        form=form,
        page=page,
        page_html_bytes=len(html.encode()),
        page_cards=cards,
        scroll_all_s=scroll_s,
        scroll_bytes=scroll_bytes,
    )


def kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB"


def report(results: list[SizeResult], header: str) -> str:
    opening = md_table(
        [
            "N",
            "trigger → gate starts",
            "gate opens (sheets + form)",
            "preview objects",
            "HITL request (REST)",
            "form body",
        ],
        [
            (
                r.n,
                f"{r.images_s:.0f} s",
                f"**{r.open_s:.1f} s**",
                r.sheets,
                kib(r.hitl_bytes),
                f"{r.body_chars} chars",
            )
            for r in results
        ],
    )
    shown = md_table(
        [
            "N",
            "form: first load / reload",
            "form: HTML+JSON received",
            "review page: first load / reload",
            "review page HTML (cards)",
            "scroll to all N cards",
            "fetched while scrolling",
        ],
        [
            (
                r.n,
                f"**{r.form.fresh_s:.2f} s** / {r.form.reload_s:.2f} s",
                kib(r.form.text_bytes),
                f"**{r.page.fresh_s:.2f} s** / {r.page.reload_s:.2f} s",
                f"{kib(r.page_html_bytes)} ({r.page_cards})",
                f"{r.scroll_all_s:.1f} s",
                kib(r.scroll_bytes),
            )
            for r in results
        ],
    )
    return "\n\n".join(
        [
            header,
            "Gate opening: from the gate task's start to its request being ready (manifest `gates_opened_at`); "
            "preview objects = the job's `preview/` folder (contact sheets, 100 segments each).",
            opening,
            "First render in Chromium (headless, 1280×1000): until the form's first line, and until review "
            f"page segment #1, is visible; first load = a new browser context, reload = median of {RELOADS}. "
            f"The review page holds {PAGE_SIZE} segments and fetches the rest {PAGE_SIZE} at a time.",
            shown,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--segments", default="100,1000", help="comma-separated N values (default 100,1000)")
    parser.add_argument("--quick", action="store_true", help="N = 10; never writes RESULTS.md")
    parser.add_argument("--parallelism", type=int, default=8, help="AIRFLOW__CORE__PARALLELISM")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--keep", action="store_true", help="keep the temporary Airflow home and data")
    args = parser.parse_args()
    exit_on_sigterm()
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: sh scripts/install-browser.sh installs it")
    sizes = [10] if args.quick else [int(x) for x in args.segments.split(",")]
    header = "\n".join(
        [
            f"Machine: {machine()}.",
            f"Command: `{command_line()}`.",
            bytecode_note(enabled=True),
            "Measured: the images gate of a storyboard job (`approval: images`, local storage) opening, and "
            "its form and review page first rendering in real Chromium.",
        ]
    )
    segment_cap = str(max(max(sizes), 500))
    os.environ[MAX_SEGMENTS_ENV] = segment_cap
    tmp = Path(tempfile.mkdtemp(prefix="vp-bench-gate-"))
    airflow = bench_airflow(
        tmp, dag_files=[PIPELINE_DAG], parallelism=args.parallelism, extra_env={MAX_SEGMENTS_ENV: segment_cap}
    )
    storage = LocalStorage(tmp / "data")
    results: list[SizeResult] = []
    with airflow, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        wait_for_dag(airflow, DAG_ID)
        for n in sizes:
            results.append(run_size(airflow, storage, browser, n))
        browser.close()
    text = report(results, header)
    print("\n" + text)
    if not (args.quick or args.no_write):
        write_section(HEADING, text)
        print(f"\nwrote the '{HEADING}' section of bench/RESULTS.md")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
