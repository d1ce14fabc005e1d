"""The api-server route that serves preview images, clips and the finished video to users who may read them.

- Authentication is Airflow's own ``get_user`` (bearer token or the UI's ``_token`` cookie): anonymous → 401.
- Authorisation is the auth manager's DAG check: the caller must be allowed to read the ``video_generation``
  DAG, which produced every object served here (403 otherwise).
- Only media keys are served (``preview_links.media_type_for``): manifests, the inbox, the spend ledger, anything
  else → 404, so whoever can write storage cannot plant an HTML or SVG page on the Airflow origin. Every answer
  carries ``X-Content-Type-Options: nosniff`` and a media type from the allow-list.
- Keys go through the storage's key validation (``../`` or an over-long key → 400), local files are opened
  without following links, and byte ranges are honoured (video seeking).
- No ``/docs``, ``/redoc`` or ``/openapi.json``: this app is not a public API.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from typing import IO, Annotated

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from video_pipeline.storage import InvalidKey, LocalStorage, Storage, StorageError, check_key
from video_pipeline_airflow import compat
from video_pipeline_airflow.compat import BaseUser, DagDetails, get_auth_manager, get_user
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_airflow.preview_links import MEDIA_DAG_ID, media_type_for

log = logging.getLogger(__name__)
REDIRECT_TTL_S = 300
_CHUNK = 256 * 1024
NOSNIFF = ("X-Content-Type-Options", "nosniff")


class NoSniff:
    """Adds ``nosniff`` to every answer, including the 401/403/404 of dependencies and an unexpected 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_nosniff(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message)[NOSNIFF[0]] = NOSNIFF[1]
            await send(message)

        try:
            await self.app(scope, receive, send_with_nosniff)
        except Exception:
            if started:
                raise
            log.exception("Preview route failed on %s", scope.get("path"))
            answer = PlainTextResponse("Internal Server Error", 500, headers=dict([NOSNIFF]))
            await answer(scope, receive, send)


app = FastAPI(title="Video pipeline previews", docs_url=None, redoc_url=None, openapi_url=None)
app.add_middleware(NoSniff)


def _dag_details(dag_id: str) -> DagDetails:
    team = None
    if compat.conf.getboolean("core", "multi_team", fallback=False):
        team = compat.DagModel.get_team_name(dag_id)
    return DagDetails(id=dag_id, team_name=team)


def check_dag_reader(dag_id: str, user: BaseUser) -> BaseUser:
    """``user``, if the auth manager lets them read the DAG ``dag_id``; else 403."""
    allowed = get_auth_manager().is_authorized_dag(method="GET", details=_dag_details(dag_id), user=user)
    if not allowed:
        raise HTTPException(status_code=403, detail="Forbidden")
    return user


def media_reader(user: Annotated[BaseUser, Depends(get_user)]) -> BaseUser:
    """The caller, if the auth manager lets them read the DAG the media belong to; else 403."""
    return check_dag_reader(MEDIA_DAG_ID, user)


def media_storage() -> Storage:
    return get_storage()


@app.get("/files/{key:path}")
def serve_media(
    key: str,
    request: Request,
    user: Annotated[BaseUser, Depends(media_reader)],
    storage: Annotated[Storage, Depends(media_storage)],
) -> Response:
    try:
        check_key(key)
    except InvalidKey as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    media_type = media_type_for(key)
    if media_type is None:
        raise HTTPException(status_code=404, detail="not a preview or media object")
    if not isinstance(storage, LocalStorage):
        return RedirectResponse(storage.url_for_preview(key, REDIRECT_TTL_S))
    try:
        stream = storage.open_file(key)
    except StorageError:  # missing, a link, a fifo…: nothing to serve, and no detail on why
        raise HTTPException(status_code=404, detail="no such preview object") from None
    try:
        return _file_response(stream, media_type, request.headers.get("range"))
    except BaseException:
        stream.close()
        raise


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _requested_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for, as (first, last); None for the whole file (no header, several ranges, or a
    header this route does not parse — RFC 9110 lets a server ignore it). Raises 416 if it lies past the end."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if not match or match[1] == match[2] == "":
        return None
    if match[1] == "":  # the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise HTTPException(416, headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - suffix), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise HTTPException(416, headers={"Content-Range": f"bytes */{size}"})
    return first, min(last, size - 1)


def _file_response(stream: IO[bytes], media_type: str, range_header: str | None) -> Response:
    size = os.fstat(stream.fileno()).st_size
    span = _requested_range(range_header, size)
    first, last = span or (0, size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(last - first + 1),
        # per user (it needs a login), and replaced in place when a segment is redone
        "Cache-Control": "private, no-cache",
    }
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    return StreamingResponse(
        _read(stream, first, last - first + 1),
        status_code=206 if span else 200,
        media_type=media_type,
        headers=headers,
    )


def _read(stream: IO[bytes], offset: int, length: int) -> Iterator[bytes]:
    with stream:
        stream.seek(offset)
        while length > 0:
            chunk = stream.read(min(_CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk
