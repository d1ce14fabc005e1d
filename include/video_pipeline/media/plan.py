"""Plans a join that costs about what copying the clips' bytes costs, re-encoding only what it must.

The join copies: when every clip decodes with the same configuration (one encoder's clips, as a provider
makes them), their sample tables are joined and their media bytes copied (``table_join``: no clip is opened
by a decoder; the whole assembly of 60 clips measured 1.5× copying their bytes); otherwise ffmpeg's concat
demuxer stream-copies them (it probes every clip, decoding a frame of each: 4.6×). Either way memory stays
flat from 1 to 1000 clips (no filter graph grows with the clip count). What cannot be copied is re-encoded
*per clip*, one small ffmpeg run each, to the target parameters (``target``):

* **Normalising** (``normalise``). A clip that differs from the target (size, codec/profile, pixel format,
  fps, time base) is re-encoded. A clip whose video matches but whose audio differs (or is missing while
  other clips have audio) keeps its video (copied) and gets resampled audio or a silent track. Clips from
  one encoder with different H.264 parameter sets still join by copy: ffmpeg writes each clip's SPS/PPS
  in-band at the boundary (decoded frames are bit-identical; tested).
* **Burning captions.** A clip with an overlay image (a rendered caption) is re-encoded with it on top;
  captions are per segment, so clips without narration stay copied.
* **Crossfades** (``transitions``). Only the transition windows are re-encoded; the middle of every clip is
  copied between keyframes.

The plan is made in steps: read the clips' indexes, probe the clips, choose the target, prepare each clip
(copy it, or normalise it and say why), list the pieces the concat demuxer reads (encoding the crossfade
windows), place each segment on the timeline, and decide how the join is written (``write``).

Audio, when clips have any, is not stream-copied across the join: AAC priming and padding would drift it by
20–40 ms per clip. The finishing pass decodes it and re-encodes it aligned to each clip's start
(``write.aligned_audio``).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from video_pipeline.media import AssemblyError, table_join
from video_pipeline.media.ffmpeg import FFmpegError, seconds_arg
from video_pipeline.media.normalise import normalise
from video_pipeline.media.probe import AudioLayout, VideoProbe, probe
from video_pipeline.media.target import Target, choose_target, differences
from video_pipeline.media.transitions import Cuts, encode_transition, find_cuts


@dataclass(frozen=True)
class Clip:
    """One segment's clip. ``index`` is the segment number users see (errors name it)."""

    index: int
    path: Path
    overlay: Path | None = None
    #: Captions burned in turn: (image, from s, to s in the clip's own time), e.g. one per few spoken words.
    timed_overlays: tuple[tuple[Path, float, float], ...] = ()
    #: The segment's exact length when it follows its narration: the clip is trimmed, or its last frame held.
    length_s: float | None = None


@dataclass(frozen=True)
class Span:
    """Where a segment sits in the joined video, in seconds."""

    index: int
    start_s: float
    end_s: float


@dataclass
class Piece:
    """A concat list entry: a whole file, or a keyframe-to-keyframe part of one (copied)."""

    path: Path
    inpoint: Fraction | None = None
    outpoint_dts: Fraction | None = None
    duration: Fraction | None = None


@dataclass
class JoinPlan:
    """What the concat demuxer reads, and what the joined video must be (checked after the join)."""

    listing: Path
    target: Target
    spans: list[Span]
    frame_count: int
    duration_s: float
    reencoded: dict[int, list[str]] = field(default_factory=dict)
    transition_pieces: int = 0
    transition_s: float = 0.0
    #: (segment, file joined, frames promised by its index), to name the culprit if the join comes up short
    sources: list[tuple[int, Path, int]] = field(default_factory=list)
    #: The clips' indexes when the video can be joined by its sample tables (else None, see ``joined_by``)
    tables: list[table_join.TrackIndex] | None = None
    joined_by: str = "ffmpeg concat demuxer"

    @property
    def has_audio(self) -> bool:
        return self.target.audio is not None


