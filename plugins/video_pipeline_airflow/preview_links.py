"""Preview links that open in the reviewer's browser, for both storage kinds, and which keys may be served.

S3 objects get presigned URLs. Local objects are served by the api-server's preview route
(``media_route.py``, mounted at ``/video-previews`` by ``plugins/video_pipeline_plugin.py``). The route serves
only the media a reviewer looks at (:func:`media_type_for`): never a manifest, the inbox, the spend ledger or
anything else someone could write into storage.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from video_pipeline.models import JOB_ID_PATTERN
from video_pipeline.storage import LocalStorage, Storage
from video_pipeline_airflow import compat

URL_PREFIX = "/video-previews"
#: The review page's tab on a task instance in the Airflow UI (``external_views`` ``url_route``).
REVIEW_ROUTE = "video-review"
PRESIGNED_TTL_S = 7 * 86_400
#: The DAG that produces every object the route serves: reading its runs is what lets a user see them.
MEDIA_DAG_ID = "video_generation"

#: Media types by extension. Every one is inert in a browser (no script runs in an image, a video or plain
#: text, and ``nosniff`` stops the browser guessing otherwise); HTML, SVG, XML, JSON and the rest are never served.
MEDIA_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mp3": "audio/mpeg",
    "m4a": "audio/mp4",
    "wav": "audio/wav",
    "ogg": "audio/ogg",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
}
_JOB = JOB_ID_PATTERN.removeprefix("^").removesuffix("$")
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}"  # one file name; no hidden or temp files
_MEDIA_KEY = re.compile(
    rf"jobs/{_JOB}/(?:(?:images|clips|preview|narration)/{_NAME}|final|final-poster|final-preview)"
    r"\.(?P<ext>[a-z0-9]+)"
)


def media_type_for(key: str) -> str | None:
    """The media type to serve ``key`` with, or None if the route must not serve it.

    Served: ``jobs/<job_id>/{images,clips,preview,narration}/<file>`` and the job's ``final.*``,
    ``final-poster.*`` and ``final-preview.*``, each with an extension from :data:`MEDIA_TYPES`.
    """
    match = _MEDIA_KEY.fullmatch(key)
    return MEDIA_TYPES.get(match["ext"]) if match else None


def ui_base_url() -> str:
    return str(compat.conf.get("api", "base_url", fallback="http://localhost:8080")).rstrip("/")


def review_url(dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> str:
    """The gate's review page as a tab of its task instance in the Airflow UI (which asks for a login first,
    then shows the page in a frame): the link every "gate opened" notification and form carries."""
    parts = [quote(p, safe="") for p in (dag_id, run_id, task_id)]
    mapped = f"/mapped/{map_index}" if map_index >= 0 else ""
    return f"{ui_base_url()}/dags/{parts[0]}/runs/{parts[1]}/tasks/{parts[2]}{mapped}/plugin/{REVIEW_ROUTE}"


def preview_url(storage: Storage, key: str) -> str:
    """A URL a browser can open: presigned for S3, this api-server's preview route for local storage."""
    if isinstance(storage, LocalStorage):
        return f"{ui_base_url()}{URL_PREFIX}/files/{key}"
    return storage.url_for_preview(key, PRESIGNED_TTL_S)
