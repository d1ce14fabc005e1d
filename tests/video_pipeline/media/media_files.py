"""Real media for the assembly tests: small generated clips and ways to look inside the results."""

from __future__ import annotations

import hashlib
import math
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av

from video_pipeline.media.ffmpeg import run_ffmpeg
from video_pipeline.media.table_join import read_track


def make_clip(
    dest: Path,
    *,
    size: tuple[int, int] = (320, 180),
    fps: int = 24,
    seconds: float = 2,
    hue: int = 0,
    gop: int = 24,
    profile: str = "high",
    audio_rate: int | None = None,
    audio_layout: str = "mono",
    source: str = "testsrc2",
    preset: str | None = None,
) -> Path:
    """A testsrc2 clip (moving pattern; ``hue`` tells clips apart; ``source="color"`` for a tiny one), H.264 with a keyframe every ``gop``
    frames, time base 1/12288 and the index first, like the storyboard provider; optionally a 440 Hz tone as AAC."""
    args = ["-f", "lavfi", "-i", f"{source}=s={size[0]}x{size[1]}:r={fps}:d={seconds}"]
    if audio_rate:
        args += ["-f", "lavfi", "-i", f"sine=f=440:r={audio_rate}:d={seconds}"]
    args += [
        "-vf",
        f"hue=h={hue}",
        "-c:v",
        "libx264",
        "-preset",
        preset or ("ultrafast" if profile == "baseline" else "veryfast"),
        "-profile:v",
        profile,
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(gop),
        "-video_track_timescale",
        "12288",
        "-movflags",
        "+faststart",
    ]
    if audio_rate:
        args += ["-c:a", "aac", "-ch_layout", audio_layout]
    run_ffmpeg([*args, str(dest)])
    return dest


def _luma(frame: av.VideoFrame) -> bytes:
    """The visible luma bytes, row by row (a plane's rows are padded to its line size)."""
    plane = frame.planes[0]
    data = bytes(plane)
    return b"".join(
        data[y * plane.line_size : y * plane.line_size + frame.width] for y in range(frame.height)
    )


def frame_hashes(path: Path) -> list[str]:
    """A hash of every decoded frame's luma plane, in presentation order."""
    with av.open(str(path)) as container:
        return [hashlib.md5(_luma(frame)).hexdigest() for frame in container.decode(video=0)]


def frame_luma(path: Path, index: int) -> bytes:
    """The luma plane of frame ``index``."""
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position == index:
                return _luma(frame)
    raise IndexError(index)


def audio_rms(path: Path, windows: list[tuple[float, float]]) -> list[float]:
    """RMS level (0..1) of the first audio stream within each (start, end) window in seconds; each decoded
    frame (~20 ms) counts towards the window its middle falls in."""
    sums = [0.0] * len(windows)
    counts = [0] * len(windows)
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="s16", layout="mono", rate=stream.rate)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                if out.pts is None or not out.samples:
                    continue
                samples = array("h", bytes(out.planes[0])[: out.samples * 2])
                middle = float(out.pts * (out.time_base or 0)) + out.samples / out.sample_rate / 2
                for w, (lo, hi) in enumerate(windows):
                    if lo <= middle < hi:
                        sums[w] += sum((v / 32768) ** 2 for v in samples)
                        counts[w] += len(samples)
    return [math.sqrt(s / c) if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def subtitle_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text) of each non-empty ``mov_text`` sample (2-byte length, then UTF-8 text)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name == "mov_text"
        base = stream.time_base
        assert base is not None
        cues = []
        for packet in container.demux(stream):
            data = bytes(packet)
            if packet.pts is None or len(data) <= 2:
                continue
            length = int.from_bytes(data[:2], "big")
            start = float(packet.pts * base)
            cues.append(
                (
                    round(start, 3),
                    round(start + float((packet.duration or 0) * base), 3),
                    data[2 : 2 + length].decode(),
                )
            )
        return cues


