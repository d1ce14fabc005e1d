"""Both storage backends through one contract: local files and S3 (moto in-process, and moto's HTTP server)."""

from __future__ import annotations

import io
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from moto import mock_aws
from moto.server import ThreadedMotoServer

from video_pipeline import storage as storage_module
from video_pipeline.storage import (
    MAX_KEY_BYTES,
    InvalidKey,
    LinkRefused,
    LocalStorage,
    NotARegularFile,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    open_storage,
)
from video_pipeline_dev.local import free_port


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


@pytest.mark.parametrize(
    "key",
    [
        "a" * 256,  # one part over 255 bytes
        "jobs/" + "é" * 128,  # 256 bytes of UTF-8 in 128 characters
        "/".join(["abcdefg"] * 128) + "/x",  # 1026 bytes in parts of 7
        "jobs/\udcff.png",  # not encodable as UTF-8
    ],
)
def test_over_long_and_unencodable_keys_are_invalid(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey, match="invalid storage key"):
        storage.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        storage.get_bytes(key)
    with pytest.raises(InvalidKey):
        storage.exists(key)


def test_keys_at_the_limits_work(storage: Storage) -> None:
    longest_part = "jobs/" + "p" * 255  # a temp file beside it must still fit the file-name limit
    storage.put_bytes(longest_part, b"part")
    assert storage.get_bytes(longest_part) == b"part"
    limit = MAX_KEY_BYTES - (len(storage.prefix) if isinstance(storage, S3Storage) else 0)  # S3: with prefix
    deepest = "abcdefg/" * 120
    deepest += "h" * (limit - len(deepest))
    with pytest.raises(InvalidKey):
        storage.put_bytes(deepest + "h", b"one byte too long")
    storage.put_bytes(deepest, b"deep")
    assert storage.get_bytes(deepest) == b"deep"
    assert deepest in list(storage.list("abcdefg/"))


def test_move_never_replaces(storage: Storage) -> None:
    storage.put_bytes("inbox/a.json", b"one")
    assert storage.move("inbox/a.json", "processing/a.json") is True
    assert storage.get_bytes("processing/a.json") == b"one" and not storage.exists("inbox/a.json")
    storage.put_bytes("inbox/a.json", b"two")
    assert storage.move("inbox/a.json", "processing/a.json") is False
    assert storage.get_bytes("processing/a.json") == b"one"
    assert storage.get_bytes("inbox/a.json") == b"two"
    with pytest.raises(ObjectNotFound):
        storage.move("inbox/none.json", "processing/none.json")


# -- local storage and symbolic links: nothing under the root is ever followed -------------------------


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"SECRET")
    return folder


