"""The review page of a gate, served by the api-server next to the media (``media_route.app``) and shown by the
Airflow UI as a tab of every task instance (``external_views`` in ``plugins/video_pipeline_plugin.py``).

- Only to callers who may read the DAG of the page (Airflow's ``get_user``: 401 anonymous; the auth manager's
  DAG check: 403). Its media come from the preview route, which checks the same for the pipeline's DAG.
- The page reads the task instance, its run's conf (the job id) and its HITL request from the metadata
  database, and the segments from the job's manifest; it answers nothing itself: the reviewer's browser
  PATCHes Airflow's own ``hitlDetails`` endpoint (``static/review.js``), as the logged-in user.
- A task instance that is not a gate gets a short "not a review gate" page (the tab is on every one).
- Strict Content-Security-Policy: the page's script and style sheet come from this app, nothing inline.
- The page holds the first ``PAGE_SIZE`` segments; its script fetches the others from ``…/segments?start=``
  (the same checks, the same cards), so a 1000-segment gate's page is as quick to show as a 50-segment one's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from video_pipeline.approval import gate_stage
from video_pipeline.contact_sheets import sheet_pages
from video_pipeline.costs import stage_estimates
from video_pipeline.manifest import decisions_for, load_manifest
from video_pipeline.models import JOB_ID_PATTERN, Stage, VideoSegment
from video_pipeline.review_page import (
    PAGE_SIZE,
    Answer,
    Assets,
    ReviewView,
    content_security_policy,
    origin_of,
    render_not_a_gate,
    render_review_page,
    render_segments,
)
from video_pipeline.storage import LocalStorage, Storage
from video_pipeline.submissions import credits_spent, ledger
from video_pipeline_airflow import compat
from video_pipeline_airflow.compat import BaseUser, get_user
from video_pipeline_airflow.media_route import check_dag_reader, media_storage
from video_pipeline_airflow.preview_links import URL_PREFIX, preview_url

router = APIRouter()
STATIC = Path(__file__).parent / "static"
ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}
GATE_OPERATOR = "ApprovalGateOperator"
WAITING_STATES = {"deferred", "awaiting_input"}


def review_reader(dag_id: str, user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The caller, if they may read the DAG the page is about (``dag_id`` from the path); else 403."""
    return check_dag_reader(dag_id, user)


@router.get("/static/{name}")
def static_asset(name: str) -> Response:
    """The page's script and style sheet (nothing else: a fixed list, no path from the request)."""
    if name not in ASSETS:
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(
        (STATIC / name).read_bytes(), media_type=ASSETS[name], headers={"Cache-Control": "no-cache"}
    )


@dataclass(frozen=True)
class Gate:
    """A gate task instance as the page needs it."""

    stage: Stage
    job_id: str
    waiting: bool
    answer: Answer | None


def map_index_of(raw: str) -> int:
    """The UI fills ``{MAP_INDEX}`` only on mapped task instances; elsewhere it stays literal: -1."""
    if re.fullmatch(r"-?\d{1,9}", raw):
        return int(raw)
    return -1


def find_gate(dag_id: str, run_id: str, task_id: str, map_index: int) -> Gate | str:
    """The gate at this task instance, or why there is none (a sentence for the reviewer)."""
    ti_model, run_model, hitl_model = compat.TaskInstance, compat.DagRun, compat.HITLDetail
    with compat.create_session() as session:
        ti = session.scalars(
            select(ti_model).where(
                ti_model.dag_id == dag_id,
                ti_model.run_id == run_id,
                ti_model.task_id == task_id,
                ti_model.map_index == map_index,
            )
        ).first()
        if ti is None:
            return f"There is no task instance {task_id} in the run {run_id}."
        stage = gate_stage(task_id)
        if ti.operator != GATE_OPERATOR or stage is None:
            return f"{task_id} is a {ti.operator or 'task'}, not an approval gate."
        run = session.scalars(
            select(run_model).where(run_model.dag_id == dag_id, run_model.run_id == run_id)
        ).first()
        job_id = (run.conf or {}).get("job_id") if run is not None else None
        if not isinstance(job_id, str) or not re.fullmatch(JOB_ID_PATTERN, job_id):
            return f"The run {run_id} names no valid job_id in its configuration."
        detail = session.get(hitl_model, ti.id)
        answer = None
        if detail is not None and detail.response_received:
            chosen = ", ".join(detail.chosen_options or [])
            answer = Answer(option=chosen, by=detail.responded_by_user_name, at=detail.responded_at)
        waiting = ti.state in WAITING_STATES and detail is not None and answer is None
        return Gate(stage=stage, job_id=job_id, waiting=waiting, answer=answer)