def faststart(path: Path) -> bool:
    """The index (moov) comes before the media data (mdat): playback starts before the download ends."""
    head = path.read_bytes()[:1_000_000]
    return 0 <= head.find(b"moov") < head.find(b"mdat")


def damaged(clip: Path, dest: Path, sample: int, junk: bytes) -> Path:
    """A copy of ``clip`` with the start of ``sample`` (1-based) overwritten: the index still looks intact."""
    track = read_track(clip)
    assert len(track.runs) == 1  # the clips here store their samples back to back
    offset = track.runs[0].offset + sum(track.sample_sizes()[: sample - 1])
    data = bytearray(clip.read_bytes())
    data[offset : offset + len(junk)] = junk
    dest.write_bytes(bytes(data))
    return dest


# --- MP4 files built from their parts (for the hostile-index tests) ------------------------------------------

UNITY_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _wrap(value: int, bits: int) -> int:
    """``value`` as an unsigned field of ``bits`` bits (a negative or too large value wraps, as a lie would)."""
    return value % (1 << bits)


@dataclass
class Box:
    """An ISO BMFF box: ``body`` is its payload or its children; ``size`` a size field that lies (None: the
    true size); ``large`` writes the 64-bit size form."""

    kind: bytes
    body: bytes | list[Box] = b""
    size: int | None = None
    large: bool = False

    def encode(self) -> bytes:
        payload = self.body if isinstance(self.body, bytes) else b"".join(b.encode() for b in self.body)
        if self.large:
            size = 16 + len(payload) if self.size is None else self.size
            return struct.pack(">I4sQ", 1, self.kind, _wrap(size, 64)) + payload
        size = 8 + len(payload) if self.size is None else self.size
        return struct.pack(">I4s", _wrap(size, 32), self.kind) + payload


def visual_entry(kind: bytes, width: int, height: int, config: list[Box]) -> Box:
    """A visual sample entry (ISO/IEC 14496-12 §12.1.3): 78 fixed bytes, then its boxes."""
    fixed = (
        bytes(6)
        + struct.pack(">H", 1)  # data reference index
        + bytes(16)
        + struct.pack(">HHII", width, height, 0x480000, 0x480000)
        + bytes(4)
        + struct.pack(">H", 1)  # frames per sample
        + bytes(32)
        + struct.pack(">Hh", 0x18, -1)
    )
    return Box(kind, fixed + b"".join(b.encode() for b in config))


