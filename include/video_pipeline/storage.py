"""Object storage behind one protocol: a ``file://`` root (default) or ``s3://bucket/prefix``.

Keys are relative POSIX paths (``jobs/demo/images/001.png``). Every write is atomic: a reader sees the whole
object or nothing (temp file + rename locally; a single PUT or a completed multipart upload on S3). Large
objects stream; nothing reads a whole video into memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable


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


# --- implementations below ---------------------------------------------------------------------------


def open_storage(url: str, *, s3_client: Any | None = None) -> Storage:
    """``file:///abs/path`` → LocalStorage; ``s3://bucket[/prefix]`` → S3Storage (``s3_client`` or boto3's)."""
    raise NotImplementedError
