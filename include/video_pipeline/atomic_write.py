"""Writing a local file so that a reader sees the old file or the whole new one, never a part.

Whatever writes (ffmpeg, Pillow, a copy loop) writes to a hidden temp file beside the destination; when the
block ends the temp file is fsync'ed, renamed over the destination and the folder fsync'ed (the rename survives
a crash); if the block fails, the temp file is removed and the destination is left as it was.

Local storage's own writes do the same through folder descriptors that never follow a link
(``storage.LocalStorage``): its keys come from users, these paths from the pipeline.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_path_for(dest: Path) -> Path:
    """A hidden, unique sibling of ``dest`` that keeps its extension (ffmpeg and Pillow pick the format by it)."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(6)}.tmp{dest.suffix}")


@contextmanager
def atomic_write(dest: Path) -> Iterator[Path]:
    """A temp path to write ``dest``'s new content to; it becomes ``dest`` when the block ends without error.

    :param dest: the file to write; its folder is created if missing.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(dest)
    try:
        yield tmp
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, dest)
        _fsync(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
    finally:
        tmp.unlink(missing_ok=True)  # gone after the rename; left only when the block or the rename failed


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