@dataclass
class ClipParts:
    """Every value of a single-track MP4's index, each free to be set to anything: entry counts, box sizes
    and versions too (``counts``, ``box_sizes``, ``versions`` override what ``encode`` would write). ``encode``
    lays out ftyp, moov and mdat (the samples back to back; ``chunk_offsets`` are relative to mdat's body)."""

    samples: list[bytes]
    entry: Box
    stts: list[tuple[int, int]]
    stsc: list[tuple[int, int, int]]
    chunk_offsets: list[int]
    ctts: list[tuple[int, int]] | None = None
    stss: list[int] | None = None
    sdtp: bytes | None = None
    #: the stsz table (None: each sample's length); ``uniform_size`` > 0 writes one size for all instead
    sizes: list[int] | None = None
    uniform_size: int = 0
    sample_count: int | None = None
    co64: bool = False
    timescale: int = 12288
    movie_timescale: int = 1000
    width: int = 320
    height: int = 180
    #: (segment duration in the movie time scale, media time, rate); None: no edit list
    edit: tuple[int, int, int] | None = None
    handler: bytes = b"vide"
    stsd_count: int = 1
    tracks: int = 1
    versions: dict[bytes, int] = field(default_factory=dict)
    counts: dict[bytes, int] = field(default_factory=dict)
    box_sizes: dict[bytes, int] = field(default_factory=dict)
    #: boxes added at the end of the box of that kind (b"" for the top level, before the index)
    extra: dict[bytes, list[Box]] = field(default_factory=dict)
    #: boxes of that kind cut to this many body bytes
    cut: dict[bytes, int] = field(default_factory=dict)
    index_last: bool = False
    #: mdat's size field (None: the true size)
    mdat_size: int | None = None

    def media_duration(self) -> int:
        return sum(count * delta for count, delta in self.stts)

    def _box(self, kind: bytes, body: bytes | list[Box]) -> Box:
        if isinstance(body, list):
            body = body + self.extra.get(kind, [])
        elif kind in self.cut:
            body = body[: self.cut[kind]]
        return Box(kind, body, self.box_sizes.get(kind))

    def _full(self, kind: bytes, body: bytes, flags: int = 0, version: int = 0) -> Box:
        version = self.versions.get(kind, version)
        return self._box(kind, struct.pack(">I", _wrap(version, 8) << 24 | flags) + body)

    def _count(self, kind: bytes, actual: int) -> bytes:
        return struct.pack(">I", _wrap(self.counts.get(kind, actual), 32))

    def _table(self, kind: bytes, rows: Sequence[tuple[int, ...]], bits: int = 32, version: int = 0) -> Box:
        code = ">Q" if bits == 64 else ">I"
        body = b"".join(struct.pack(code, _wrap(value, bits)) for row in rows for value in row)
        return self._full(kind, self._count(kind, len(rows)) + body, version=version)

    def _times(self, kind: bytes, timescale: int, duration: int) -> bytes:
        """creation and modification time, time scale and duration (in the width the box's version says)."""
        if self.versions.get(kind, 0) == 1:
            return bytes(16) + struct.pack(">IQ", _wrap(timescale, 32), _wrap(duration, 64))
        return bytes(8) + struct.pack(">II", _wrap(timescale, 32), _wrap(duration, 32))

    def _moov(self, mdat_body: int) -> bytes:
        duration = self.media_duration()
        shown = duration * self.movie_timescale // self.timescale if self.timescale else 0
        mvhd = self._full(
            b"mvhd",
            self._times(b"mvhd", self.movie_timescale, shown)
            + struct.pack(">IH", 0x10000, 0x100)
            + bytes(10)
            + UNITY_MATRIX
            + bytes(24)
            + struct.pack(">I", 2),
        )
        if self.versions.get(b"tkhd", 0) == 1:
            tkhd_times = bytes(16) + struct.pack(">IIQ", 1, 0, _wrap(shown, 64))
        else:
            tkhd_times = bytes(8) + struct.pack(">III", 1, 0, _wrap(shown, 32))
        tkhd = self._full(
            b"tkhd",
            tkhd_times + bytes(16) + UNITY_MATRIX + struct.pack(">II", self.width << 16, self.height << 16),
            flags=3,
        )
        mdhd = self._full(b"mdhd", self._times(b"mdhd", self.timescale, duration) + b"\x55\xc4\0\0")
        hdlr = self._full(b"hdlr", bytes(4) + self.handler + bytes(12) + b"VideoHandler\0")
        entries = self.entry.encode() * max(1, self.stsd_count)
        stbl = [
            self._full(b"stsd", self._count(b"stsd", self.stsd_count) + entries),
            self._table(b"stts", self.stts),
        ]
        if self.stss is not None:
            stbl.append(self._table(b"stss", [(n,) for n in self.stss]))
        if self.ctts is not None:
            stbl.append(self._table(b"ctts", self.ctts, version=int(any(v < 0 for _, v in self.ctts))))
        stbl.append(self._table(b"stsc", self.stsc))
        sizes = [len(s) for s in self.samples] if self.sizes is None else self.sizes
        count = len(sizes) if self.sample_count is None else self.sample_count
        table = b"" if self.uniform_size else b"".join(struct.pack(">I", _wrap(s, 32)) for s in sizes)
        stbl.append(
            self._full(
                b"stsz", struct.pack(">I", _wrap(self.uniform_size, 32)) + self._count(b"stsz", count) + table
            )
        )
        offsets = [(mdat_body + offset,) for offset in self.chunk_offsets]
        stbl.append(self._table(b"co64", offsets, 64) if self.co64 else self._table(b"stco", offsets))
        if self.sdtp is not None:
            stbl.append(self._full(b"sdtp", self.sdtp))
        dref = Box(b"dref", struct.pack(">II", 0, 1) + Box(b"url ", struct.pack(">I", 1)).encode())
        minf = self._box(
            b"minf", [self._full(b"vmhd", bytes(8), flags=1), Box(b"dinf", [dref]), self._box(b"stbl", stbl)]
        )
        trak: list[Box] = [tkhd]
        if self.edit is not None:
            segment, media_time, rate = self.edit
            if self.versions.get(b"elst", 0) == 1:
                entry = struct.pack(">QQI", _wrap(segment, 64), _wrap(media_time, 64), _wrap(rate, 32))
            else:
                entry = struct.pack(">III", _wrap(segment, 32), _wrap(media_time, 32), _wrap(rate, 32))
            trak.append(self._box(b"edts", [self._full(b"elst", self._count(b"elst", 1) + entry)]))
        trak.append(self._box(b"mdia", [mdhd, hdlr, minf]))
        return self._box(b"moov", [mvhd, *[self._box(b"trak", trak)] * self.tracks]).encode()

    def encode(self) -> bytes:
        ftyp = Box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41").encode()
        top = b"".join(box.encode() for box in self.extra.get(b"", []))
        media = b"".join(self.samples)
        mdat = struct.pack(
            ">I4s", _wrap(8 + len(media) if self.mdat_size is None else self.mdat_size, 32), b"mdat"
        )
        if self.index_last:
            return ftyp + top + mdat + media + self._moov(len(ftyp) + len(top) + len(mdat))
        moov_size = len(self._moov(0))  # the offsets' values do not change the index's size
        return ftyp + top + self._moov(len(ftyp) + len(top) + moov_size + len(mdat)) + mdat + media


