"""Joins single-track MP4 video clips by their sample tables: the index is rebuilt, the media bytes are copied.

ffmpeg's concat demuxer opens and *probes* every clip, decoding a frame of each (~4 ms per 720p clip, more
than copying its 1.5 MB): for 60 clips the join cost ~5× copying the bytes. When every clip can be decoded
with the first one's decoder configuration, nothing needs decoding: this reads each clip's index (a few KB),
concatenates the sample tables (sizes, decode durations, composition offsets, keyframes), writes the index
first and copies the clips' media bytes after it, read and written once (and checked: every H.264/H.265
sample must be NAL units that fill it exactly). The joined track has one edit, so a decoder sees exactly the
sequence of samples the concat demuxer would have written (tested frame by frame and packet by packet).

It is conservative: a clip with more than one track, an edit list that trims the clip or pauses it, frames
shown outside the clip's own time span (before its first or after its last decode time plus the delay),
sample groups, or a decoder configuration that differs from the first clip's is *unsupported*
(``Unsupported`` says why) and the caller joins with ffmpeg instead. A clip whose index promises bytes past
the end of the file is ``Truncated``; one whose media does not match its index is ``Corrupt``.

Clips come from outside (a provider's download), so an index is treated as hostile. Every table is checked
against its box (entry counts × entry sizes = the box), against the other tables (one sample count; chunk
numbers from 1, strictly increasing, each chunk holding at least one sample) and against the file (chunks in
file order inside the media data, not overlapping: a clip's media is copied at most once). The parser reads
a fixed path of boxes (no recursion; at most ``MAX_BOXES`` per level) and keeps the tables as they are
stored (run lengths stay run lengths): memory is linear in the index, time linear in the index plus the
sample count, and the sample count is at most the file's size (every sample takes a byte) and
``MAX_SAMPLES``. Anything else is ``Unsupported`` with the box named; no other exception leaves
``read_track`` for a malformed index.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import operator
import os
import struct
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

#: Visual sample entries whose fixed part (78 bytes after the box header) is the ISO/IEC 14496-12 one.
VISUAL_ENTRIES = {b"avc1", b"avc3", b"hvc1", b"hev1", b"av01", b"vp09"}
#: Entries whose samples are length-prefixed NAL units, and the box holding the prefix's length.
NAL_CONFIG = {b"avc1": b"avcC", b"avc3": b"avcC", b"hvc1": b"hvcC", b"hev1": b"hvcC"}
#: Sample table boxes that are read (others make a clip unsupported); ``cslg`` is derived information.
KNOWN_STBL = {b"stsd", b"stts", b"ctts", b"stss", b"stsc", b"stsz", b"stco", b"co64", b"sdtp", b"cslg"}
#: An index larger than this is not read into memory (a 5-s clip's is ~3 KB; 1 h at 60 fps ~2.6 MB).
MAX_MOOV_BYTES = 64 << 20
#: Samples in one clip, and in one joined video: 4.8 h at 60 fps (a provider's clip has ~120-600).
MAX_SAMPLES = 1 << 20
#: Length of one clip, and of one joined video.
MAX_SECONDS = 24 * 3600
#: Bytes of one sample (the copy reads a sample whole; an intra-coded 4K frame takes a few MB).
MAX_SAMPLE_BYTES = 64 << 20
#: Boxes at the file's top level, and in any one box this reads (a clip's largest has ~10).
MAX_BOXES = 1024
#: How many frames the presentation order may run behind the decode order (H.264/H.265 allow 16).
MAX_REORDER = 64
COPY_CHUNK = 1 << 20

# The body of a full box (after its header) is at least this long, for each version it may have.
MVHD_BODY = {0: 100, 1: 112}
TKHD_BODY = {0: 84, 1: 96}
MDHD_BODY = {0: 24, 1: 36}
HDLR_BODY = {0: 24}
VMHD_BODY = {0: 12}
ELST_ENTRY = {0: 12, 1: 20}
VISUAL_FIXED = 78


class Unsupported(ValueError):
    """The clip is not one this module joins; ffmpeg can still."""


class Corrupt(ValueError):
    """A sample of the clip is not what its index says (its NAL units do not fill it)."""

    def __init__(self, path: Path, sample: int) -> None:
        super().__init__(f"frame {sample}'s data does not match the index")
        self.path = path
        self.sample = sample


class Truncated(ValueError):
    """The clip's index promises more media than the file holds."""

    def __init__(self, readable: int, promised: int) -> None:
        super().__init__(f"{readable} of {promised} frames readable")
        self.readable = readable
        self.promised = promised


@dataclass(frozen=True)
class Run:
    """Consecutive samples stored back to back: one copy, one chunk in the output."""

    offset: int
    length: int
    samples: int


@dataclass(frozen=True)
class Runs:
    """The clip's runs as three tables (a crafted clip may have a run per sample: no object per run)."""

    offsets: array[int]
    lengths: array[int]
    samples: array[int]

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, n: int) -> Run:
        return Run(self.offsets[n], self.lengths[n], self.samples[n])

    def __iter__(self) -> Iterator[Run]:
        return map(Run, self.offsets, self.lengths, self.samples)