#: Clips probed at once: PyAV releases the GIL while it opens a file, so a few threads hide the latency;
#: a bounded pool keeps memory flat (at most this many files open).
PROBE_THREADS = 4


def _probe_clip(clip: Clip) -> VideoProbe:
    try:
        found = probe(clip.path)
    except (FFmpegError, OSError) as exc:
        raise AssemblyError(f"segment {clip.index}: clip {clip.path.name} is unreadable: {exc}") from None
    if found.frame_count == 0 or found.video_duration_s <= 0:
        raise AssemblyError(f"segment {clip.index}: clip {clip.path.name} has no video frames")
    return found


def read_indexes(clips: list[Clip]) -> list[table_join.TrackIndex | str]:
    """Each clip's index, or why it cannot be joined by its sample tables; a clip whose index promises more
    media than its file holds fails naming its segment."""
    found: list[table_join.TrackIndex | str] = []
    for clip in clips:
        try:
            found.append(table_join.read_track(clip.path))
        except table_join.Truncated as exc:
            raise AssemblyError(
                f"segment {clip.index}: clip {clip.path.name} is truncated or corrupt: {exc}"
            ) from None
        except (table_join.Unsupported, OSError) as exc:
            found.append(f"segment {clip.index}: {exc}")
    return found


def _from_index(clip_probe: VideoProbe, index: table_join.TrackIndex) -> VideoProbe:
    """``clip_probe`` (another clip with the same decoder configuration) with this clip's length."""
    seconds = Fraction(index.media_duration, index.timescale)
    return replace(
        clip_probe,
        duration_s=round(float(seconds), 3),
        video_duration_s=round(float(seconds), 4),
        frame_count=index.frame_count,
        fps=float(index.frame_count / seconds),
        size_bytes=index.size_bytes,
    )


def probe_clips(
    clips: list[Clip], indexes: list[table_join.TrackIndex | str] | None = None
) -> list[VideoProbe]:
    """Every clip's stream parameters, in order; an unreadable clip fails naming its segment (the first such).

    Clips whose indexes show the same decoder configuration differ only in length, which their indexes
    give: one of them is probed (opened by a decoder) and the others take its parameters. If that clip's
    index and probe disagree on its length, every clip of its kind is probed (and ``indexes`` forgets them).
    """
    indexes = indexes if indexes is not None else ["not read"] * len(clips)
    kinds: dict[tuple[object, ...], list[int]] = {}
    for position, index in enumerate(indexes):
        key = index.decoder_key() if isinstance(index, table_join.TrackIndex) else ("alone", position)
        kinds.setdefault(key, []).append(position)
    first = [positions[0] for positions in kinds.values()]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        probed = dict(zip(first, pool.map(_probe_clip, [clips[p] for p in first]), strict=True))
    for positions in kinds.values():
        head, index = positions[0], indexes[positions[0]]
        if not isinstance(index, table_join.TrackIndex):
            continue
        if _from_index(probed[head], index) != probed[head]:
            for position in positions:
                indexes[position] = f"segment {clips[position].index}: its index and a decoder disagree"
            with ThreadPoolExecutor(PROBE_THREADS) as pool:
                probed.update(
                    zip(positions, pool.map(_probe_clip, [clips[p] for p in positions]), strict=True)
                )
            continue
        for position in positions[1:]:
            same_kind = indexes[position]
            assert isinstance(same_kind, table_join.TrackIndex)
            probed[position] = _from_index(probed[head], same_kind)
    return [probed[position] for position in range(len(clips))]


