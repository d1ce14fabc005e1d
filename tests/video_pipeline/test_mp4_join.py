"""Joining real H.264 clips by their sample tables, checked against ffmpeg's concat demuxer and the sources."""

from __future__ import annotations

import hashlib
import random
import struct
from collections import Counter
from pathlib import Path

import av
import pytest

from tests.video_pipeline.media import damaged, faststart, frame_hashes, make_clip, subtitle_cues
from video_pipeline.ffmpeg import probe, run_ffmpeg
from video_pipeline.mp4_join import (
    Corrupt,
    Truncated,
    Unsupported,
    _boxes,
    _moov,
    mismatch,
    read_track,
    write_joined,
)

Packet = tuple[int | None, int | None, int | None, bool, str]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mp4-join")


@pytest.fixture(scope="module")
def clips(media: Path) -> list[Path]:
    """Three clips of different lengths from one encoder (B-frames: composition offsets and an edit list)."""
    return [make_clip(media / f"c{n}.mp4", seconds=1 + n / 2, hue=70 * n) for n in range(3)]


def packets(path: Path) -> list[Packet]:
    """(pts, dts, duration, keyframe, hash of the bytes) of each video packet, in file order."""
    with av.open(str(path)) as container:
        return [
            (p.pts, p.dts, p.duration, p.is_keyframe, hashlib.md5(bytes(p)).hexdigest())
            for p in container.demux(video=0)
            if p.size
        ]


def concat_demuxer(sources: list[Path], dest: Path) -> Path:
    listing = dest.with_suffix(".ffconcat")
    listing.write_text("ffconcat version 1.0\n" + "".join(f"file '{s}'\n" for s in sources))
    run_ffmpeg(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(dest)])
    return dest


def test_join_is_the_concat_demuxers_timeline_with_the_sources_bytes(
    clips: list[Path], tmp_path: Path
) -> None:
    joined = tmp_path / "tables.mp4"
    write_joined([read_track(c) for c in clips], joined)
    reference = concat_demuxer(clips, tmp_path / "concat.mp4")

    ours, theirs = packets(joined), packets(reference)
    assert [p[:4] for p in ours] == [p[:4] for p in theirs]  # same timestamps, durations, keyframes
    # the bytes are the clips' own (the concat demuxer adds the parameter sets to each keyframe)
    assert [p[4] for p in ours] == [p[4] for clip in clips for p in packets(clip)]
    assert frame_hashes(joined) == [h for clip in clips for h in frame_hashes(clip)]
    assert frame_hashes(joined) == frame_hashes(reference)

    result, expected = probe(joined), probe(reference)
    assert (result.frame_count, result.video_duration_s, result.duration_s) == (108, 4.5, 4.5)
    assert (result.frame_count, result.video_duration_s, result.fps, result.time_base) == (
        expected.frame_count,
        expected.video_duration_s,
        expected.fps,
        expected.time_base,
    )
    assert faststart(joined)
    # ffmpeg decodes all of it without a complaint
    assert run_ffmpeg(["-xerror", "-i", str(joined), "-f", "null", "-"]) == ""


def test_captions_track(clips: list[Path], tmp_path: Path) -> None:
    """Captions with gaps before, between and after them become a timed-text track ffmpeg and players read."""
    joined = tmp_path / "captioned.mp4"
    cues = [(0.5, 1.0, "first"), (1.0, 2.5, "zweite Zeile, ünïcödé"), (3.0, 4.0, "last\nof two lines")]
    write_joined([read_track(c) for c in clips], joined, captions=cues)
    assert subtitle_cues(joined) == cues
    result = probe(joined)
    assert (result.video_streams, result.subtitle_streams, result.frame_count) == (1, 1, 108)
    assert frame_hashes(joined) == [h for clip in clips for h in frame_hashes(clip)]
    srt = tmp_path / "back.srt"
    run_ffmpeg(["-xerror", "-i", str(joined), "-map", "0:s:0", str(srt)])  # ffmpeg's mov_text decoder
    assert srt.read_text().splitlines()[:3] == ["1", "00:00:00,500 --> 00:00:01,000", "first"]
    with av.open(str(joined)) as container:  # the track lasts as long as the video, in its time scale
        text = container.streams.subtitles[0]
        assert text.time_base == container.streams.video[0].time_base
        assert text.duration == 4.5 * 12288


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, installed by scripts/install-browser.sh (see tests/e2e)
PLAY_THROUGH = """() => new Promise((resolve) => {
    const v = document.getElementById("v");
    v.onerror = () => resolve({error: v.error && v.error.message});
    v.onended = () => resolve({
        duration: v.duration, width: v.videoWidth, height: v.videoHeight,
        decoded: v.getVideoPlaybackQuality().totalVideoFrames, at: v.currentTime,
    });
    v.playbackRate = 4;
    v.play().catch((e) => resolve({error: String(e)}));
})"""