@dataclass(frozen=True)
class TrackIndex:
    """What the join needs from one clip's index. Timing tables are kept as stored: (count, value) runs."""

    path: Path
    size_bytes: int
    ftyp: bytes
    movie_timescale: int
    #: mvhd's fields after its duration (rate, volume, matrix, next track id), tkhd's after its duration
    mvhd_tail: bytes
    tkhd_flags: int
    tkhd_tail: bytes
    timescale: int
    language: bytes
    hdlr: bytes
    vmhd: bytes
    #: the sample description, without the ``btrt`` bitrate box (it differs from clip to clip)
    sample_entry: bytes
    #: bytes of each NAL unit's length prefix (H.264, H.265), from the decoder configuration; None: not NAL
    nal_length_size: int | None
    media_time: int
    frame_count: int
    media_duration: int
    #: stts: decode durations, ``duration_counts[n]`` samples of ``durations[n]`` ticks each
    duration_counts: array[int]
    durations: array[int]
    #: ctts (None: none): composition offsets, as run lengths
    offset_counts: array[int] | None
    offsets: array[int] | None
    sync: array[int] | None
    dependencies: bytes | None
    #: stsz: one size per sample, or None when every sample has ``uniform_size`` bytes
    sizes: array[int] | None
    uniform_size: int
    runs: Runs

    def sample_sizes(self) -> array[int]:
        """Every sample's size in bytes (the stored table, or the uniform size repeated)."""
        if self.sizes is not None:
            return self.sizes
        return array("I", [self.uniform_size]) * self.frame_count

    def decoder_fields(self) -> dict[str, object]:
        """What must be equal for clips to share one index: they decode with the same configuration and
        share one timeline layout and display."""
        return {
            "decoder configuration": self.sample_entry,
            "time scale": self.timescale,
            "start delay": self.media_time,
            "display size or rotation": self.display,
        }

    def decoder_key(self) -> tuple[object, ...]:
        return tuple(self.decoder_fields().values())

    @property
    def display(self) -> bytes:
        """How the track is shown: tkhd's transformation matrix (rotation) and width and height."""
        return self.tkhd_tail[16:]


# --- reading -------------------------------------------------------------------------------------------------

Span = tuple[int, int]  # (body start, end) of a box within the index


def _name(kind: bytes) -> str:
    """A box type for a message: printable ASCII, whatever the file holds."""
    return "".join(chr(c) if 32 <= c < 127 else "?" for c in kind)


def _boxes(
    data: bytes | memoryview, start: int = 0, end: int | None = None, where: str = "file"
) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of each box in ``data[start:end]`` (at most ``MAX_BOXES``); a box that
    overruns ``end`` or is shorter than its header is ``Unsupported``, naming ``where`` it is."""
    end = len(data) if end is None else end
    pos, count = start, 0
    while pos < end:
        count += 1
        if count > MAX_BOXES:
            raise Unsupported(f"{where}: more than {MAX_BOXES} boxes")
        if end - pos < 8:
            raise Unsupported(f"{where}: truncated box header")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise Unsupported(f"{where}: truncated box header")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or size > end - pos:
            raise Unsupported(f"{where}: box {_name(kind)} of {size} bytes overruns its parent")
        yield kind, pos + header, pos + size
        pos += size


def _children(data: bytes, span: Span, where: str) -> dict[bytes, list[Span]]:
    found: dict[bytes, list[Span]] = {}
    for kind, body, stop in _boxes(data, *span, where):
        found.setdefault(kind, []).append((body, stop))
    return found


def _one(boxes: dict[bytes, list[Span]], kind: bytes, where: str) -> Span:
    found = boxes.get(kind, [])
    if len(found) != 1:
        raise Unsupported(f"{where}: {len(found)} {_name(kind)} boxes")
    return found[0]


def _optional(boxes: dict[bytes, list[Span]], kind: bytes, where: str) -> Span | None:
    return _one(boxes, kind, where) if kind in boxes else None


def _full_box(data: bytes, span: Span, where: str, lengths: dict[int, int]) -> tuple[int, int]:
    """(version, flags) of a full box whose body must be at least ``lengths[version]`` bytes."""
    body, end = span
    if end - body < 4:
        raise Unsupported(f"{where}: box too short")
    (word,) = struct.unpack_from(">I", data, body)
    version, flags = word >> 24, word & 0xFFFFFF
    if version not in lengths:
        raise Unsupported(f"{where}: version {version}")
    if end - body < lengths[version]:
        raise Unsupported(f"{where}: {end - body} bytes, version {version} needs {lengths[version]}")
    return version, flags


def _big_endian(data: bytes, start: int, count: int, code: str) -> array[int]:
    """``count`` big-endian integers at ``start`` (the caller has checked that they lie inside their box)."""
    table = array(code)
    table.frombytes(memoryview(data)[start : start + count * table.itemsize])  # no copy of the bytes first
    if sys.byteorder == "little":
        table.byteswap()
    return table


def _read_table(
    data: bytes,
    span: Span,
    where: str,
    code: str,
    columns: int = 1,
    header: int = 0,
    versions: tuple[int, ...] = (0,),
) -> array[int]:
    """A table box (full box, ``header`` more bytes, an entry count, entries of ``columns`` × ``code``): its
    entries, flat. The box must be exactly as long as its entry count says."""
    body, end = span
    _full_box(data, span, where, dict.fromkeys(versions, 8 + header))
    (count,) = struct.unpack_from(">I", data, body + 4 + header)
    entry = columns * array(code).itemsize
    if end - body != 8 + header + count * entry:
        raise Unsupported(f"{where}: {count} entries in a box of {end - body - 8 - header} bytes")
    return _big_endian(data, body + 8 + header, count * columns, code)


def _top_level(path: Path, size: int) -> tuple[bytes, bytes, list[Span]]:
    """The ``ftyp`` box, the ``moov`` box and the media data (the body and end of each ``mdat``; an end may
    lie past the end of a truncated file) of a file of ``size`` bytes, read without reading its media."""
    ftyp = moov = None
    mdats: list[Span] = []
    with path.open("rb") as f:
        pos, count = 0, 0
        while pos + 8 <= size:
            count += 1
            if count > MAX_BOXES:
                raise Unsupported(f"more than {MAX_BOXES} top-level boxes")
            f.seek(pos)
            head = f.read(16)
            box_size, kind = struct.unpack_from(">I4s", head)
            header = 8
            if box_size == 1 and len(head) == 16:
                (box_size,) = struct.unpack_from(">Q", head, 8)
                header = 16
            elif box_size == 0:
                box_size = size - pos
            if box_size < header:
                raise Unsupported(f"corrupt box {_name(kind)} at byte {pos}")
            if kind in (b"moof", b"mvex"):
                raise Unsupported("fragmented MP4")
            if kind == b"mdat":
                mdats.append((pos + header, pos + box_size))
            if kind in (b"ftyp", b"moov"):
                if (ftyp if kind == b"ftyp" else moov) is not None:
                    raise Unsupported(f"two {kind.decode()} boxes")
                if box_size > MAX_MOOV_BYTES:
                    raise Unsupported(f"{kind.decode()} of {box_size} bytes")
                f.seek(pos)
                box = f.read(box_size)
                if len(box) < box_size:
                    raise Unsupported(f"{kind.decode()} cut short")
                if kind == b"ftyp":
                    ftyp = box
                elif header == 8:
                    moov = box
                else:  # the 64-bit size form: rewritten with a 32-bit size, so its body starts at byte 8
                    moov = struct.pack(">I4s", box_size - 8, b"moov") + box[16:]
            pos += box_size
    if moov is None:
        raise Unsupported("no index (moov box)")
    return ftyp or b"", moov, mdats


def _sample_entry(data: bytes, stsd: Span) -> tuple[bytes, int | None]:
    """The sample description (without ``btrt``) and its NAL units' length prefix size (None: not NAL)."""
    body, end = stsd
    _full_box(data, stsd, "stsd", {0: 8})
    (count,) = struct.unpack_from(">I", data, body + 4)
    if count != 1:
        raise Unsupported(f"stsd: {count} sample descriptions")
    entries = list(itertools.islice(_boxes(data, body + 8, end, "stsd"), 2))
    if len(entries) != 1:
        raise Unsupported(f"stsd: {len(entries)} boxes for 1 sample description")
    kind, entry_body, entry_end = entries[0]
    if kind not in VISUAL_ENTRIES:
        raise Unsupported(f"sample entry {_name(kind)}")
    if entry_end - entry_body < VISUAL_FIXED:
        raise Unsupported(f"stsd/{kind.decode()}: {entry_end - entry_body} bytes, needs {VISUAL_FIXED}")
    fixed = data[entry_body : entry_body + VISUAL_FIXED]
    (reference,) = struct.unpack_from(">H", fixed, 6)
    if reference != 1:
        raise Unsupported("sample entry refers to another data reference")
    where = f"stsd/{kind.decode()}"
    children = list(_boxes(data, entry_body + VISUAL_FIXED, entry_end, where))
    length_size = None
    if kind in NAL_CONFIG:
        config = NAL_CONFIG[kind]
        found = [(child_body, child_end) for child, child_body, child_end in children if child == config]
        if len(found) != 1:
            raise Unsupported(f"{where}: {len(found)} {config.decode()} boxes")
        # lengthSizeMinusOne: the low 2 bits of avcC's 5th byte, of hvcC's 22nd
        at = found[0][0] + (4 if config == b"avcC" else 21)
        if at >= found[0][1]:
            raise Unsupported(f"{where}/{config.decode()}: too short")
        length_size = (data[at] & 3) + 1
        if length_size == 3:
            raise Unsupported(f"{where}/{config.decode()}: NAL length size 3")
    kept = b"".join(
        data[child_body - 8 : child_end] for child, child_body, child_end in children if child != b"btrt"
    )
    payload = fixed + kept
    return struct.pack(">I4s", 8 + len(payload), kind) + payload, length_size


