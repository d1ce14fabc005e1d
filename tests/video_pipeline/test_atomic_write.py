"""A local file is replaced whole or not at all, whatever writes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from video_pipeline.atomic_write import atomic_write, temp_path_for


def test_the_new_content_replaces_the_file_when_the_block_ends(tmp_path: Path) -> None:
    dest = tmp_path / "deep" / "folder" / "poster.jpg"  # folders are created
    with atomic_write(dest) as tmp:
        tmp.write_bytes(b"new")
        assert not dest.exists()  # nothing is visible before the block ends
    assert dest.read_bytes() == b"new"
    with atomic_write(dest) as tmp:
        tmp.write_bytes(b"newer")
        assert dest.read_bytes() == b"new"
    assert dest.read_bytes() == b"newer"
    assert [p.name for p in dest.parent.iterdir()] == ["poster.jpg"]


def write_half_then_die(dest: Path) -> None:
    with atomic_write(dest) as tmp:
        tmp.write_bytes(b"half of it")
        raise RuntimeError("writer died")


def test_a_failed_block_leaves_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    dest = tmp_path / "final.mp4"
    dest.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer died"):
        write_half_then_die(dest)
    assert dest.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["final.mp4"]


def test_a_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    dest = tmp_path / "captions.png"
    dest.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic_write(dest):
        pass
    assert dest.read_bytes() == b"old"


def test_temp_files_are_hidden_unique_siblings_with_the_same_extension(tmp_path: Path) -> None:
    dest = tmp_path / "preview.gif"
    first, second = temp_path_for(dest), temp_path_for(dest)
    assert first != second
    assert first.parent == dest.parent and first.name.startswith(".preview.gif.") and first.suffix == ".gif"
