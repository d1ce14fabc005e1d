"""Preview links that open in the reviewer's browser, for both storage kinds, and which keys may be served.

S3 objects get presigned URLs. Local objects are served by the api-server's preview route
(``media_route.py``, mounted at ``/video-previews`` by ``plugins/video_pipeline_plugin.py``). The route serves
only the media a reviewer looks at (:func:`media_type_for`): never a manifest, the inbox, the spend ledger or
anything else someone could write into storage.
"""

from __future__ import annotations

import re

from video_pipeline.models import JOB_ID_PATTERN
from video_pipeline.storage import LocalStorage, Storage
from video_pipeline_airflow import compat

URL_PREFIX = "/video-previews"
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


def preview_url(storage: Storage, key: str) -> str:
    """A URL a browser can open: presigned for S3, this api-server's preview route for local storage."""
    if isinstance(storage, LocalStorage):
        base = compat.conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
        return f"{base}{URL_PREFIX}/files/{key}"
    return storage.url_for_preview(key, PRESIGNED_TTL_S)