def _edit(data: bytes, edts: Span | None, movie_timescale: int, timescale: int, total: int) -> int:
    """The media time the clip's presentation starts at; its one edit must show all of the media."""
    if edts is None:
        return 0
    elst = _one(_children(data, edts, "edts"), b"elst", "edts")
    version, _ = _full_box(data, elst, "elst", {0: 8, 1: 8})
    body, end = elst
    (count,) = struct.unpack_from(">I", data, body + 4)
    if count != 1:
        raise Unsupported(f"edit list with {count} entries")
    if end - body != 8 + ELST_ENTRY[version]:
        raise Unsupported(f"elst: 1 entry in a box of {end - body - 8} bytes")
    if version == 1:
        segment, media_time, rate = struct.unpack_from(">QqI", data, body + 8)
    else:
        segment, media_time, rate = struct.unpack_from(">IiI", data, body + 8)
    if media_time < 0 or rate != 0x10000:
        raise Unsupported("edit list with an empty edit or a rate change")
    if abs(segment - round(Fraction(total * movie_timescale, timescale))) > 1:
        raise Unsupported("edit list trims the clip")
    return int(media_time)


def _run_lengths_of(
    data: bytes, span: Span, where: str, samples: int, signed: bool = False
) -> tuple[array[int], array[int]]:
    """A (count, value) table (stts, ctts) as its counts and its values (``signed``: ctts, read the way
    ffmpeg reads both versions); its counts must add up to ``samples``."""
    pairs = _read_table(data, span, where, "I", columns=2, versions=(0, 1) if signed else (0,))
    counts, values = pairs[0::2], pairs[1::2]
    if sum(counts) != samples:
        raise Unsupported(f"{where}: {sum(counts)} samples, stsz has {samples}")
    return counts, array("i", values.tobytes()) if signed else values


def _per_sample(counts: array[int], values: array[int]) -> Iterator[int]:
    return itertools.chain.from_iterable(map(itertools.repeat, values, counts))