def test_a_browser_plays_the_joined_video_to_the_end(clips: list[Path], tmp_path: Path) -> None:
    """Chromium (the reviewers' and viewers' player) plays a table-joined file with a captions track through,
    decoding every frame, and reports the planned length."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: scripts/install-browser.sh installs Debian's chromium (root + apt)"
        )
    from playwright.sync_api import sync_playwright

    joined = tmp_path / "joined.mp4"
    write_joined([read_track(c) for c in clips], joined, captions=[(0.0, 1.0, "hello")])
    page_file = tmp_path / "play.html"
    page_file.write_text(f'<video id="v" muted preload="auto" src="{joined.name}"></video>')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            played = page.evaluate(PLAY_THROUGH)
        finally:
            browser.close()
    assert played == {"duration": 4.5, "width": 320, "height": 180, "decoded": 108, "at": 4.5}


def test_overlapping_captions_are_refused(clips: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overlaps"):
        write_joined([read_track(clips[0])], tmp_path / "x.mp4", captions=[(0, 1, "a"), (0.5, 1.5, "b")])
    assert not (tmp_path / "x.mp4").exists()


def test_clips_at_30_fps_in_a_24_fps_time_scale(media: Path, tmp_path: Path) -> None:
    """Frame durations alternate (409, 410 ticks of 1/12288 s): the join keeps each clip's own."""
    sources = [make_clip(media / f"f30-{n}.mp4", fps=30, seconds=1 + n, hue=50 * n) for n in range(2)]
    joined = tmp_path / "joined.mp4"
    write_joined([read_track(s) for s in sources], joined)
    reference = concat_demuxer(sources, tmp_path / "concat.mp4")
    assert [p[:4] for p in packets(joined)] == [p[:4] for p in packets(reference)]
    assert frame_hashes(joined) == frame_hashes(sources[0]) + frame_hashes(sources[1])
    result = probe(joined)
    assert (result.frame_count, result.fps, result.video_duration_s) == (90, 30.0, 3.0)


def test_clip_with_its_index_at_the_end(media: Path, tmp_path: Path) -> None:
    """Clips as ffmpeg writes them without +faststart (index after the media) join the same way."""
    tail = media / "tail.mp4"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=24:d=1",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "24",
            "-video_track_timescale",
            "12288",
            str(tail),
        ]
    )
    assert not faststart(tail)
    joined = tmp_path / "joined.mp4"
    write_joined([read_track(tail), read_track(tail)], joined)
    assert frame_hashes(joined) == frame_hashes(tail) * 2
    assert probe(joined).frame_count == 48


def test_index_reports_what_the_clip_holds(clips: list[Path]) -> None:
    track = read_track(clips[1])
    assert (track.frame_count, track.timescale, track.media_duration) == (36, 12288, 36 * 512)
    assert track.media_time == 1024  # two frames of B-frame delay
    assert sum(run.length for run in track.runs) == sum(track.sizes)
    assert track.sync is not None and list(track.sync) == [1, 25]  # a keyframe every 24 frames
    assert b"btrt" not in track.sample_entry  # the per-clip bitrate is left out of the comparison
    assert mismatch([read_track(c) for c in clips]) is None


def test_other_decoder_configuration_is_refused(clips: list[Path], media: Path) -> None:
    baseline = make_clip(media / "baseline.mp4", profile="baseline")  # and no B-frames: no start delay
    bigger = make_clip(media / "bigger.mp4", size=(640, 360))
    for other, differs in (
        (baseline, "decoder configuration and start delay"),
        (bigger, "decoder configuration and display size or rotation"),
    ):
        reason = mismatch([read_track(clips[0]), read_track(other)])
        assert reason == f"clip 2 ({other.name}) has another {differs} than clip 1"
        with pytest.raises(Unsupported):
            write_joined([read_track(clips[0]), read_track(other)], media / "never.mp4")
    assert not (media / "never.mp4").exists()


def test_a_rotated_clip_is_not_joined_with_upright_ones(clips: list[Path], media: Path) -> None:
    """Same encoder, same stream; only the display matrix says "turn by 90°" (as phones write it)."""
    rotated = media / "rotated.mp4"
    run_ffmpeg(["-display_rotation", "90", "-i", str(clips[0]), "-c", "copy", str(rotated)])
    assert read_track(rotated).sample_entry == read_track(clips[0]).sample_entry
    reason = mismatch([read_track(clips[0]), read_track(rotated)])
    assert reason == "clip 2 (rotated.mp4) has another display size or rotation than clip 1"


