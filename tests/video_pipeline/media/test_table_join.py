"""Joining real H.264 clips by their sample tables, checked against ffmpeg's concat demuxer and the sources."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import random
import re
import struct
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import av
import pytest

from tests.video_pipeline.media.media_files import (
    Box,
    ClipParts,
    clip_parts,
    damaged,
    faststart,
    frame_hashes,
    make_clip,
    subtitle_cues,
    visual_entry,
)
from video_pipeline.media import AssemblyError
from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.finish import join
from video_pipeline.media.plan import Clip, plan_join, read_indexes
from video_pipeline.media.probe import probe
from video_pipeline.media.table_join import (
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


@pytest.mark.slow  # starts Chromium
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
    assert sum(run.length for run in track.runs) == sum(track.sample_sizes())
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
    sizes = read_track(clips[0]).sample_sizes()
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
    messages: list[str] = []
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
            messages.append(str(exc))
            continue
        try:
            write_joined([track], tmp_path / "out.mp4")
            outcomes["joined"] += 1
            assert read_track(tmp_path / "out.mp4").frame_count == track.frame_count
        except Corrupt:
            outcomes["Corrupt"] += 1
        variant.unlink()
    assert sum(outcomes.values()) == 300
    assert outcomes["Unsupported"] > 0 and outcomes["joined"] > 0  # both kinds of damage were exercised
    # each refusal names what is wrong: none comes from read_track's last resort for unforeseen errors
    assert not [m for m in messages if m.startswith("unreadable index")]


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


# --- hostile indexes: structurally valid files with adversarial values -------------------------------------


@pytest.fixture(scope="module")
def parts(clips: list[Path]) -> ClipParts:
    """clips[1] taken apart by a demuxer: 36 samples with B-frames (ctts, an edit, keyframes) in chunks of
    1, 2, 3, … samples."""
    return clip_parts(clips[1])


def built(parts: ClipParts, dest: Path, change: Callable[[ClipParts], object] = lambda p: None) -> Path:
    variant = copy.deepcopy(parts)
    change(variant)
    dest.write_bytes(variant.encode())
    return dest


def one_byte_samples(count: int, *, table: bool = False, chunks: int = 1) -> ClipParts:
    """``count`` one-byte AV1 samples (no NAL units to check), in ``chunks`` chunks back to back."""
    per_chunk = count // chunks
    assert per_chunk * chunks == count
    return ClipParts(
        samples=[b"\x12" * count],
        entry=visual_entry(b"av01", 64, 64, []),
        stts=[(count, 512)],
        stsc=[(1, per_chunk, 1)],
        chunk_offsets=list(range(0, count, per_chunk)),
        sizes=[1] * count,
        uniform_size=0 if table else 1,
        sample_count=count,
    )


def test_a_clip_built_from_its_parts_is_the_clip(parts: ClipParts, clips: list[Path], tmp_path: Path) -> None:
    """The fuzz test's starting point is a real, valid file: its frames decode as the source's, with the
    index before or after the media, and it joins by its tables."""
    for index_last in (False, True):
        rebuilt = tmp_path / f"rebuilt-{index_last}.mp4"
        rebuilt.write_bytes(dataclasses.replace(parts, index_last=index_last).encode())
        assert run_ffmpeg(["-xerror", "-i", str(rebuilt), "-f", "null", "-"]) == ""
        assert frame_hashes(rebuilt) == frame_hashes(clips[1])
        track = read_track(rebuilt)
        assert (track.frame_count, track.media_time, len(track.runs)) == (36, 1024, 1)
        write_joined([track, track], tmp_path / "joined.mp4")
        assert frame_hashes(tmp_path / "joined.mp4") == frame_hashes(clips[1]) * 2


@pytest.mark.parametrize("box", ["mdhd", "mvhd"])
def test_time_scale_0_is_unsupported(parts: ClipParts, tmp_path: Path, box: str) -> None:
    """It raised ZeroDivisionError, which no caller expected (no fallback, no segment named)."""
    attribute = "timescale" if box == "mdhd" else "movie_timescale"
    clip = built(parts, tmp_path / "zero.mp4", lambda p: setattr(p, attribute, 0))
    with pytest.raises(Unsupported, match=f"^{box}: time scale 0$"):
        read_track(clip)


@pytest.mark.parametrize(
    ("stsc", "reason"),
    [
        (
            [(0, 1, 1), (2, 2, 1)],
            "first chunk 0 (chunks are numbered from 1)",
        ),  # was accepted: the last chunk
        ([(2, 1, 1), (3, 2, 1)], "first chunk 2"),
        ([(1, 1, 1), (3, 2, 1), (2, 3, 1)], "chunk numbers not strictly increasing"),
        ([(1, 1, 1), (1, 2, 1)], "chunk numbers not strictly increasing"),
        ([(1, 1, 1), (99, 2, 1)], "names chunk 99 of 8"),
        ([(1, 0, 1), (2, 2, 1)], "a chunk of 0 samples"),
        ([(1, 1, 1), (2, 1 << 31, 1)], "chunks hold"),
        ([(1, 1, 2)], "samples refer to another sample description"),
    ],
)
def test_sample_to_chunk_table_must_number_chunks_from_1_upwards(
    parts: ClipParts, tmp_path: Path, stsc: list[tuple[int, int, int]], reason: str
) -> None:
    assert len(parts.chunk_offsets) == 8  # chunks of 1..7 samples, and the last 8
    clip = built(parts, tmp_path / "stsc.mp4", lambda p: setattr(p, "stsc", stsc))
    with pytest.raises(Unsupported, match=re.escape(reason)):
        read_track(clip)


def test_a_sample_to_chunk_table_quadratic_before_is_refused_at_once(tmp_path: Path) -> None:
    """A 1 MiB index: 43 690 stsc entries alternating first chunk 1 and 131 072, for 131 072 chunks of one
    sample each. Each entry made the old reader walk every chunk (and it accepted the clip): 20-45 min by
    extrapolation from 0.53 s, 2.0 s, 8.4 s, 44 s, 73 s measured for 16 to 256 KiB; now ~0.5 ms. The same
    shape with increasing chunk numbers is a valid index, read in linear time (~60 ms)."""
    chunks, entries = 1 << 17, (1 << 19) // 12
    hostile = one_byte_samples(chunks, chunks=chunks)
    hostile.stsc = [(1 if n % 2 == 0 else chunks, 1, 1) for n in range(entries)]
    clip = tmp_path / "quadratic.mp4"
    clip.write_bytes(hostile.encode())
    started = time.perf_counter()
    with pytest.raises(Unsupported, match="stsc: chunk numbers not strictly increasing"):
        read_track(clip)
    assert time.perf_counter() - started < 0.1

    valid = one_byte_samples(chunks, chunks=chunks)
    valid.stsc = [(1 + 3 * n, 1, 1) for n in range(entries)]
    clip.write_bytes(valid.encode())
    started = time.perf_counter()
    track = read_track(clip)
    assert time.perf_counter() - started < 1.0
    assert (track.frame_count, len(track.runs)) == (chunks, 1)  # back to back: one run


def test_one_byte_samples_take_memory_for_the_index_not_per_sample(tmp_path: Path) -> None:
    """200 000 one-byte samples described by a few bytes (one size for all, one stts entry): reading the
    index costs what the index does (the old reader peaked at ~100 × the file: 94 MiB for 1 MB), and the
    joined file is the media plus an index that does not grow with the samples either."""
    count = 200_000
    clip = tmp_path / "tiny.mp4"
    clip.write_bytes(one_byte_samples(count).encode())
    tracemalloc.start()
    try:
        track = read_track(clip)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert track.frame_count == count and peak < 64 << 10
    joined = tmp_path / "joined.mp4"
    write_joined([track, track], joined)
    assert read_track(joined).frame_count == 2 * count
    assert joined.stat().st_size < 2 * clip.stat().st_size
    # with a size per sample, the index itself takes 4 bytes a sample: memory is a small multiple of it
    clip.write_bytes(one_byte_samples(count, table=True).encode())
    tracemalloc.start()
    try:
        assert read_track(clip).frame_count == count
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 4 * count


@pytest.mark.parametrize(
    ("chunk", "offset", "outcome", "reason"),
    [
        (3, "previous", Unsupported, "chunk 4 overlaps the one before it"),
        (3, 0, Unsupported, "chunk 4 overlaps the one before it or comes before it in the file"),
        (0, -200, Unsupported, "chunk 1 lies outside the media data (mdat)"),  # inside the index
        (7, 10**9, Truncated, "28 of 36 frames readable"),  # past the end of the file: chunks 1-7 hold 28
    ],
)
def test_chunks_lie_in_the_media_data_in_order_without_overlapping(
    parts: ClipParts, tmp_path: Path, chunk: int, offset: int | str, outcome: type[Exception], reason: str
) -> None:
    """The media is copied as the chunks say: a chunk read twice would let a small file write a huge one."""

    def move(p: ClipParts) -> None:
        p.chunk_offsets[chunk] = p.chunk_offsets[chunk - 1] if offset == "previous" else int(offset)

    with pytest.raises(outcome, match=re.escape(reason)):
        read_track(built(parts, tmp_path / "chunks.mp4", move))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda p: setattr(p, "stsc", [(0, 1, 1), *p.stsc[1:]]), "segment 2: stsc: first chunk 0"),
        (lambda p: p.chunk_offsets.__setitem__(2, p.chunk_offsets[1]), "segment 2: chunk 3 overlaps"),
    ],
    ids=["first chunk 0", "overlapping chunks"],
)
def test_assembly_names_the_segment_whose_index_is_hostile(
    clips: list[Path], parts: ClipParts, tmp_path: Path, change: Callable[[ClipParts], object], reason: str
) -> None:
    """The table join refuses the clip (naming its segment) and ffmpeg's concat demuxer joins instead. The
    result is checked against the plan: whole, or (as the ffmpeg here reads these clips: it comes up short) a
    failure that names the segment refused, leaving nothing behind."""
    hostile = built(parts, tmp_path / "hostile.mp4", change)
    segments = [Clip(1, clips[0]), Clip(2, hostile), Clip(3, clips[2])]
    assert [i if isinstance(i, str) else "index" for i in read_indexes(segments)][1].startswith(reason)
    plan = plan_join(segments, resolution=(320, 180), workdir=tmp_path / "work")
    assert plan.tables is None and reason in plan.joined_by
    final = tmp_path / "final.mp4"
    try:
        result = join(plan, final)
    except AssemblyError as exc:
        assert reason in str(exc)  # noqa: PT017 (either outcome is the contract; each is checked)
        assert not final.exists()
    else:
        assert result.frame_count == plan.frame_count == 24 + 36 + 48


# The fuzz test's changes: each sets one part of a valid index to an adversarial value and says which.
Change = Callable[[random.Random, ClipParts], str]
HUGE = [0, 1, 2, 3, 255, 1 << 16, (1 << 31) - 1, 1 << 31, (1 << 32) - 1]


def nested(depth: int, kind: bytes = b"udta") -> Box:
    """``depth`` boxes each inside the one before (built flat: the builder is recursive)."""
    return Box(kind, b"".join(struct.pack(">I4s", 8 * (depth - 1 - n), kind) for n in range(depth - 1)))


def time_scales(rng: random.Random, p: ClipParts) -> str:
    which = rng.choice(["timescale", "movie_timescale"])
    setattr(p, which, rng.choice([0, 1, 3, 1 << 31, (1 << 32) - 1]))
    return f"{which} {getattr(p, which)}"


def entry_counts(rng: random.Random, p: ClipParts) -> str:
    kind = rng.choice([b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stco", b"stsd", b"elst"])
    p.counts[kind] = rng.choice(HUGE)
    return f"{kind.decode()} count {p.counts[kind]}"


def sample_to_chunk(rng: random.Random, p: ClipParts) -> str:
    n = rng.randrange(len(p.stsc))
    first, per_chunk, description = p.stsc[n]
    how = rng.choice(["first", "per chunk", "description", "swap", "repeat", "drop", "sawtooth"])
    if how == "sawtooth":  # first chunk 1, last, 1, last, …: each entry once walked every chunk
        p.stsc = [(1, 1, 1), (len(p.chunk_offsets), 1, 1)] * rng.choice([2, 1000, 20_000])
        return f"stsc: sawtooth of {len(p.stsc)} entries"
    if how == "first":
        first = rng.choice([0, 2, first + 1, first - 1, len(p.chunk_offsets) + 1, (1 << 32) - 1])
    elif how == "per chunk":
        per_chunk = rng.choice(HUGE)
    elif how == "description":
        description = rng.choice([0, 2, (1 << 32) - 1])
    elif how in ("swap", "repeat") and n + 1 < len(p.stsc):
        p.stsc[n + 1] = p.stsc[n] if how == "repeat" else p.stsc[n + 1]
        p.stsc[n], p.stsc[n + 1] = p.stsc[n + 1], p.stsc[n]
        return f"stsc entries {n}, {n + 1}: {how}"
    elif how == "drop":
        del p.stsc[n]
        return f"stsc entry {n} dropped"
    p.stsc[n] = (first, per_chunk, description)
    return f"stsc entry {n} = {p.stsc[n]}"


def chunk_offsets(rng: random.Random, p: ClipParts) -> str:
    n = rng.randrange(len(p.chunk_offsets))
    how = rng.choice(
        ["overlap", "earlier", "past the end", "into the index", "huge", "reversed", "none", "more"]
    )
    if how == "overlap" and n:
        p.chunk_offsets[n] = p.chunk_offsets[n - 1] + rng.randrange(1, 4)
    elif how == "earlier":
        p.chunk_offsets[n] = rng.randrange(0, p.chunk_offsets[n] + 1)
    elif how == "past the end":
        p.chunk_offsets[n] = sum(map(len, p.samples)) + rng.randrange(0, 1 << 20)
    elif how == "into the index":
        p.chunk_offsets[n] = -rng.randrange(1, 1000)
    elif how == "huge":
        p.co64 = rng.random() < 0.5
        p.chunk_offsets[n] = rng.choice([1 << 32, 1 << 40, (1 << 63) - 1])
    elif how == "reversed":
        p.chunk_offsets.reverse()
    elif how == "none":
        p.chunk_offsets.clear()
    elif how == "more":
        p.chunk_offsets.extend([p.chunk_offsets[-1]] * rng.randrange(1, 100))
    return f"chunk offsets: {how} at {n}"


def sample_sizes(rng: random.Random, p: ClipParts) -> str:
    sizes = [len(s) for s in p.samples] if p.sizes is None else list(p.sizes)
    how = rng.choice(["zero", "huge", "off by one", "uniform", "count", "all one byte"])
    if how == "uniform":
        p.uniform_size = rng.choice([1, 2, 100, 1 << 26, (1 << 32) - 1])
        return f"stsz: all samples {p.uniform_size} bytes"
    if how == "count":
        p.sample_count = rng.choice([0, 1, len(sizes) + 1, len(sizes) - 1, 1 << 20, (1 << 32) - 1])
        return f"stsz: sample count {p.sample_count}"
    if how == "all one byte":
        p.sizes = [1] * len(sizes)
        return "stsz: every sample one byte"
    n = rng.randrange(len(sizes))
    sizes[n] = {
        "zero": 0,
        "huge": rng.choice([1 << 26, (1 << 32) - 1]),
        "off by one": sizes[n] + rng.choice([-1, 1]),
    }[how]
    p.sizes = sizes
    return f"stsz: sample {n} is {sizes[n]} bytes"


def decode_durations(rng: random.Random, p: ClipParts) -> str:
    how = rng.choice(["zero", "huge", "more samples", "fewer samples", "empty entries"])
    count, delta = p.stts[-1]
    if how == "zero":
        p.stts[rng.randrange(len(p.stts))] = (p.stts[0][0], 0)
    elif how == "huge":
        p.stts = [(c, (1 << 32) - 1) for c, _ in p.stts]
    elif how == "more samples":
        p.stts[-1] = (count + rng.choice([1, 1 << 20, (1 << 32) - count - 1]), delta)
    elif how == "fewer samples":
        p.stts[-1] = (count - 1, delta)
    else:
        p.stts = [(0, 7)] * rng.randrange(1, 10_000) + p.stts
    return f"stts: {how}"


def composition_offsets(rng: random.Random, p: ClipParts) -> str:
    samples = len(p.sizes if p.sizes is not None else p.samples)  # not stts: a change may have made it lie
    how = rng.choice(["huge", "negative", "duplicate", "reordered deep", "missing", "count"])
    ctts = list(p.ctts or [(samples, 0)])
    n = rng.randrange(len(ctts))
    if how == "huge":
        ctts[n] = (ctts[n][0], (1 << 31) - 1)
    elif how == "negative":
        ctts[n] = (ctts[n][0], -(1 << 31))
    elif how == "duplicate":  # the next frame shown at the same time as this one
        ctts = [(1, v) for c, v in ctts for _ in range(c)]
        if n + 1 < len(ctts):
            ctts[n + 1] = (1, ctts[n][1] - p.stts[0][1])
    elif how == "reordered deep":  # the last frame shown first
        ctts = [(1, 512)] * (samples - 1) + [(1, -512 * (samples - 1))]
    elif how == "missing":
        p.ctts = None
        return "ctts removed"
    else:
        ctts[n] = (ctts[n][0] + rng.choice([1, -1, 1 << 31]), ctts[n][1])
    p.ctts = ctts
    return f"ctts: {how} at {n}"


def edit_list(rng: random.Random, p: ClipParts) -> str:
    segment, media_time, rate = p.edit or (p.media_duration() * 1000 // (p.timescale or 1), 0, 0x10000)
    how = rng.choice(["segment", "media time", "rate", "64-bit", "entries"])
    if how == "segment":
        segment = rng.choice([0, 1, segment - 2, segment + 2, (1 << 32) - 1])
    elif how == "media time":
        media_time = rng.choice([-1, 1, media_time + 1, (1 << 31) - 1, p.media_duration()])
    elif how == "rate":
        rate = rng.choice([0, 0x8000, 0x20000])
    elif how == "64-bit":
        p.versions[b"elst"] = 1
    else:
        p.counts[b"elst"] = rng.choice([0, 2, (1 << 32) - 1])
    p.edit = (segment, media_time, rate)
    return f"elst: {how} {p.edit}"


def sample_description(rng: random.Random, p: ClipParts) -> str:
    assert isinstance(p.entry.body, bytes)
    fixed, config = p.entry.body[:78], p.entry.body[78:]
    how = rng.choice(
        ["count", "kind", "no config", "short config", "length size", "short", "reference", "deep"]
    )
    if how == "count":
        p.stsd_count = rng.choice([0, 2, 3])
    elif how == "kind":
        p.entry = Box(rng.choice([b"mp4v", b"\0\xff\x10\x80", b"avc1"[::-1]]), p.entry.body)
    elif how == "no config":
        p.entry = Box(p.entry.kind, fixed)
    elif how == "short config":
        p.entry = Box(p.entry.kind, fixed + Box(b"avcC", b"\x01\x64\x00").encode())
    elif how == "length size" and config[4:8] == b"avcC":  # lengthSizeMinusOne 2: not allowed in H.264
        p.entry = Box(p.entry.kind, fixed + config[:12] + bytes([config[12] & 0xFC | 2]) + config[13:])
    elif how == "short":
        p.entry = Box(p.entry.kind, fixed[: rng.randrange(78)])
    elif how == "reference":
        p.entry = Box(p.entry.kind, fixed[:6] + b"\0\x02" + fixed[8:] + config)
    else:
        p.entry = Box(p.entry.kind, fixed + config + nested(rng.choice([2, 100, 5000])).encode())
    return f"stsd: {how}"


def keyframes(rng: random.Random, p: ClipParts) -> str:
    samples = len(p.sizes if p.sizes is not None else p.samples)  # not stts: a change may have made it lie
    p.stss = rng.choice(
        [[0], [samples + 1], [25, 1], [1, 1, 25], [], [1, (1 << 32) - 1], list(range(1, samples + 2))]
    )
    return f"stss: {p.stss[:4]}"


def dependencies(rng: random.Random, p: ClipParts) -> str:
    samples = len(p.sizes if p.sizes is not None else p.samples)  # not stts: a change may have made it lie
    p.sdtp = bytes(rng.choice([0, samples - 1, samples, samples + 1, 1000]))
    return f"sdtp of {len(p.sdtp)} bytes"


def nesting(rng: random.Random, p: ClipParts) -> str:
    where = rng.choice([b"", b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"])
    depth = rng.choice([2, 64, 1000, 20_000])
    p.extra.setdefault(where, []).append(
        nested(depth, rng.choice([b"udta", b"moov", b"trak", b"stbl", b"free"]))
    )
    return f"{depth} nested boxes in {where.decode() or 'the file'}"


def many_boxes(rng: random.Random, p: ClipParts) -> str:
    where = rng.choice([b"", b"moov", b"trak", b"stbl", b"minf"])
    count = rng.choice([10, 1000, 1025, 50_000])
    p.extra.setdefault(where, []).extend([Box(b"free")] * count)
    return f"{count} empty boxes in {where.decode() or 'the file'}"


def box_sizes(rng: random.Random, p: ClipParts) -> str:
    kind = rng.choice(
        [
            b"moov",
            b"trak",
            b"mdia",
            b"minf",
            b"stbl",
            b"stsd",
            b"stts",
            b"ctts",
            b"stsc",
            b"stsz",
            b"stco",
            b"mvhd",
            b"tkhd",
            b"mdhd",
            b"hdlr",
            b"vmhd",
            b"edts",
            b"elst",
            b"stss",
            b"mdat",
        ]
    )
    size = rng.choice([0, 1, 7, 8, 9, 16, 100, 1 << 20, (1 << 32) - 1])
    if kind == b"mdat":
        p.mdat_size = size
    else:
        p.box_sizes[kind] = size
    return f"{kind.decode()} size field {size}"


def short_boxes(rng: random.Random, p: ClipParts) -> str:
    kind = rng.choice([b"mvhd", b"tkhd", b"mdhd", b"hdlr", b"vmhd", b"sdtp"])
    p.cut[kind] = rng.randrange(0, 40)
    return f"{kind.decode()} cut to {p.cut[kind]} bytes"


def versions(rng: random.Random, p: ClipParts) -> str:
    kind = rng.choice(
        [b"mvhd", b"tkhd", b"mdhd", b"elst", b"ctts", b"stts", b"stsz", b"stco", b"stsc", b"hdlr"]
    )
    p.versions[kind] = rng.choice([1, 2, 255])
    return f"{kind.decode()} version {p.versions[kind]}"


def layout(rng: random.Random, p: ClipParts) -> str:
    how = rng.choice(["two tracks", "sound", "index last", "fragment", "two indexes", "large moov"])
    if how == "two tracks":
        p.tracks = 2
    elif how == "sound":
        p.handler = b"soun"
    elif how == "index last":
        p.index_last = True
    elif how == "fragment":
        p.extra.setdefault(b"", []).append(Box(b"moof", [Box(b"mfhd", bytes(8))]))
    elif how == "two indexes":
        p.extra.setdefault(b"", []).append(Box(b"moov", [Box(b"mvhd", bytes(100))]))
    else:
        p.extra.setdefault(b"", []).append(Box(b"moov", b"", size=1 << 40, large=True))
    return how


CHANGES: list[Change] = [
    time_scales,
    entry_counts,
    sample_to_chunk,
    chunk_offsets,
    sample_sizes,
    decode_durations,
    composition_offsets,
    edit_list,
    sample_description,
    keyframes,
    dependencies,
    nesting,
    many_boxes,
    box_sizes,
    short_boxes,
    versions,
    layout,
]


def outcome(clip: Path, work: Path) -> str:
    """What this module makes of ``clip``: refused (how), or joined with itself into a file it reads back."""
    refused: Exception | None = None
    try:
        track = read_track(clip)
    except (Unsupported, Truncated) as exc:
        refused = exc
    if refused is not None:
        # every malformation has a check of its own: none reaches read_track's last-resort message
        assert not str(refused).startswith("unreadable index"), refused
        return type(refused).__name__
    # what callers divide by (frames per second, seconds) is never 0
    assert track.timescale > 0 and track.movie_timescale > 0 and track.media_duration > 0
    joined = work / "joined.mp4"
    try:
        write_joined([track, track], joined)
    except Corrupt:
        assert not joined.exists()
        return "Corrupt"
    again = read_track(joined)
    assert again.frame_count == 2 * track.frame_count
    # the media is copied at most once per clip; the index is rebuilt no larger than a few times the clip's
    assert joined.stat().st_size <= 4 * clip.stat().st_size + (64 << 10)
    return "joined"


@pytest.mark.slow  # 600 cases: ~3 s
def test_hostile_indexes_get_a_clean_outcome_fast(clips: list[Path], media: Path, tmp_path: Path) -> None:
    """Valid files with adversarial values, 1 to 3 changes each, from three starting points (B-frames and an
    edit; no B-frames; 20 000 one-byte AV1 samples in 100 chunks): each is refused as Unsupported or
    Truncated, or read and joined (or refused as Corrupt) into a file that reads back: never another
    exception, and within a second."""
    rng = random.Random(20261130)
    plain = make_clip(media / "plain.mp4", profile="baseline", seconds=1)  # no B-frames: no ctts, no edit
    starts = {
        "b-frames": clip_parts(clips[1]),
        "plain": clip_parts(plain),
        "tiny": one_byte_samples(20_000, chunks=100),
    }
    outcomes: Counter[str] = Counter()
    slowest = (0.0, "")
    started = time.perf_counter()
    for case in range(600):
        name = rng.choice(list(starts))
        variant = copy.deepcopy(starts[name])
        changes = [change(rng, variant) for change in rng.sample(CHANGES, rng.randint(1, 3))]
        described = f"case {case} ({name}): {'; '.join(changes)}"
        clip = tmp_path / "case.mp4"
        clip.write_bytes(variant.encode())
        begun = time.perf_counter()
        try:
            outcomes[outcome(clip, tmp_path)] += 1
        except Exception as exc:
            raise AssertionError(f"{described}: {type(exc).__name__}: {exc}") from exc
        elapsed = time.perf_counter() - begun
        assert elapsed < 1.0, f"{described}: {elapsed:.2f} s"
        slowest = max(slowest, (elapsed, described))
    assert time.perf_counter() - started < 20
    assert sum(outcomes.values()) == 600
    # every kind of outcome was reached
    assert {"Unsupported", "Truncated", "Corrupt", "joined"} <= set(outcomes), outcomes