def _through_window(times: Iterator[int]) -> Iterator[int]:
    """``times`` sorted through a window of ``MAX_REORDER``: sorted if none is further than that from its
    place (memory: the window, whatever the clip's length)."""
    window = list(itertools.islice(times, MAX_REORDER))
    heapq.heapify(window)
    for time in times:
        yield heapq.heappushpop(window, time)
    while window:
        yield heapq.heappop(window)


def _check_presentation(
    media_time: int,
    total: int,
    samples: int,
    duration_counts: array[int],
    durations: array[int],
    offset_counts: array[int] | None,
    offsets: array[int] | None,
) -> None:
    """Every frame is shown once, inside the clip's own span [start delay, start delay + duration): the
    presentation times must come out of ``_through_window`` strictly increasing from the start delay (a frame
    reordered deeper than ``MAX_REORDER`` is refused too: no decoder allows that)."""
    if offsets is None or offset_counts is None:
        # shown when decoded, from 0: in order, once each and inside the span iff every frame lasts a tick
        zero = any(count and not duration for count, duration in zip(duration_counts, durations, strict=True))
        if media_time != 0 or zero:
            raise Unsupported("frames shown outside the clip's own time span, or twice")
        return
    starts = itertools.accumulate(_per_sample(duration_counts, durations), initial=0)
    shown = map(operator.add, itertools.islice(starts, samples), _per_sample(offset_counts, offsets))
    ordered = _through_window(shown)
    previous = next(ordered)
    if previous != media_time:
        raise Unsupported("frames shown outside the clip's own time span")
    for time in ordered:
        if time <= previous:
            raise Unsupported("frames shown twice, or reordered deeper than a decoder allows")
        previous = time
    if previous >= media_time + total:
        raise Unsupported("frames shown outside the clip's own time span")


def _runs(
    data: bytes,
    stsc: Span,
    chunk_offsets: array[int],
    sizes: array[int] | None,
    uniform: int,
    samples: int,
    file_size: int,
    mdats: list[Span],
) -> Runs:
    """The clip's media as runs of samples stored back to back, in file order. The sample-to-chunk table
    must number its chunks from 1, strictly increasing, each chunk holding a sample or more, all chunks
    together holding exactly the clip's samples; the chunks must follow one another in the file without
    overlapping, inside the media data (a clip's bytes are copied at most once)."""
    table = _read_table(data, stsc, "stsc", "I", columns=3)
    firsts, per_chunk, descriptions = table[0::3], table[1::3], table[2::3]
    chunks = len(chunk_offsets)
    if not firsts:
        raise Unsupported("stsc: no entries")
    if firsts[0] != 1:
        raise Unsupported(f"stsc: first chunk {firsts[0]} (chunks are numbered from 1)")
    if not all(map(operator.lt, firsts, itertools.islice(firsts, 1, None))):
        raise Unsupported("stsc: chunk numbers not strictly increasing")
    if firsts[-1] > chunks:
        raise Unsupported(f"stsc: names chunk {firsts[-1]} of {chunks}")
    if min(per_chunk) == 0:
        raise Unsupported("stsc: a chunk of 0 samples")
    if any(description != 1 for description in descriptions):
        raise Unsupported("samples refer to another sample description")
    ends = array("Q", itertools.islice(firsts, 1, None))
    ends.append(chunks + 1)
    held = sum(map(operator.mul, map(operator.sub, ends, firsts), per_chunk))
    if held != samples:
        raise Unsupported(f"chunks hold {held} samples, stsz has {samples}")

    run_offsets, run_lengths, run_samples = array("Q"), array("Q"), array("I")
    sample = previous_end = mdat = 0
    view = memoryview(sizes if sizes is not None else b"")  # slices of it are not copies
    for first, end, count in zip(firsts, ends, per_chunk, strict=True):
        for chunk in range(first - 1, end - 1):
            offset = chunk_offsets[chunk]
            length = count * uniform if sizes is None else sum(view[sample : sample + count])
            if offset < previous_end:
                raise Unsupported(
                    f"chunk {chunk + 1} overlaps the one before it or comes before it in the file"
                )
            if offset + length > file_size:
                readable = sample
                for size in (
                    itertools.repeat(uniform, count) if sizes is None else view[sample : sample + count]
                ):
                    if offset + size > file_size:
                        break
                    offset += size
                    readable += 1
                raise Truncated(readable, samples)
            while mdat < len(mdats) and mdats[mdat][1] <= offset:
                mdat += 1
            if mdat == len(mdats) or not mdats[mdat][0] <= offset <= offset + length <= mdats[mdat][1]:
                raise Unsupported(f"chunk {chunk + 1} lies outside the media data (mdat)")
            if run_offsets and offset == previous_end:
                run_lengths[-1] += length
                run_samples[-1] += count
            else:
                run_offsets.append(offset)
                run_lengths.append(length)
                run_samples.append(count)
            previous_end = offset + length
            sample += count
    return Runs(run_offsets, run_lengths, run_samples)


def read_track(path: Path) -> TrackIndex:
    """Read a clip's index; raises ``Unsupported`` or ``Truncated`` (see the module docstring), or
    ``OSError`` if the file cannot be read."""
    try:
        return _read_track(path)
    except (Unsupported, Truncated):
        raise
    except (struct.error, IndexError, ValueError, ZeroDivisionError, OverflowError) as exc:
        # not reached by any index the tests build: every check comes first; this names a hole in them
        raise Unsupported(f"unreadable index ({type(exc).__name__}: {exc})") from None


