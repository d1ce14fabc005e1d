"""Opens the job storage for Airflow tasks: S3 through the amazon provider's S3Hook, local otherwise.

Presigned URLs (gate previews, the final video, the ``presigned`` image source of remote clip models) are opened by someone
outside the Airflow network. When S3 is reached by another name from outside (compose: Airflow talks to
``http://minio:9000``, a reviewer's browser to ``http://localhost:9000``), set the Variable
``video_pipeline_s3_public_endpoint_url`` to the outside address: URLs are then signed for it. Rewriting the
host of a URL signed for the inside address would break its SigV4 signature, which covers the Host.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from airflow.sdk import Variable

from video_pipeline.storage import Storage, StorageError, open_storage
from video_pipeline_airflow.settings import AWS_CONN_ID, storage_url

S3_PUBLIC_ENDPOINT_VARIABLE = "video_pipeline_s3_public_endpoint_url"


def s3_public_endpoint_url() -> str | None:
    """``video_pipeline_s3_public_endpoint_url`` (Variable or ``AIRFLOW_VAR_…``): an ``http(s)://host[:port]``
    base URL, or None when S3 has one address for everyone (AWS itself)."""
    value = Variable.get(S3_PUBLIC_ENDPOINT_VARIABLE, default=None)
    if not value:
        return None
    parsed = urlparse(str(value))
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path.strip("/"):
        raise StorageError(
            f"{S3_PUBLIC_ENDPOINT_VARIABLE} must be a base URL like https://s3.example.com or "
            f"http://localhost:9000, got {value!r}"
        )
    return str(value).rstrip("/")


def get_storage(url: str | None = None) -> Storage:
    """The job storage: S3 through the S3Hook of the ``aws_default`` connection (URLs for browsers signed for
    the public endpoint when one is set), or a local folder.

    :param url: ``s3://bucket/prefix`` or ``file:///path``; by default the configured storage URL.
    """
    url = url or storage_url()
    if url.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        public_endpoint = s3_public_endpoint_url()
        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        client = hook.get_conn()
        presign_client = _presign_client(hook, client, public_endpoint) if public_endpoint else None
        return open_storage(url, s3_client=client, presign_client=presign_client)
    return open_storage(url)


def _presign_client(hook: Any, client: Any, public_endpoint: str) -> Any:
    """A client that only signs: the connection's credentials and region, the public endpoint, SigV4 and
    path-style addressing (``host/bucket/key``: MinIO serves no per-bucket host names unless configured to).

    :param hook: the S3Hook whose connection gives the credentials, configuration and TLS verification.
    :param client: the hook's client (its region is reused).
    :param public_endpoint: the base URL browsers reach S3 by.
    """
    from botocore.config import Config

    config = hook.config.merge(Config(signature_version="s3v4", s3={"addressing_style": "path"}))
    session = hook.get_session(region_name=client.meta.region_name)
    return session.client(
        "s3",
        endpoint_url=public_endpoint,
        region_name=client.meta.region_name,
        config=config,
        verify=hook.verify,
    )
