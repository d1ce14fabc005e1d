"""Preview links that open in the reviewer's browser, for both storage kinds.

S3 objects get presigned URLs. Local objects are served by the api-server's preview route
(``preview_app.py``, mounted at ``/video-previews`` by ``plugins/video_pipeline_plugin.py``).
"""

from __future__ import annotations

from airflow.configuration import conf

from video_pipeline.storage import LocalStorage, Storage

URL_PREFIX = "/video-previews"
PRESIGNED_TTL_S = 7 * 86_400


def preview_url(storage: Storage, key: str) -> str:
    """A URL a browser can open: presigned for S3, this api-server's preview route for local storage."""
    if isinstance(storage, LocalStorage):
        base = conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
        return f"{base}{URL_PREFIX}/files/{key}"
    return storage.url_for_preview(key, PRESIGNED_TTL_S)