def test_clips_it_does_not_join(media: Path) -> None:
    voiced = make_clip(media / "voiced.mp4", audio_rate=48000)
    with pytest.raises(Unsupported, match="2 tracks"):
        read_track(voiced)
    fragmented = media / "fragmented.mp4"
    run_ffmpeg(
        [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=64x36:r=24:d=1",
            "-c:v",
            "libx264",
            "-movflags",
            "frag_keyframe+empty_moov",
            str(fragmented),
        ]
    )
    with pytest.raises(Unsupported, match="fragmented"):
        read_track(fragmented)
    text = media / "not-a-video.mp4"
    text.write_text("hello, this is not an MP4 file at all\n")
    with pytest.raises(Unsupported):
        read_track(text)
    cut = media / "cut-index.mp4"
    cut.write_bytes(make_clip(media / "whole.mp4").read_bytes()[:200])
    with pytest.raises(Unsupported, match="moov cut short"):
        read_track(cut)


def test_truncated_media_is_counted(clips: list[Path], tmp_path: Path) -> None:
    data = clips[0].read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(Truncated) as caught:
        read_track(half)
    assert caught.value.promised == 24 and 0 < caught.value.readable < 24
    with av.open(str(half)) as container:  # what a demuxer hands out: the whole packets and the one cut short
        handed_out = [p.size for p in container.demux(video=0) if p.size]
    sizes = read_track(clips[0]).sizes
    whole = caught.value.readable
    assert handed_out[:whole] == list(sizes[:whole])
    assert len(handed_out) == whole + 1 and handed_out[-1] < sizes[whole]


@pytest.mark.parametrize("junk", [bytes(64), b"\xff" * 64], ids=["zeroed", "overwritten"])
def test_corrupt_media_behind_an_intact_index_is_named(
    clips: list[Path], tmp_path: Path, junk: bytes
) -> None:
    broken = damaged(clips[1], tmp_path / "broken.mp4", sample=7, junk=junk)
    tracks = [read_track(clips[0]), read_track(broken)]  # reading the index finds nothing wrong
    with pytest.raises(Corrupt) as caught:
        write_joined(tracks, tmp_path / "joined.mp4")
    assert (caught.value.path, caught.value.sample) == (broken, 7)
    assert not (tmp_path / "joined.mp4").exists()


def test_damaged_indexes_are_refused_cleanly(clips: list[Path], tmp_path: Path) -> None:
    """300 copies of a clip with a few random bytes of its index changed: each is read, refused as
    Unsupported/Truncated, or (if it still reads) joined or refused as Corrupt: never another error, a hang
    or a huge allocation from a size field that lies."""
    rng = random.Random(20261129)
    data = clips[0].read_bytes()
    start = data.index(b"moov") - 4
    end = start + int.from_bytes(data[start : start + 4], "big")
    outcomes: Counter[str] = Counter()
    for attempt in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(start, end)] = rng.randrange(256)
        variant = tmp_path / f"v{attempt}.mp4"
        variant.write_bytes(bytes(mutated))
        try:
            track = read_track(variant)
        except (Unsupported, Truncated) as exc:
            outcomes[type(exc).__name__] += 1
            continue
        try:
            write_joined([track], tmp_path / "out.mp4")
            outcomes["joined"] += 1
        except Corrupt:
            outcomes["Corrupt"] += 1
        variant.unlink()
    assert sum(outcomes.values()) == 300
    assert outcomes["Unsupported"] > 0 and outcomes["joined"] > 0  # both kinds of damage were exercised


def test_offsets_past_4_gib_use_64_bit_chunk_offsets(clips: list[Path]) -> None:
    tracks = [read_track(c) for c in clips]
    small, large = _moov(tracks, 1000), _moov(tracks, 5 << 30)

    def chunk_offsets(moov: bytes) -> tuple[bytes, list[int]]:
        stbl = moov
        for kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
            body, end = next((b, e) for k, b, e in _boxes(stbl) if k == kind)
            stbl = stbl[body:end]
        for kind, body, _ in _boxes(stbl):
            if kind in (b"stco", b"co64"):
                width = 8 if kind == b"co64" else 4
                (count,) = struct.unpack_from(">I", stbl, body + 4)
                return kind, [
                    int.from_bytes(stbl[body + 8 + width * n : body + 8 + width * (n + 1)], "big")
                    for n in range(count)
                ]
        raise AssertionError("no chunk offsets")

    kind, near = chunk_offsets(small)
    assert kind == b"stco" and near[0] == 1000
    kind, far = chunk_offsets(large)
    assert kind == b"co64" and far == [offset - 1000 + (5 << 30) for offset in near]
