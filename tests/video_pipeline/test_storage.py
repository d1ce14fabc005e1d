"""Both storage backends through one contract: local files and S3 (moto in-process, and moto's HTTP server)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from video_pipeline.storage import (
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    open_storage,
)
from video_pipeline_airflow.local import free_port


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[Storage]:
    if request.param == "local":
        yield open_storage((tmp_path / "root").as_uri())
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        yield open_storage("s3://bucket/some/prefix", s3_client=client)


def test_open_storage_picks_the_backend(tmp_path: Path) -> None:
    assert isinstance(open_storage(tmp_path.as_uri()), LocalStorage)
    assert isinstance(open_storage("s3://b/p", s3_client=object()), S3Storage)
    with pytest.raises(StorageError, match="unsupported storage URL"):
        open_storage("ftp://x/y")


def test_bytes_round_trip_and_listing(storage: Storage) -> None:
    storage.put_bytes("jobs/a/images/001.png", b"one")
    storage.put_bytes("jobs/a/images/002.png", b"two")
    storage.put_bytes("jobs/b/x.json", b"{}")
    assert storage.get_bytes("jobs/a/images/002.png") == b"two"
    assert storage.exists("jobs/a/images/001.png") and not storage.exists("jobs/a/images/003.png")
    assert storage.size("jobs/a/images/001.png") == 3
    assert list(storage.list("jobs/a/")) == ["jobs/a/images/001.png", "jobs/a/images/002.png"]
    storage.delete("jobs/a/images/001.png")
    storage.delete("jobs/a/images/001.png")  # deleting twice is fine
    assert list(storage.list("jobs/a")) == ["jobs/a/images/002.png"]


def test_missing_objects(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get_bytes("nope")
    with pytest.raises(ObjectNotFound):
        storage.copy("nope", "other")
    with pytest.raises(ObjectNotFound):
        storage.download_to("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_files_and_streams(storage: Storage, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 40_000)  # 10 MB: a multipart upload on S3
    storage.put_file("clips/big.bin", big, "application/octet-stream")
    storage.put_stream("clips/stream.bin", io.BytesIO(b"streamed"))
    out = storage.download_to("clips/big.bin", tmp_path / "out" / "big.bin")
    assert out.read_bytes() == big.read_bytes()
    with storage.open_read("clips/stream.bin") as stream:
        assert stream.read() == b"streamed"
    storage.copy("clips/big.bin", "cache/big.bin")
    assert storage.size("cache/big.bin") == big.stat().st_size


@pytest.mark.parametrize("key", ["../x", "/abs", "a/../b", "a//b", "a\\b", "", "./a", "a/\x00"])
def test_bad_keys_are_refused(storage: Storage, key: str) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        storage.put_bytes(key, b"x")


def test_create_exclusive_is_exactly_once(storage: Storage) -> None:
    assert storage.create_exclusive("claims/once", b"first") is True
    assert storage.create_exclusive("claims/once", b"second") is False
    assert storage.get_bytes("claims/once") == b"first"


def test_create_exclusive_under_contention(tmp_path: Path) -> None:
    """Local only: moto's conditional PUT is not atomic under threads (real S3's is)."""
    storage = LocalStorage(tmp_path)
    wins: list[bool] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        won = storage.create_exclusive("claims/milestone", f"{n}".encode())
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert storage.get_bytes("claims/milestone").decode() in {str(n) for n in range(8)}


def test_local_writes_leave_no_partial_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)

    class Boom(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        storage.put_stream("jobs/x/final.mp4", io.BufferedReader(Boom()))
    assert not storage.exists("jobs/x/final.mp4")
    assert [p.name for p in (tmp_path / "jobs" / "x").iterdir()] == []


def test_local_preview_url_is_a_file_url(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.put_bytes("a.png", b"x")
    assert storage.url_for_preview("a.png") == (tmp_path / "a.png").resolve().as_uri()


def test_s3_over_http_with_moto_server(aws_env: None, tmp_path: Path) -> None:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        client.create_bucket(Bucket="media")
        storage = open_storage("s3://media/root", s3_client=client)
        storage.put_bytes("jobs/j/manifest.json", b'{"ok": true}', "application/json")
        assert storage.create_exclusive("jobs/j/progress/e1", b"1") is True
        assert storage.create_exclusive("jobs/j/progress/e1", b"2") is False
        assert storage.get_bytes("jobs/j/progress/e1") == b"1"
        response = httpx.get(storage.url_for_preview("jobs/j/manifest.json", 60))
        assert response.status_code == 200 and response.json() == {"ok": True}
        assert list(storage.list("jobs/j/")) == ["jobs/j/manifest.json", "jobs/j/progress/e1"]
    finally:
        server.stop()
