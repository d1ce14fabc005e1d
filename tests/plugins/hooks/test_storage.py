"""The storage hook: a local folder for a ``file://`` URL; over S3, presigned URLs are signed for the address
their reader reaches S3 at.

In compose Airflow reaches MinIO as ``minio:9000`` and a reviewer's browser as ``localhost:9000``. Here moto's
server plays MinIO: the connection names it ``127.0.0.1:<port>`` (the inside name) and the Variable
``localhost:<port>`` (the outside name). Each URL's SigV4 signature is checked independently of boto3, for the
Host header a browser sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import httpx
import pytest

from video_pipeline.storage import LocalStorage, S3Storage, StorageError
from video_pipeline_airflow.hooks.storage import get_storage
from video_pipeline_dev.moto_s3 import MotoS3

BUCKET_USER = ("video-pipeline", "bucket-user-secret")


def sigv4_query_signature(url: str, secret_key: str, host: str) -> str:
    """The SigV4 signature a server computes for a GET of presigned ``url`` arriving with ``Host: host``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and params["X-Amz-SignedHeaders"] == "host"
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        ["GET", parts.path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"]
    )
    scope = params["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("AWS4" + secret_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def minio_like(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """moto's S3 server, the ``aws_default`` connection pointing at it by its inside name, bucket user's keys."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)  # the connection's keys must be the ones used
    server = MotoS3()
    server.start()
    conn = {
        "conn_type": "aws",
        "login": BUCKET_USER[0],
        "password": BUCKET_USER[1],
        "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", "s3://videos/pipeline")
    monkeypatch.delenv("AIRFLOW_VAR_VIDEO_PIPELINE_S3_PUBLIC_ENDPOINT_URL", raising=False)
    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=BUCKET_USER[0],
        aws_secret_access_key=BUCKET_USER[1],
    )
    client.create_bucket(Bucket="videos")
    yield server
    server.stop()


def test_presigned_urls_are_signed_for_the_public_endpoint(
    minio_like: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_host = f"localhost:{minio_like.port}"
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_S3_PUBLIC_ENDPOINT_URL", f"http://{public_host}/")
    storage = get_storage()
    assert isinstance(storage, S3Storage)
    storage.put_bytes("jobs/demo/previews/images.png", b"\x89PNG preview", "image/png")  # via the inside name

    url = storage.url_for_preview("jobs/demo/previews/images.png", 600)
    parts = urlsplit(url)
    assert parts.scheme == "http" and parts.netloc == public_host
    assert (
        parts.path == "/videos/pipeline/jobs/demo/previews/images.png"
    )  # path-style: no per-bucket host name
    params = dict(parse_qsl(parts.query))
    assert params["X-Amz-Credential"].startswith(f"{BUCKET_USER[0]}/")  # the connection's bucket user
    assert params["X-Amz-Expires"] == "600"
    # valid for the Host a browser sends to the public endpoint, and for no other (the host is signed)
    assert sigv4_query_signature(url, BUCKET_USER[1], public_host) == params["X-Amz-Signature"]
    assert (
        sigv4_query_signature(url, BUCKET_USER[1], urlsplit(minio_like.endpoint).netloc)
        != (params["X-Amz-Signature"])
    )
    response = httpx.get(url)
    assert response.status_code == 200 and response.content == b"\x89PNG preview"


def test_without_a_public_endpoint_urls_use_the_connection_endpoint(minio_like: MotoS3) -> None:
    storage = get_storage()
    url = storage.url_for_preview("jobs/demo/final.mp4", 60)
    assert urlsplit(url).netloc == urlsplit(minio_like.endpoint).netloc


@pytest.mark.parametrize(
    "value", ["minio:9000", "ftp://localhost:9000", "http://localhost:9000/videos", "https://", "localhost"]
)
def test_a_malformed_public_endpoint_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", "s3://videos/pipeline")
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_S3_PUBLIC_ENDPOINT_URL", value)
    with pytest.raises(StorageError, match="video_pipeline_s3_public_endpoint_url"):
        get_storage()


def test_a_file_url_opens_local_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_VIDEO_PIPELINE_STORAGE_URL", (tmp_path / "configured").as_uri())
    configured = get_storage()
    assert isinstance(configured, LocalStorage) and configured.root == tmp_path / "configured"
    explicit = get_storage((tmp_path / "other").as_uri())  # an explicit URL wins over the Variable
    assert isinstance(explicit, LocalStorage) and explicit.root == tmp_path / "other"