def mount_prefix(request: Request) -> str:
    """Where this app is mounted (``/video-previews``, after any base path of the api-server): links stay on
    the page's own origin and path, so the login cookie goes with them."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def page_assets(prefix: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> Assets:
    api = prefix.removesuffix(URL_PREFIX)
    dag, run, task = (quote(part, safe="") for part in (dag_id, run_id, task_id))
    return Assets(
        script_url=f"{prefix}/static/review.js",
        style_url=f"{prefix}/static/review.css",
        hitl_url=f"{api}/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/{map_index}/hitlDetails",
        segments_url=f"{prefix}/review/{dag}/{run}/{task}/{map_index}/segments",
    )


def _view(
    storage: Storage, gate: Gate, run_id: str, assets: Assets, prefix: str, *, whole: bool = True
) -> ReviewView | str:
    """What the page shows; ``whole=False``: only what segment cards need (more segments, fetched by the
    page's script), not the credits and sheets of the page's header."""
    manifest = load_manifest(storage, gate.job_id)
    if manifest is None:
        return f"The job {gate.job_id} has no manifest in {storage.url} yet."
    segments = manifest.segments
    notice = None
    if manifest.run_id != run_id:
        notice = f"The job's latest run is {manifest.run_id}: what is shown is that run's work."

    def url_for(key: str) -> str:
        if isinstance(storage, LocalStorage):  # the preview route, on this page's origin
            return f"{prefix}/files/{quote(key, safe='/')}"
        return preview_url(storage, key)

    view = ReviewView(
        job=manifest.job,
        stage=gate.stage,
        run_id=run_id,
        segments=segments,
        url_for=url_for,
        assets=assets,
        decisions=decisions_for(manifest, run_id, gate.stage),
        answer=gate.answer,
        waiting=gate.waiting and notice is None,
        notice=notice,
    )
    if not whole:
        return view
    return replace(
        view,
        stage_credits=sum(e.credits for e in ledger(storage, gate.job_id) if e.stage == gate.stage),
        job_credits=credits_spent(storage, gate.job_id),
        next_stage="clips" if gate.stage == "images" else "assembly",
        next_estimate=stage_estimates(manifest.job, segments)["clips"] if gate.stage == "images" else 0.0,
        sheets=sheet_pages(manifest.job, gate.stage, segments),
    )


def _page(html: str, media_origins: set[str]) -> HTMLResponse:
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": content_security_policy(media_origins),
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def _media_origins(view: ReviewView, segments: list[VideoSegment]) -> set[str]:
    """The origins of the media the page links (one for all objects of a storage; the segments it renders
    are enough to find it)."""
    keys = [k for s in segments for k in (*s.image_takes, *s.clip_takes, s.image_key, s.clip_key) if k]
    keys += [sheet.key for sheet in view.sheets]
    return {o for k in keys if (o := origin_of(view.url_for(k)))}


def _gate_view(
    request: Request,
    storage: Storage,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    *,
    whole: bool,
) -> tuple[ReviewView | str, Assets]:
    """The gate's view (or why the task instance is not a gate) and the page's assets, for both routes."""
    index = map_index_of(map_index)
    prefix = mount_prefix(request)
    assets = page_assets(prefix, dag_id, run_id, task_id, index)
    gate = find_gate(dag_id, run_id, task_id, index)
    view = gate if isinstance(gate, str) else _view(storage, gate, run_id, assets, prefix, whole=whole)
    return view, assets


@router.get("/review/{dag_id}/{run_id}/{task_id}/{map_index}", response_class=HTMLResponse)
def review_page(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    request: Request,
    user: Annotated[BaseUser, Depends(review_reader)],
    storage: Annotated[Storage, Depends(media_storage)],
) -> HTMLResponse:
    view, assets = _gate_view(request, storage, dag_id, run_id, task_id, map_index, whole=True)
    if isinstance(view, str):
        return _page(render_not_a_gate(view, assets), set())
    return _page(render_review_page(view), _media_origins(view, view.segments[:PAGE_SIZE]))


@router.get("/review/{dag_id}/{run_id}/{task_id}/{map_index}/segments", response_class=HTMLResponse)
def review_segments(
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: str,
    request: Request,
    user: Annotated[BaseUser, Depends(review_reader)],
    storage: Annotated[Storage, Depends(media_storage)],
    start: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> HTMLResponse:
    """More segment cards of the page (``render_segments``), for its script; the same checks as the page."""
    view, _ = _gate_view(request, storage, dag_id, run_id, task_id, map_index, whole=False)
    if isinstance(view, str):
        raise HTTPException(status_code=404, detail=view)
    return _page(render_segments(view, start), set())