def plan_join(
    clips: list[Clip],
    *,
    resolution: tuple[int, int],
    workdir: Path,
    transition_s: float = 0.0,
) -> JoinPlan:
    """Probe the clips, re-encode the ones (or the windows) that cannot be copied, and write the concat list."""
    if not clips:
        raise AssemblyError("no clips to assemble")
    workdir.mkdir(parents=True, exist_ok=True)
    indexes = read_indexes(clips)
    probes = probe_clips(clips, indexes)
    target = choose_target(probes, resolution)
    fade = target.frames(transition_s) if len(clips) > 1 else 0
    last = len(clips) - 1
    prepared = [
        _prepare(clip, clip_probe, target, workdir, fade=fade, head=position > 0, tail=position < last)
        for position, (clip, clip_probe) in enumerate(zip(clips, probes, strict=True))
    ]
    pieces, transitions = _pieces(prepared, target, fade, workdir)
    reencoded = {p.clip.index: p.reasons for p in prepared if p.reasons}
    tables, joined_by = _join_method(indexes, fade=fade, reencoded=reencoded, audio=target.audio)
    total = sum(p.frames for p in prepared) - fade * last
    return JoinPlan(
        listing=_write_listing(pieces, workdir / "concat.ffconcat"),
        target=target,
        spans=_timeline(prepared, target.fps, fade),
        frame_count=total,
        duration_s=float(Fraction(total) / target.fps),
        reencoded=reencoded,
        transition_pieces=transitions,
        transition_s=float(Fraction(fade) / target.fps),
        sources=[(p.clip.index, p.path, p.frames) for p in prepared],
        tables=tables,
        joined_by=joined_by,
    )


@dataclass(frozen=True)
class _Prepared:
    """A clip ready to join: the file joined (the clip, or its normalised copy) and its frame count, the
    copyable middle between its transitions (None without transitions), and why it was re-encoded."""

    clip: Clip
    path: Path
    frames: int
    cuts: Cuts | None
    reasons: list[str]


def _prepare(
    clip: Clip, clip_probe: VideoProbe, target: Target, workdir: Path, *, fade: int, head: bool, tail: bool
) -> _Prepared:
    """Take the clip as it is, or normalise it to the target; with transitions (``fade`` frames, into its
    ``head`` and out of its ``tail``), find the middle that is copied between them."""
    head, tail = head and fade > 0, tail and fade > 0
    video, audio = differences(clip_probe, target)
    if clip.overlay is not None or clip.timed_overlays:
        video.append("burned captions")
    fitted = target.frames(Fraction(clip.length_s).limit_denominator(100_000)) if clip.length_s else None
    if fitted is not None and fitted != clip_probe.frame_count:
        how = "trimmed" if fitted < clip_probe.frame_count else "held"
        video.append(f"{how} to its narration ({fitted} frames)")
    cuts = None
    if fade and not video:
        cuts = find_cuts(clip.path, clip_probe.frame_count, target.fps, fade, head=head, tail=tail)
        if cuts is None:
            video.append("no keyframe between its transitions")
    if not (video or audio):
        return _Prepared(clip, clip.path, clip_probe.frame_count, cuts, [])
    frames = fitted or target.frames(Fraction(clip_probe.video_duration_s).limit_denominator(100_000))
    path = normalise(
        clip.path,
        clip_probe,
        target,
        workdir / f"norm-{clip.index:05d}.mp4",
        segment=clip.index,
        overlay=clip.overlay,
        timed_overlays=clip.timed_overlays,
        reencode_video=bool(video),
        keyframes_at=[f for f, wanted in ((fade, head), (frames - fade, tail)) if wanted] if video else None,
        length=Fraction(fitted) / target.fps if fitted is not None else None,
    )
    done = probe(path)
    if done.stream_signature() != target.stream_signature():
        raise AssemblyError(
            f"segment {clip.index}: normalised clip has {tuple(done.stream_signature())}, "
            f"expected {tuple(target.stream_signature())}"
        )
    if fade:
        cuts = find_cuts(path, done.frame_count, target.fps, fade, head=head, tail=tail)
        if cuts is None:
            raise AssemblyError(f"segment {clip.index}: no keyframes at the transition edges")
    return _Prepared(clip, path, done.frame_count, cuts, video + audio)


