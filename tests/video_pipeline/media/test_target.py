"""Choosing the join's target from the clips' probes, and why a clip differs from it (no media needed)."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

from video_pipeline.media.probe import AudioLayout, VideoProbe
from video_pipeline.media.target import (
    DEFAULT_AUDIO,
    Target,
    audio_encoder,
    choose_target,
    differences,
    video_encoder,
)

AAC = AudioLayout("aac", 48000, "stereo")
CLIP = VideoProbe(
    duration_s=5.0,
    width=1280,
    height=720,
    codec="h264",
    profile="High",
    pix_fmt="yuv420p",
    fps=24.0,
    time_base="1/12288",
    frame_count=120,
    has_audio=False,
    size_bytes=1_000_000,
    video_duration_s=5.0,
)
SIZE = (1280, 720)


def test_the_most_common_parameters_at_the_jobs_size_win() -> None:
    ntsc = replace(CLIP, fps=30000 / 1001, time_base="1/30000")
    probes = [replace(CLIP, width=640, height=360)] * 3 + [ntsc, ntsc, CLIP]
    target = choose_target(probes, SIZE)
    assert (target.fps, target.timescale, target.profile) == (Fraction(30000, 1001), 30000, "High")
    assert target.stream_signature() == ntsc.stream_signature()


def test_a_tie_goes_to_the_earliest_clip() -> None:
    main = replace(CLIP, profile="Main")
    assert choose_target([main, CLIP], SIZE).profile == "Main"
    assert choose_target([CLIP, main], SIZE).profile == "High"


def test_defaults_when_no_clip_can_be_the_target() -> None:
    odd = [
        replace(CLIP, codec="hevc"),
        replace(CLIP, profile="High 10"),
        replace(CLIP, width=1920, height=1080),
    ]
    target = choose_target(odd, SIZE)
    assert (target.width, target.height, target.fps, target.timescale, target.profile) == (
        1280,
        720,
        Fraction(24),
        12288,
        "High",
    )


def test_audio_is_never_dropped_and_takes_a_layout_we_can_encode() -> None:
    assert choose_target([CLIP, CLIP], SIZE).audio is None
    voiced = replace(CLIP, audio=AAC, has_audio=True)
    mono = replace(CLIP, audio=AudioLayout("aac", 44100, "mono"), has_audio=True)
    assert choose_target([CLIP, mono, voiced, voiced], SIZE).audio == AAC
    pcm = replace(CLIP, audio=AudioLayout("pcm_s16le", 48000, "stereo"), has_audio=True)
    assert choose_target([pcm, CLIP], SIZE).audio == DEFAULT_AUDIO


def test_differences_say_why_a_clip_is_re_encoded() -> None:
    target = choose_target([replace(CLIP, audio=AAC)], SIZE)
    assert differences(replace(CLIP, audio=AAC), target) == ([], [])
    odd = replace(
        CLIP, width=720, height=720, profile="Main", pix_fmt="yuv444p", fps=30.0, time_base="1/15360"
    )
    video, audio = differences(odd, target)
    assert video == ["size 720x720", "codec h264 Main", "pixel format yuv444p", "30 fps", "time base 1/15360"]
    assert audio == ["no audio"]
    mono = replace(CLIP, audio=AudioLayout("aac", 44100, "mono"))
    assert differences(mono, target) == ([], ["audio aac 44100 Hz mono"])


def test_encoder_options_produce_the_target() -> None:
    target = Target(1280, 720, "Constrained Baseline", Fraction(25), 12800, AAC)
    options = video_encoder(target)
    assert options[options.index("-profile:v") + 1] == "baseline"
    assert options[options.index("-g") + 1] == "50"  # a keyframe every 2 s
    assert options[options.index("-video_track_timescale") + 1] == "12800"
    assert audio_encoder(target) == ["-c:a", "aac", "-b:a", "192k", "-ar", "48000", "-ch_layout", "stereo"]