def test_a_link_at_a_key_is_not_an_object(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put_bytes("jobs/x/a.png", b"mine")
    os.symlink(outside / "secret.txt", storage.root / "jobs/x/link.png")
    os.symlink(storage.root / "jobs/x/a.png", storage.root / "jobs/x/inside.png")  # even within the root
    os.symlink(tmp_path / "nowhere", storage.root / "jobs/x/dangling.png")
    for key in ("jobs/x/link.png", "jobs/x/inside.png", "jobs/x/dangling.png"):
        assert not storage.exists(key)
        with pytest.raises(NotARegularFile, match="symbolic link"):
            storage.get_bytes(key)
        with pytest.raises(NotARegularFile):
            storage.size(key)
        with pytest.raises(NotARegularFile):
            storage.copy(key, "jobs/x/copied.png")
        with pytest.raises(NotARegularFile), storage.open_read(key):
            pass
    assert list(storage.list("jobs/")) == ["jobs/x/a.png"]
    assert storage.list_non_regular("jobs/") == [
        "jobs/x/dangling.png",
        "jobs/x/inside.png",
        "jobs/x/link.png",
    ]
    assert not storage.exists("jobs/x/copied.png")

    # writes replace the link itself; deleting removes the link; the target is never touched
    storage.put_bytes("jobs/x/link.png", b"new")
    assert storage.get_bytes("jobs/x/link.png") == b"new"
    assert not (storage.root / "jobs/x/link.png").is_symlink()
    storage.delete("jobs/x/inside.png")
    assert storage.get_bytes("jobs/x/a.png") == b"mine"
    assert storage.create_exclusive("jobs/x/dangling.png", b"claim") is False  # present, though not an object
    assert (outside / "secret.txt").read_bytes() == b"SECRET" and not (tmp_path / "nowhere").exists()


def test_a_linked_folder_is_never_entered(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    storage.put_bytes("jobs/real/a.png", b"mine")
    os.symlink(outside, storage.root / "jobs/linked")
    os.symlink(outside, storage.root / "inbox")
    for key in ("jobs/linked/secret.txt", "inbox/secret.txt"):
        assert not storage.exists(key)
        with pytest.raises(LinkRefused, match="never follows links"):
            storage.get_bytes(key)
        with pytest.raises(LinkRefused):
            storage.put_bytes(key, b"overwritten")
        with pytest.raises(LinkRefused):
            storage.put_bytes(key.replace("secret.txt", "sub/new.txt"), b"new")
        with pytest.raises(LinkRefused):
            storage.delete(key)
        with pytest.raises(LinkRefused):
            storage.create_exclusive(key.replace("secret.txt", "claim"), b"x")
    assert list(storage.list("")) == ["jobs/real/a.png"]
    assert list(storage.list("inbox/")) == []
    assert storage.list_non_regular("") == ["inbox", "jobs/linked"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"SECRET"


@pytest.mark.timeout(20)
def test_a_fifo_is_never_opened_for_reading(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    (tmp_path / "inbox").mkdir()
    os.mkfifo(tmp_path / "inbox" / "spec.json")  # opening it blocking would hang until a writer came
    assert not storage.exists("inbox/spec.json")
    with pytest.raises(NotARegularFile, match="fifo"):
        storage.get_bytes("inbox/spec.json")
    assert storage.list_non_regular("inbox/") == ["inbox/spec.json"]
    assert storage.move("inbox/spec.json", "rejected/spec.json") is True
    assert stat.S_ISFIFO(os.lstat(tmp_path / "rejected" / "spec.json").st_mode)


def test_move_moves_a_link_as_a_link(tmp_path: Path, outside: Path) -> None:
    storage = LocalStorage(tmp_path / "root")
    (storage.root / "inbox").mkdir()
    os.symlink(outside / "secret.txt", storage.root / "inbox" / "spec.json")
    assert storage.move("inbox/spec.json", "inbox/rejected/spec.json") is True
    moved = storage.root / "inbox" / "rejected" / "spec.json"
    assert moved.is_symlink() and os.readlink(moved) == str(outside / "secret.txt")
    assert list(storage.list("")) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_files_and_folders_honour_the_umask(tmp_path: Path, umask: int) -> None:
    storage = LocalStorage(tmp_path)
    old = os.umask(umask)
    try:
        storage.put_bytes("a/b/put.json", b"x")
        storage.put_stream("a/b/stream.bin", io.BytesIO(b"x"))
        storage.create_exclusive("a/c/claim", b"x")
        storage.copy("a/b/put.json", "a/d/copy.json")
    finally:
        os.umask(old)
    for key in ("a/b/put.json", "a/b/stream.bin", "a/c/claim", "a/d/copy.json"):
        assert stat.S_IMODE(os.stat(tmp_path / key).st_mode) == 0o666 & ~umask, key
    for folder in ("a", "a/b", "a/c", "a/d"):
        assert stat.S_IMODE(os.stat(tmp_path / folder).st_mode) == 0o777 & ~umask, folder


def test_writes_are_fsynced_before_and_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's data reaches the disk before its name appears, and the folder entry right after."""
    storage = LocalStorage(tmp_path)
    storage.put_bytes("jobs/x/first", b"makes the folders")
    events: list[str] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        real_fsync(fd)

    def replace(*args: object, **kwargs: object) -> None:
        events.append("rename")
        real_replace(*args, **kwargs)  # type: ignore[arg-type]

    def link(*args: object, **kwargs: object) -> None:
        events.append("link")
        real_link(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    monkeypatch.setattr(storage_module.os, "replace", replace)
    monkeypatch.setattr(storage_module.os, "link", link)
    storage.put_bytes("jobs/x/record.json", b"paid")
    assert events == ["fsync file", "rename", "fsync folder"]
    events.clear()
    assert storage.create_exclusive("jobs/x/claim", b"once") is True
    assert events == ["fsync file", "link", "fsync folder"]
    events.clear()
    storage.put_bytes("jobs/new/record.json", b"paid")  # a new folder: its parent is synced as well
    assert events == ["fsync folder", "fsync file", "rename", "fsync folder"]
