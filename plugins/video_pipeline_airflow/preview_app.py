"""The api-server route that serves local-storage preview objects to logged-in Airflow users.

Authentication is Airflow's own ``get_user`` dependency (bearer token or the UI's session cookie), so an
anonymous request gets 401; keys go through the storage's key validation, so ``../`` gets 400.
"""

from __future__ import annotations

from typing import Annotated

from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, RedirectResponse, Response

from video_pipeline.storage import LocalStorage, ObjectNotFound, StorageError
from video_pipeline_airflow.hooks.storage import get_storage

app = FastAPI(title="Video pipeline previews")


@app.get("/files/{key:path}")
def serve_preview(key: str, user: Annotated[object, Depends(get_user)]) -> Response:
    storage = get_storage()
    try:
        if not isinstance(storage, LocalStorage):
            return RedirectResponse(storage.url_for_preview(key, 300))
        if not storage.exists(key):
            raise ObjectNotFound(key)
        return FileResponse(storage.path_for(key))
    except ObjectNotFound:
        raise HTTPException(status_code=404, detail="no such preview object") from None
    except StorageError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