def _pieces(prepared: list[_Prepared], target: Target, fade: int, workdir: Path) -> tuple[list[Piece], int]:
    """What the concat demuxer reads: every clip whole, or (with transitions) each clip's copied middle and
    the crossfade window into the next one; and how many windows were encoded."""
    fps = target.fps
    if not fade:
        return [Piece(p.path, duration=Fraction(p.frames) / fps) for p in prepared], 0
    pieces: list[Piece] = []
    for current, following in zip(prepared, [*prepared[1:], None], strict=True):
        cuts = current.cuts
        assert cuts is not None
        if cuts.tail > cuts.head:
            pieces.append(
                Piece(
                    current.path,
                    inpoint=Fraction(cuts.head) / fps if cuts.head else None,
                    outpoint_dts=cuts.tail_dts,
                    duration=Fraction(cuts.tail - cuts.head) / fps,
                )
            )
        if following is not None:
            pieces.append(_crossfade(current, following, fade, target, workdir))
    return pieces, len(prepared) - 1


def _crossfade(left: _Prepared, right: _Prepared, fade: int, target: Target, workdir: Path) -> Piece:
    """The encoded window from ``left``'s copied middle into ``right``'s, checked frame for frame."""
    assert left.cuts is not None and right.cuts is not None
    dest = workdir / f"xfade-{left.clip.index:05d}.mp4"
    segments = f"segments {left.clip.index}–{right.clip.index}"
    try:
        expected = encode_transition(
            left.path, left.cuts.tail, left.frames, right.path, right.cuts.head, fade, target, dest
        )
    except FFmpegError as exc:
        raise AssemblyError(f"{segments}: transition failed: {exc}") from None
    got = probe(dest).frame_count
    if got != expected:
        raise AssemblyError(f"{segments}: transition has {got} frames, expected {expected}")
    return Piece(dest, duration=Fraction(expected) / target.fps)


def _timeline(prepared: list[_Prepared], fps: Fraction, fade: int) -> list[Span]:
    """Where each segment sits in the joined video (a transition overlaps two segments by ``fade`` frames)."""
    spans = []
    start = 0
    for p in prepared:
        spans.append(
            Span(p.clip.index, float(Fraction(start) / fps), float(Fraction(start + p.frames) / fps))
        )
        start += p.frames - fade
    return spans


def _write_listing(pieces: list[Piece], path: Path) -> Path:
    lines = ["ffconcat version 1.0"]
    for piece in pieces:
        escaped = str(piece.path.resolve()).replace("'", "'\\''")
        lines.append(f"file '{escaped}'")
        if piece.inpoint:  # rounded up: the demuxer seeks to the keyframe at or before it
            lines.append(f"inpoint {math.ceil(piece.inpoint * 1_000_000) / 1_000_000:.6f}")
        if piece.outpoint_dts is not None:  # rounded down: the keyframe's own packet is the first left out
            lines.append(f"outpoint {math.floor(piece.outpoint_dts * 1_000_000) / 1_000_000:.6f}")
        if piece.duration is not None:
            lines.append(f"duration {seconds_arg(piece.duration)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _join_method(
    indexes: list[table_join.TrackIndex | str],
    *,
    fade: int,
    reencoded: dict[int, list[str]],
    audio: AudioLayout | None,
) -> tuple[list[table_join.TrackIndex] | None, str]:
    """The clips' indexes if the plain join can be done by sample tables, and how the join is done."""
    concat = "ffmpeg concat demuxer"
    if fade:
        return None, f"{concat} (transitions)"
    if reencoded:
        return None, f"{concat} (normalised clips)"
    if audio is not None:
        return None, f"{concat} (clips with audio)"
    tables = [index for index in indexes if isinstance(index, table_join.TrackIndex)]
    if len(tables) < len(indexes):
        return None, f"{concat} ({next(i for i in indexes if isinstance(i, str))})"
    reason = table_join.mismatch(tables)
    if reason is not None:
        return None, f"{concat} ({reason})"
    return tables, "sample tables"