def _read_track(path: Path) -> TrackIndex:
    file_size = path.stat().st_size
    ftyp, data, mdats = _top_level(path, file_size)
    moov = _children(data, (8, len(data)), "moov")
    if b"mvex" in moov:
        raise Unsupported("fragmented MP4")
    traks = moov.get(b"trak", [])
    if len(traks) != 1:
        raise Unsupported(f"{len(traks)} tracks")
    movie_timescale, mvhd_tail = _movie_header(data, _one(moov, b"mvhd", "moov"))
    trak = _children(data, traks[0], "trak")
    tkhd_flags, tkhd_tail = _track_header(data, _one(trak, b"tkhd", "trak"))
    mdia = _children(data, _one(trak, b"mdia", "trak"), "mdia")
    timescale, language = _media_header(data, _one(mdia, b"mdhd", "mdia"))
    if movie_timescale == 0 or timescale == 0:
        raise Unsupported(f"{'mvhd' if movie_timescale == 0 else 'mdhd'}: time scale 0")
    hdlr, vmhd, stbl = _video_media(data, mdia)
    sample_entry, nal_length_size = _sample_entry(data, _one(stbl, b"stsd", "stbl"))
    count, uniform, sizes = _sample_sizes(data, _one(stbl, b"stsz", "stbl"), file_size)

    duration_counts, durations = _run_lengths_of(data, _one(stbl, b"stts", "stbl"), "stts", count)
    total = sum(map(operator.mul, duration_counts, durations))
    if total > MAX_SECONDS * timescale:
        raise Unsupported(f"stts: {total} ticks of 1/{timescale} s")
    ctts = _optional(stbl, b"ctts", "stbl")
    offset_counts, offsets = _run_lengths_of(data, ctts, "ctts", count, signed=True) if ctts else (None, None)
    sync = _sync_samples(data, _optional(stbl, b"stss", "stbl"), count)
    dependencies = _dependencies(data, _optional(stbl, b"sdtp", "stbl"), count)
    chunk_offsets = _chunk_offsets_of(data, stbl, count)
    runs = _runs(data, _one(stbl, b"stsc", "stbl"), chunk_offsets, sizes, uniform, count, file_size, mdats)

    media_time = _edit(data, _optional(trak, b"edts", "trak"), movie_timescale, timescale, total)
    _check_presentation(media_time, total, count, duration_counts, durations, offset_counts, offsets)
    return TrackIndex(
        path=path,
        size_bytes=file_size,
        ftyp=ftyp,
        movie_timescale=movie_timescale,
        mvhd_tail=mvhd_tail,
        tkhd_flags=tkhd_flags,
        tkhd_tail=tkhd_tail,
        timescale=timescale,
        language=language,
        hdlr=hdlr,
        vmhd=vmhd,
        sample_entry=sample_entry,
        nal_length_size=nal_length_size,
        media_time=media_time,
        frame_count=count,
        media_duration=total,
        duration_counts=duration_counts,
        durations=durations,
        offset_counts=offset_counts,
        offsets=offsets,
        sync=sync,
        dependencies=dependencies,
        sizes=sizes,
        uniform_size=uniform,
        runs=runs,
    )


def _movie_header(data: bytes, mvhd: Span) -> tuple[int, bytes]:
    """mvhd: the movie's time scale and its fields after the duration."""
    version, _ = _full_box(data, mvhd, "mvhd", MVHD_BODY)
    at = mvhd[0] + (20 if version == 1 else 12)
    (movie_timescale,) = struct.unpack_from(">I", data, at)
    tail = at + (12 if version == 1 else 8)
    return movie_timescale, data[tail : tail + 80]


def _track_header(data: bytes, tkhd: Span) -> tuple[int, bytes]:
    """tkhd: its flags and its fields after the duration."""
    version, flags = _full_box(data, tkhd, "tkhd", TKHD_BODY)
    tail = tkhd[0] + (36 if version == 1 else 24)
    return flags, data[tail : tail + 60]


def _media_header(data: bytes, mdhd: Span) -> tuple[int, bytes]:
    """mdhd: the track's time scale and its packed language."""
    version, _ = _full_box(data, mdhd, "mdhd", MDHD_BODY)
    at = mdhd[0] + (20 if version == 1 else 12)
    (timescale,) = struct.unpack_from(">I", data, at)
    tail = at + (12 if version == 1 else 8)
    return timescale, data[tail : tail + 2]


def _video_media(data: bytes, mdia: dict[bytes, list[Span]]) -> tuple[bytes, bytes, dict[bytes, list[Span]]]:
    """The video track's hdlr and vmhd boxes (whole, as they are written back) and its sample table's boxes,
    every one of them a kind this module reads."""
    hdlr = _one(mdia, b"hdlr", "mdia")
    _full_box(data, hdlr, "hdlr", HDLR_BODY)
    if data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
        raise Unsupported("not a video track")
    minf = _children(data, _one(mdia, b"minf", "mdia"), "minf")
    vmhd = _one(minf, b"vmhd", "minf")
    _full_box(data, vmhd, "vmhd", VMHD_BODY)
    stbl = _children(data, _one(minf, b"stbl", "minf"), "stbl")
    unknown = sorted(_name(kind) for kind in stbl if kind not in KNOWN_STBL)
    if unknown:
        raise Unsupported(f"sample table has {', '.join(unknown)}")
    return data[hdlr[0] - 8 : hdlr[1]], data[vmhd[0] - 8 : vmhd[1]], stbl