def clip_parts(clip: Path) -> ClipParts:
    """The parts of a real H.264 clip as a demuxer reads them (not the code under test): its packets' bytes,
    durations, composition offsets and keyframes, its decoder configuration. The samples are laid out in
    chunks of 1, 2, 3, … samples (an stsc entry for each), back to back."""
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        config = bytes(stream.codec_context.extradata or b"")
        width, height = stream.codec_context.width, stream.codec_context.height
        assert stream.time_base is not None
        timescale = stream.time_base.denominator
        packets = [
            (p.pts or 0, p.dts or 0, p.duration or 0, p.is_keyframe, bytes(p))
            for p in container.demux(video=0)
            if p.size
        ]
    samples = [p[4] for p in packets]
    stts: list[tuple[int, int]] = []
    for _, _, duration, _, _ in packets:
        if stts and stts[-1][1] == duration:
            stts[-1] = (stts[-1][0] + 1, duration)
        else:
            stts.append((1, duration))
    delay = -packets[0][1]  # the demuxer shifts decode times back by the edit list's start
    ctts = [(1, pts - dts) for pts, dts, *_ in packets]
    sync = [n + 1 for n, p in enumerate(packets) if p[3]]
    stsc: list[tuple[int, int, int]] = []
    offsets: list[int] = []
    position = sample = 0
    while sample < len(samples):
        take = min(len(offsets) + 1, len(samples) - sample)
        stsc.append((len(offsets) + 1, take, 1))
        offsets.append(position)
        position += sum(map(len, samples[sample : sample + take]))
        sample += take
    duration = sum(count * delta for count, delta in stts)
    return ClipParts(
        samples=samples,
        entry=visual_entry(b"avc1", width, height, [Box(b"avcC", config)]),
        stts=stts,
        stsc=stsc,
        chunk_offsets=offsets,
        ctts=ctts if any(v for _, v in ctts) else None,
        stss=sync if len(sync) < len(samples) else None,
        timescale=timescale,
        width=width,
        height=height,
        edit=(duration * 1000 // timescale, delay, 0x10000) if delay else None,
    )
