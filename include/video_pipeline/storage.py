"""Object storage behind one protocol: a ``file://`` root (default) or ``s3://bucket/prefix``.

Keys are relative POSIX paths (``jobs/demo/images/001.png``). Every write is atomic: a reader sees the whole
object or nothing (temp file + rename locally; a single PUT or a completed multipart upload on S3). Large
objects stream; nothing reads a whole video into memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

from botocore.exceptions import ClientError


class StorageError(Exception):
    """A storage operation failed (missing object, bad key, backend error)."""


class ObjectNotFound(StorageError):
    pass


@runtime_checkable
class Storage(Protocol):
    url: str

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...

    def put_stream(self, key: str, stream: IO[bytes], content_type: str | None = None) -> None: ...

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Create ``key`` only if absent; True if this call created it (exactly-once claims)."""
        ...

    def get_bytes(self, key: str) -> bytes: ...

    def open_read(self, key: str) -> AbstractContextManager[IO[bytes]]: ...

    def download_to(self, key: str, path: Path) -> Path: ...

    def copy(self, src_key: str, dst_key: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[str]: ...

    def url_for_preview(self, key: str, expires_s: int = 3600) -> str: ...


_BAD_KEY_PARTS = {"", ".", ".."}


def check_key(key: str) -> str:
    """A key is a relative POSIX path with no empty, ``.`` or ``..`` parts (no way out of the root)."""
    if not isinstance(key, str) or not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise StorageError(f"invalid storage key {key!r}: must be a relative path like 'jobs/x/a.png'")
    if any(part in _BAD_KEY_PARTS for part in key.split("/")):
        raise StorageError(f"invalid storage key {key!r}: empty, '.' or '..' parts are not allowed")
    return key


def _check_prefix(prefix: str) -> str:
    return check_key(prefix.rstrip("/")) + "/" if prefix.strip("/") else ""


class LocalStorage:
    """Objects as files under a root directory; writes go to a temp file in the same folder, then rename."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def path_for(self, key: str) -> Path:
        return self.root / check_key(key)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self.path_for(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    @contextmanager
    def _atomic_target(self, key: str) -> Iterator[Path]:
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with self._atomic_target(key) as tmp:
            tmp.write_bytes(data)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        with self._atomic_target(key) as tmp:
            shutil.copyfile(path, tmp)

    def put_stream(self, key: str, stream: IO[bytes], content_type: str | None = None) -> None:
        with self._atomic_target(key) as tmp, tmp.open("wb") as out:
            shutil.copyfileobj(stream, out, _CHUNK)

    def create_exclusive(self, key: str, data: bytes) -> bool:
        """Write to a temp file, then ``link`` it into place: exclusive (fails if present) and never partial."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.link(tmp_name, final)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp_name)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.path_for(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    @contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            stream = self.path_for(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None
        with stream:
            yield stream

    def download_to(self, key: str, path: Path) -> Path:
        with self.open_read(key) as stream:
            _write_atomically(path, stream)
        return path

    def copy(self, src_key: str, dst_key: str) -> None:
        if not self.exists(src_key):
            raise ObjectNotFound(src_key)
        self.put_file(dst_key, self.path_for(src_key))

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / _check_prefix(prefix) if prefix.strip("/") else self.root
        if not base.is_dir():
            return iter(())
        keys = (
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )
        return iter(sorted(keys))

    def url_for_preview(self, key: str, expires_s: int = 3600) -> str:
        return self.path_for(key).as_uri()


class S3Storage:
    """Objects in a bucket under a prefix, through a boto3 S3 client (plain boto3 or the S3Hook's).

    ``presign_client`` (optional) signs the URLs handed to browsers and to providers: a client with the same
    credentials whose endpoint is the address *they* reach S3 at (compose: ``http://localhost:9000``, while
    Airflow talks to ``http://minio:9000``). A SigV4 signature covers the Host, so a URL signed for the internal
    endpoint cannot be rewritten afterwards; it has to be signed for the public one.
    """

    def __init__(self, bucket: str, prefix: str, client: Any, presign_client: Any | None = None) -> None:
        self.bucket = bucket
        self.prefix = _check_prefix(prefix)
        self.client = client
        self.presign_client = presign_client or client
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _missing(self, exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code")
        return code in ("404", "NoSuchKey", "NotFound")

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if self._missing(exc):
                return False
            raise

    def size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])
        except ClientError as exc:
            if self._missing(exc):
                raise ObjectNotFound(key) from None
            raise

    def _extra(self, content_type: str | None) -> dict[str, Any]:
        return {"ContentType": content_type} if content_type else {}

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **self._extra(content_type))

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """A managed transfer: one PUT, or a multipart upload that only appears once completed."""
        self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs=self._extra(content_type))

    def put_stream(self, key: str, stream: IO[bytes], content_type: str | None = None) -> None:
        self.client.upload_fileobj(stream, self.bucket, self._key(key), ExtraArgs=self._extra(content_type))

    def create_exclusive(self, key: str, data: bytes) -> bool:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, IfNoneMatch="*")
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            raise

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    @contextmanager
    def open_read(self, key: str) -> Iterator[IO[bytes]]:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if self._missing(exc):
                raise ObjectNotFound(key) from None
            raise
        try:
            yield body
        finally:
            body.close()

    def download_to(self, key: str, path: Path) -> Path:
        with self.open_read(key) as stream:
            _write_atomically(path, stream)
        return path

    def copy(self, src_key: str, dst_key: str) -> None:
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": self._key(src_key)}, self.bucket, self._key(dst_key)
            )
        except ClientError as exc:
            if self._missing(exc):
                raise ObjectNotFound(src_key) from None
            raise

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str) -> Iterator[str]:
        full = self.prefix + _check_prefix(prefix) if prefix.strip("/") else self.prefix
        paginator = self.client.get_paginator("list_objects_v2")
        keys = [
            obj["Key"][len(self.prefix) :]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full)
            for obj in page.get("Contents", [])
        ]
        return iter(sorted(keys))

    def url_for_preview(self, key: str, expires_s: int = 3600) -> str:
        return str(
            self.presign_client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
            )
        )


_CHUNK = 1 << 20


def _write_atomically(path: Path, stream: IO[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out, _CHUNK)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def open_storage(url: str, *, s3_client: Any | None = None, presign_client: Any | None = None) -> Storage:
    """``file:///abs/path`` → LocalStorage; ``s3://bucket[/prefix]`` → S3Storage (``s3_client`` or boto3's;
    ``presign_client`` signs browser URLs, see S3Storage)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3" and parsed.netloc:
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        return S3Storage(parsed.netloc, parsed.path.strip("/"), s3_client, presign_client)
    raise StorageError(f"unsupported storage URL {url!r}: use file:///absolute/path or s3://bucket/prefix")