def _sample_sizes(data: bytes, stsz: Span, file_size: int) -> tuple[int, int, array[int] | None]:
    """stsz: (sample count, the size of every sample or 0, the sizes one by one or None)."""
    _full_box(data, stsz, "stsz", {0: 12})
    uniform, count = struct.unpack_from(">II", data, stsz[0] + 4)
    if count == 0:
        raise Unsupported("stsz: no samples")
    if count > file_size:  # every sample takes a byte or more
        raise Unsupported(f"index promises {count} samples in {file_size} bytes")
    if count > MAX_SAMPLES:
        raise Unsupported(f"{count} samples, more than {MAX_SAMPLES}")
    sizes = None
    if uniform:
        if stsz[1] - stsz[0] != 12:
            raise Unsupported(f"stsz: one size for all samples in a box of {stsz[1] - stsz[0]} bytes")
        smallest = largest = uniform
    else:
        sizes = _read_table(data, stsz, "stsz", "I", header=4)
        smallest, largest = min(sizes), max(sizes)
    if smallest == 0:
        raise Unsupported("stsz: a sample of 0 bytes")
    if largest > MAX_SAMPLE_BYTES:
        raise Unsupported(f"stsz: a sample of {largest} bytes")
    return count, uniform, sizes


def _sync_samples(data: bytes, stss: Span | None, count: int) -> array[int] | None:
    """stss: the keyframes' sample numbers (None: every sample is one)."""
    if stss is None:
        return None
    sync = _read_table(data, stss, "stss", "I")
    if sync and (
        sync[0] < 1 or sync[-1] > count or not all(map(operator.lt, sync, itertools.islice(sync, 1, None)))
    ):
        raise Unsupported("stss: keyframe numbers not increasing within 1..samples")
    return sync


def _dependencies(data: bytes, sdtp: Span | None, count: int) -> bytes | None:
    """sdtp: one byte of sample dependencies per sample (None: no such box)."""
    if sdtp is None:
        return None
    _full_box(data, sdtp, "sdtp", {0: 4})
    dependencies = data[sdtp[0] + 4 : sdtp[1]]
    if len(dependencies) != count:
        raise Unsupported("sdtp disagrees on the sample count")
    return dependencies


def _chunk_offsets_of(data: bytes, stbl: dict[bytes, list[Span]], count: int) -> array[int]:
    """stco or co64 (exactly one of them): where each chunk starts in the file."""
    if (b"co64" in stbl) == (b"stco" in stbl):
        raise Unsupported("stbl: needs one of stco and co64")
    wide = b"co64" in stbl
    chunk_offsets = _read_table(
        data,
        _one(stbl, b"co64" if wide else b"stco", "stbl"),
        "co64" if wide else "stco",
        "Q" if wide else "I",
    )
    if len(chunk_offsets) > count:
        raise Unsupported(f"{len(chunk_offsets)} chunks for {count} samples")
    return chunk_offsets


def mismatch(tracks: list[TrackIndex]) -> str | None:
    """Why these clips cannot be joined by their tables (None: they can)."""
    if not tracks:
        return "no clips"
    first = tracks[0].decoder_fields()
    for position, track in enumerate(tracks[1:], start=2):
        differs = [what for what, value in track.decoder_fields().items() if value != first[what]]
        if differs:
            return f"clip {position} ({track.path.name}) has another {' and '.join(differs)} than clip 1"
    samples = sum(track.frame_count for track in tracks)
    if samples > MAX_SAMPLES:
        return f"the clips hold {samples} frames together, more than {MAX_SAMPLES}"
    if sum(track.media_duration for track in tracks) > MAX_SECONDS * tracks[0].timescale:
        return f"the clips last more than {MAX_SECONDS} s together"
    return None


# --- writing -------------------------------------------------------------------------------------------------


def _box(kind: bytes, *parts: bytes) -> bytes:
    payload = b"".join(parts)
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _full(kind: bytes, version: int, flags: int, *parts: bytes) -> bytes:
    return _box(kind, struct.pack(">I", version << 24 | flags), *parts)


def _table(values: array[int]) -> bytes:
    table = array(values.typecode, values)
    if sys.byteorder == "little":
        table.byteswap()
    return table.tobytes()


def _run_lengths(values: array[int], signed: bool = False) -> tuple[int, bytes]:
    """A per-sample table as (count, value) entries, big-endian: (entry count, bytes)."""
    pairs: array[int] = array("i" if signed else "I")
    count, previous = 0, 0
    for value in values:
        if count and value == previous:
            count += 1
            continue
        if count:
            pairs.extend((count, previous))
        count, previous = 1, value
    if count:
        pairs.extend((count, previous))
    return len(pairs) // 2, _table(pairs)


def _version(*values: int) -> int:
    """A full box with durations: version 0 (32-bit fields) when every value fits, else version 1."""
    return 0 if all(value < 1 << 32 for value in values) else 1


def _times(version: int) -> bytes:
    """Creation and modification time, both 0 (unknown), as ffmpeg writes them without metadata."""
    return bytes(16 if version else 8)


def _chunk_offsets(offsets: array[int]) -> bytes:
    if offsets and offsets[-1] >= 1 << 32:
        return _full(b"co64", 0, 0, struct.pack(">I", len(offsets)), _table(array("Q", offsets)))
    return _full(b"stco", 0, 0, struct.pack(">I", len(offsets)), _table(array("I", offsets)))


def _stts(durations: array[int]) -> bytes:
    entries, table = _run_lengths(durations)
    return _full(b"stts", 0, 0, struct.pack(">I", entries), table)


def _mdhd(timescale: int, duration: int, language: bytes) -> bytes:
    version = _version(duration)
    wide = "Q" if version else "I"
    return _full(
        b"mdhd", version, 0, _times(version), struct.pack(">I" + wide, timescale, duration), language, b"\0\0"
    )


def _tkhd(flags: int, track_id: int, duration: int, tail: bytes) -> bytes:
    version = _version(duration)
    wide = "Q" if version else "I"
    return _full(
        b"tkhd", version, flags, _times(version), struct.pack(">II" + wide, track_id, 0, duration), tail
    )


DINF = _box(b"dinf", _full(b"dref", 0, 0, struct.pack(">I", 1), _full(b"url ", 0, 1)))


