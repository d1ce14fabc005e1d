"""Running the bundled ffmpeg: its report, its failures, its time arguments."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from video_pipeline.media.ffmpeg import FFmpegError, ffmpeg_exe, run_ffmpeg, seconds_arg


def test_the_bundled_binary_is_used() -> None:
    assert Path(ffmpeg_exe()).is_file()


def test_stderr_is_returned_for_filters_that_report_there() -> None:
    report = run_ffmpeg(
        ["-f", "lavfi", "-i", "sine=d=0.5", "-af", "volumedetect", "-f", "null", "-"], loglevel="info"
    )
    assert "mean_volume" in report


def test_a_failure_says_the_exit_code_and_the_end_of_ffmpegs_report(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError, match=r"(?s)ffmpeg failed \(exit \d+\): .*missing\.mp4"):
        run_ffmpeg(["-i", str(tmp_path / "missing.mp4"), str(tmp_path / "out.mp4")])


def test_a_run_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    with pytest.raises(FFmpegError, match="timed out after 1 s"):
        run_ffmpeg(["-re", "-f", "lavfi", "-i", "testsrc2=d=30", "-f", "null", "-"], timeout=1)


def test_times_are_seconds_to_the_microsecond() -> None:
    assert seconds_arg(Fraction(1, 3)) == "0.333333"
    assert seconds_arg(2) == "2.000000"
    assert seconds_arg(Fraction(1001, 24000)) == "0.041708"