def _merged_runs(tables: list[tuple[array[int], array[int]]], code: str) -> tuple[int, bytes]:
    """(count, value) tables one after the other as one, adjacent runs of one value merged (what
    ``_run_lengths`` makes of the values one per sample): (entry count, big-endian entries)."""
    pairs: array[int] = array(code)
    count, previous = 0, 0
    for counts, values in tables:
        for n, value in zip(counts, values, strict=True):
            if not n:
                continue
            if count and value == previous:
                count += n
                continue
            if count:
                pairs.extend((count, previous))
            count, previous = n, value
    if count:
        pairs.extend((count, previous))
    return len(pairs) // 2, _table(pairs)


def _video_trak(tracks: list[TrackIndex], data_start: int) -> tuple[bytes, int, int]:
    """The joined video track, its presentation duration (movie time scale) and its media's length in bytes."""
    first = tracks[0]
    samples = sum(track.frame_count for track in tracks)
    sync: array[int] = array("I")
    dependencies = (
        [t.dependencies for t in tracks] if all(t.dependencies is not None for t in tracks) else None
    )
    chunk_samples: array[int] = array("I")
    chunk_offsets: array[int] = array("Q")
    position = data_start
    base = 0
    for track in tracks:
        if track.sync is None:
            sync.extend(range(base + 1, base + track.frame_count + 1))
        else:
            sync.extend(base + n for n in track.sync)
        base += track.frame_count
        chunk_samples.extend(track.runs.samples)
        starts = array("Q", itertools.accumulate(track.runs.lengths, initial=position))
        position = starts.pop()
        chunk_offsets.extend(starts)
    media = sum(track.media_duration for track in tracks)
    shown = round(media * first.movie_timescale / first.timescale)

    entries, table = _merged_runs([(t.duration_counts, t.durations) for t in tracks], "I")
    parts = [
        _full(b"stsd", 0, 0, struct.pack(">I", 1), first.sample_entry),
        _full(b"stts", 0, 0, struct.pack(">I", entries), table),
    ]
    if len(sync) < samples:
        parts.append(_full(b"stss", 0, 0, struct.pack(">I", len(sync)), _table(sync)))
    composition = [
        (t.offset_counts, t.offsets)
        if t.offset_counts is not None and t.offsets is not None
        else (array("I", [t.frame_count]), array("i", [0]))
        for t in tracks
    ]
    shifts = [value for counts, values in composition for n, value in zip(counts, values, strict=True) if n]
    if any(shifts):
        entries, table = _merged_runs(composition, "i")
        parts.append(_full(b"ctts", 1 if min(shifts) < 0 else 0, 0, struct.pack(">I", entries), table))
    stsc = array("I")
    for chunk, count in enumerate(chunk_samples, start=1):
        if chunk == 1 or chunk_samples[chunk - 2] != count:
            stsc.extend((chunk, count, 1))
    parts.append(_full(b"stsc", 0, 0, struct.pack(">I", len(stsc) // 3), _table(stsc)))
    uniform = {track.uniform_size for track in tracks}
    if len(uniform) == 1 and 0 not in uniform:  # one size for every sample (no table of them)
        parts.append(_full(b"stsz", 0, 0, struct.pack(">II", first.uniform_size, samples)))
    else:
        sizes: array[int] = array("I")
        for track in tracks:
            sizes.extend(track.sample_sizes())
        parts.append(_full(b"stsz", 0, 0, struct.pack(">II", 0, samples), _table(sizes)))
    parts.append(_chunk_offsets(chunk_offsets))
    if dependencies is not None:
        parts.append(_full(b"sdtp", 0, 0, b"".join(d or b"" for d in dependencies)))

    mdia = _box(
        b"mdia",
        _mdhd(first.timescale, media, first.language),
        first.hdlr,
        _box(b"minf", first.vmhd, DINF, _box(b"stbl", *parts)),
    )
    trak = [_tkhd(first.tkhd_flags, 1, shown, first.tkhd_tail)]
    if first.media_time:
        version = 1 if shown >= 1 << 32 or first.media_time >= 1 << 31 else 0
        entry = struct.pack(">QqI" if version else ">IiI", shown, first.media_time, 0x10000)
        trak.append(_box(b"edts", _full(b"elst", version, 0, struct.pack(">I", 1), entry)))
    trak.append(mdia)
    return _box(b"trak", *trak), shown, position - data_start


#: The timed-text (``tx3g``) sample description ffmpeg's ``mov_text`` encoder writes by default (players
#: style captions their own way): centred at the bottom, white 16-px text, one font ("Arial").
TX3G_ENTRY = _box(
    b"tx3g",
    bytes(6),
    struct.pack(">H", 1),  # data reference
    bytes.fromhex("0000000001ff000000ff00000000000000000000000000010010ffffffff"),
    _box(b"ftab", struct.pack(">HHB", 1, 1, 5), b"Arial"),
)
#: tkhd after its duration for a captions track: alternate group 3 (as ffmpeg), no volume, no size.
TEXT_TKHD_TAIL = (
    bytes(8)
    + struct.pack(">hhhh", 0, 3, 0, 0)
    + bytes.fromhex("000100000000000000000000000000000001000000000000000000000000000040000000")
    + bytes(8)
)
SUBTITLE_HANDLER = _full(b"hdlr", 0, 0, bytes(4), b"sbtl", bytes(12), b"SubtitleHandler\0")
UNDETERMINED = struct.pack(">H", 0x55C4)  # ISO 639-2 "und", packed


@dataclass(frozen=True)
class Captions:
    """A timed-text track: its samples (gaps are empty samples) in the video's time scale."""

    durations: array[int]
    samples: list[bytes]

    @classmethod
    def of(cls, cues: list[tuple[float, float, str]], timescale: int, end: int) -> Captions:
        """``cues`` are (start s, end s, text), in order, not overlapping; the track lasts until ``end`` ticks."""
        durations: array[int] = array("I")
        samples = []
        now = 0
        for start_s, end_s, text in cues:
            start, stop = round(start_s * timescale), round(end_s * timescale)
            if start < now or stop <= start:
                raise ValueError(f"caption {text[:20]!r} overlaps the one before or is empty")
            if start > now:
                durations.append(start - now)
                samples.append(b"\0\0")
            encoded = text.encode()
            durations.append(stop - start)
            samples.append(struct.pack(">H", len(encoded)) + encoded)
            now = stop
        if now < end:
            durations.append(end - now)
            samples.append(b"\0\0")
        return cls(durations, samples)

    def trak(self, timescale: int, shown: int, data_start: int) -> bytes:
        stbl = _box(
            b"stbl",
            _full(b"stsd", 0, 0, struct.pack(">I", 1), TX3G_ENTRY),
            _stts(self.durations),
            _full(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, len(self.samples), 1)),
            _full(
                b"stsz",
                0,
                0,
                struct.pack(">II", 0, len(self.samples)),
                _table(array("I", map(len, self.samples))),
            ),
            _chunk_offsets(array("Q", [data_start])),
        )
        minf = _box(b"minf", _full(b"nmhd", 0, 0), DINF, stbl)
        mdia = _box(b"mdia", _mdhd(timescale, sum(self.durations), UNDETERMINED), SUBTITLE_HANDLER, minf)
        return _box(b"trak", _tkhd(3, 2, shown, TEXT_TKHD_TAIL), mdia)


def _moov(tracks: list[TrackIndex], data_start: int, captions: Captions | None = None) -> bytes:
    first = tracks[0]
    video, shown, media = _video_trak(tracks, data_start)
    traks = [video]
    if captions is not None:
        traks.append(captions.trak(first.timescale, shown, data_start + media))
    version = _version(shown)
    mvhd = _full(
        b"mvhd",
        version,
        0,
        _times(version),
        struct.pack(">I" + ("Q" if version else "I"), first.movie_timescale, shown),
        first.mvhd_tail[:76],
        struct.pack(">I", len(traks) + 1),  # the next track id
    )
    return _box(b"moov", mvhd, *traks)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _nal_units_fill(sample: memoryview, length_size: int) -> bool:
    """The sample is a sequence of length-prefixed NAL units that ends exactly at its end."""
    position, size = 0, len(sample)
    while position < size:
        start = position + length_size
        length = int.from_bytes(sample[position:start], "big")
        if length == 0 or start + length > size or sample[start] & 0x80:  # forbidden_zero_bit
            return False
        position = start + length
    return True


def _copy_media(source: int, dest: int, track: TrackIndex) -> None:
    """Copy the track's samples to the current position of ``dest`` (whole samples, ~1 MiB at a time: plain
    reads and writes, as ``copy_file_range`` measured 1.2× slower on ext4), checking that each H.264/H.265
    sample is made of NAL units as its size says (catches zeroed, shifted or overwritten media)."""
    length_size = track.nal_length_size
    sizes = track.sample_sizes()
    sample = 0
    for offset, samples in zip(track.runs.offsets, track.runs.samples, strict=True):
        last = sample + samples
        while sample < last:
            first, span = sample, 0
            while sample < last and (span == 0 or span + sizes[sample] <= COPY_CHUNK):
                span += sizes[sample]
                sample += 1
            block = os.pread(source, span, offset)
            if len(block) < span:
                raise OSError(errno.EIO, f"{track.path.name} is shorter than its index")
            if length_size:
                view, position = memoryview(block), 0
                for number in range(first, sample):
                    size = sizes[number]
                    if not _nal_units_fill(view[position : position + size], length_size):
                        raise Corrupt(track.path, number + 1)
                    position += size
            _write(dest, block)
            offset += span


def write_joined(
    tracks: list[TrackIndex], dest: Path, *, captions: list[tuple[float, float, str]] | None = None
) -> None:
    """Write ``tracks`` (joinable: ``mismatch`` is None) one after the other to ``dest``, index first; with
    ``captions`` (start s, end s, text; in order, not overlapping) as a timed-text track."""
    reason = mismatch(tracks)
    if reason is not None:
        raise Unsupported(reason)
    first = tracks[0]
    text = None
    if captions:
        end = sum(track.media_duration for track in tracks)
        text = Captions.of(captions, first.timescale, end)
    ftyp = first.ftyp or _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isomiso2mp41")
    media = sum(sum(track.runs.lengths) for track in tracks)
    media += sum(map(len, text.samples)) if text else 0
    large = media + 8 >= 1 << 32
    mdat_header = (
        struct.pack(">I4sQ", 1, b"mdat", media + 16) if large else struct.pack(">I4s", media + 8, b"mdat")
    )
    # the index's size does not depend on the offsets' values, only on whether they need 64 bits
    draft = _moov(tracks, len(ftyp) + len(mdat_header), text)
    moov = _moov(tracks, len(ftyp) + len(draft) + len(mdat_header), text)
    if len(moov) != len(draft):  # the offsets crossed 4 GiB: co64 instead of stco
        moov = _moov(tracks, len(ftyp) + len(moov) + len(mdat_header), text)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write(fd, ftyp + moov + mdat_header)
        for track in tracks:
            source = os.open(track.path, os.O_RDONLY)
            try:
                _copy_media(source, fd, track)
            finally:
                os.close(source)
        if text is not None:
            _write(fd, b"".join(text.samples))
    except BaseException:
        dest.unlink(missing_ok=True)  # nothing half-written is left behind
        raise
    finally:
        os.close(fd)
