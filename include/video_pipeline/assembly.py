"""Joins clips into one video at the cost of copying the bytes, re-encoding only what it must.

The join copies: when every clip decodes with the same configuration (one encoder's clips, as a provider
makes them), their sample tables are joined and their media bytes copied (``mp4_join``: no clip is opened by
a decoder; the whole assembly of 60 clips measured 1.5× copying their bytes); otherwise ffmpeg's concat
demuxer stream-copies them (it probes every clip, decoding a frame of each: 4.6×). Either way memory stays flat from 1 to 1000 clips (no filter
graph grows with the clip count). What cannot be copied is re-encoded *per clip*, one small ffmpeg run
each, to the target parameters:

* **Normalising.** The target is the stream parameters most clips already have (at the job's resolution);
  a clip that differs (size, codec/profile, pixel format, fps, time base) is re-encoded: scaled to fit,
  padded to the target frame, resampled to the target fps. A clip whose video matches but whose audio
  differs (or is missing while other clips have audio) keeps its video (copied) and gets resampled audio
  or a silent track. Clips from one encoder with different H.264 parameter sets still join by copy: ffmpeg
  writes each clip's SPS/PPS in-band at the boundary (decoded frames are bit-identical; tested).
* **Burning captions.** A clip with an overlay image (a rendered caption) is re-encoded with it on top;
  captions are per segment, so clips without narration stay copied.
* **Crossfades.** Only the transition windows are re-encoded: for each boundary, the tail of one clip from
  its last keyframe before the fade and the head of the next up to its first keyframe after the fade are
  decoded, crossfaded (``xfade``, ``acrossfade``) and encoded as one short piece; the middle of every clip
  is copied between keyframes (concat ``inpoint``/``outpoint``). A clip without a keyframe between its two
  fades is re-encoded with keyframes forced at the fade edges. Each transition shortens the video by its
  duration (the clips overlap).

Audio, when clips have any, is not stream-copied across the join: AAC priming and padding would drift it by
20–40 ms per clip. The finishing pass decodes it and re-encodes it aligned to each clip's start (see
``finishing.py``).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from video_pipeline import mp4_join
from video_pipeline.ffmpeg import (
    AudioLayout,
    FFmpegError,
    VideoProbe,
    keyframes,
    probe,
    readable_frames,
    run_ffmpeg,
)

#: The parameters used when no clip can serve as the target (the offline provider's).
DEFAULT_FPS = Fraction(24)
DEFAULT_TIMESCALE = 12288
DEFAULT_AUDIO = AudioLayout(codec="aac", sample_rate=48000, layout="stereo")
#: x264 profile names as probed → the ``-profile:v`` that makes x264 produce them.
X264_PROFILES = {"High": "high", "Main": "main", "Constrained Baseline": "baseline"}
AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "opus": "libopus"}


class AssemblyError(RuntimeError):
    pass


@dataclass(frozen=True)
class Clip:
    """One segment's clip. ``index`` is the segment number users see (errors name it)."""

    index: int
    path: Path
    overlay: Path | None = None


@dataclass(frozen=True)
class Target:
    """The stream parameters every piece of the join has."""

    width: int
    height: int
    profile: str
    fps: Fraction
    timescale: int
    audio: AudioLayout | None
    codec: str = "h264"
    pix_fmt: str = "yuv420p"

    @property
    def video_signature(self) -> tuple[object, ...]:
        return (
            self.codec,
            self.profile,
            self.width,
            self.height,
            self.pix_fmt,
            round(float(self.fps), 3),
            f"1/{self.timescale}",
        )

    def frames(self, seconds: Fraction | float) -> int:
        return round(Fraction(seconds) * self.fps)


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
    tables: list[mp4_join.TrackIndex] | None = None
    joined_by: str = "ffmpeg concat demuxer"

    @property
    def has_audio(self) -> bool:
        return self.target.audio is not None


def _video_signature(p: VideoProbe) -> tuple[object, ...]:
    return p.stream_signature()[:-1]


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


def read_indexes(clips: list[Clip]) -> list[mp4_join.TrackIndex | str]:
    """Each clip's index, or why it cannot be joined by its sample tables; a clip whose index promises more
    media than its file holds fails naming its segment."""
    found: list[mp4_join.TrackIndex | str] = []
    for clip in clips:
        try:
            found.append(mp4_join.read_track(clip.path))
        except mp4_join.Truncated as exc:
            raise AssemblyError(
                f"segment {clip.index}: clip {clip.path.name} is truncated or corrupt: {exc}"
            ) from None
        except (mp4_join.Unsupported, OSError) as exc:
            found.append(f"segment {clip.index}: {exc}")
    return found


def _from_index(clip_probe: VideoProbe, index: mp4_join.TrackIndex) -> VideoProbe:
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
    clips: list[Clip], indexes: list[mp4_join.TrackIndex | str] | None = None
) -> list[VideoProbe]:
    """Every clip's stream parameters, in order; an unreadable clip fails naming its segment (the first such).

    Clips whose indexes show the same decoder configuration differ only in length, which their indexes
    give: one of them is probed (opened by a decoder) and the others take its parameters. If that clip's
    index and probe disagree on its length, every clip of its kind is probed (and ``indexes`` forgets them).
    """
    indexes = indexes if indexes is not None else ["not read"] * len(clips)
    kinds: dict[tuple[object, ...], list[int]] = {}
    for position, index in enumerate(indexes):
        key = index.decoder_key() if isinstance(index, mp4_join.TrackIndex) else ("alone", position)
        kinds.setdefault(key, []).append(position)
    first = [positions[0] for positions in kinds.values()]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        probed = dict(zip(first, pool.map(_probe_clip, [clips[p] for p in first]), strict=True))
    for positions in kinds.values():
        head, index = positions[0], indexes[positions[0]]
        if not isinstance(index, mp4_join.TrackIndex):
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
            assert isinstance(same_kind, mp4_join.TrackIndex)
            probed[position] = _from_index(probed[head], same_kind)
    return [probed[position] for position in range(len(clips))]


def choose_target(probes: list[VideoProbe], resolution: tuple[int, int]) -> Target:
    """The most common video parameters among clips at the job's resolution that x264 can reproduce (ties:
    the earliest clip); the most common audio layout among clips with audio (audio is never dropped)."""
    usable = [
        p
        for p in probes
        if (p.width, p.height) == resolution
        and p.codec == "h264"
        and p.profile in X264_PROFILES
        and p.pix_fmt == "yuv420p"
        and p.fps > 0
        and p.time_base.startswith("1/")
    ]
    if usable:
        top = Counter(_video_signature(p) for p in usable).most_common(1)[0][0]
        chosen = next(p for p in usable if _video_signature(p) == top)
        fps = Fraction(chosen.fps).limit_denominator(1001)
        timescale = int(chosen.time_base.split("/")[1])
        profile = str(chosen.profile)
    else:
        fps, timescale, profile = DEFAULT_FPS, DEFAULT_TIMESCALE, "High"
    layouts = [p.audio for p in probes if p.audio is not None]
    audio = Counter(layouts).most_common(1)[0][0] if layouts else None
    if audio is not None and audio.codec not in AUDIO_ENCODERS:
        audio = DEFAULT_AUDIO
    return Target(resolution[0], resolution[1], profile, fps, timescale, audio)


def differences(clip_probe: VideoProbe, target: Target) -> tuple[list[str], list[str]]:
    """Why a clip cannot be copied as it is: (video reasons, audio reasons)."""
    video = []
    if (clip_probe.width, clip_probe.height) != (target.width, target.height):
        video.append(f"size {clip_probe.width}x{clip_probe.height}")
    if (clip_probe.codec, clip_probe.profile) != (target.codec, target.profile):
        video.append(f"codec {clip_probe.codec} {clip_probe.profile}")
    if clip_probe.pix_fmt != target.pix_fmt:
        video.append(f"pixel format {clip_probe.pix_fmt}")
    if round(clip_probe.fps, 3) != round(float(target.fps), 3):
        video.append(f"{clip_probe.fps:g} fps")
    if clip_probe.time_base != f"1/{target.timescale}":
        video.append(f"time base {clip_probe.time_base}")
    audio = []
    if clip_probe.audio != target.audio:
        if clip_probe.audio is None:
            audio.append("no audio")
        elif target.audio is None:  # pragma: no cover - choose_target keeps audio whenever a clip has it
            audio.append("audio")
        else:
            a = clip_probe.audio
            audio.append(f"audio {a.codec} {a.sample_rate} Hz {a.layout}")
    return video, audio


def _x264(target: Target) -> list[str]:
    return [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "18",
        "-profile:v",
        X264_PROFILES[target.profile],
        "-pix_fmt",
        target.pix_fmt,
        "-g",
        str(max(1, round(2 * target.fps))),
        "-video_track_timescale",
        str(target.timescale),
    ]


def _audio_codec(target: Target) -> list[str]:
    assert target.audio is not None
    return [
        "-c:a",
        AUDIO_ENCODERS[target.audio.codec],
        "-b:a",
        "192k",
        "-ar",
        str(target.audio.sample_rate),
        "-ch_layout",
        target.audio.layout,
    ]


def _audio_format(target: Target) -> str:
    assert target.audio is not None
    return (
        f"aresample={target.audio.sample_rate},"
        f"aformat=sample_rates={target.audio.sample_rate}:channel_layouts={target.audio.layout},apad"
    )


def _seconds(value: Fraction) -> str:
    return f"{float(value):.6f}"


def normalise(
    clip: Clip,
    clip_probe: VideoProbe,
    target: Target,
    dest: Path,
    *,
    reencode_video: bool,
    keyframes_at: list[int] | None = None,
) -> Path:
    """Bring one clip to the target: re-encode its video (fit, pad, fps, pixel format, time base, overlay,
    forced keyframes at the given frame numbers) or copy it, and give it the target's audio."""
    inputs = ["-i", str(clip.path)]
    graph = []
    maps: list[str] = []
    if reencode_video:
        w, h = target.width, target.height
        chain = (
            f"[0:v]scale={w}:{h}:force_original_aspect_ratio=decrease:flags=lanczos,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={target.fps},format={target.pix_fmt}"
        )
        if clip.overlay is not None:
            inputs += ["-i", str(clip.overlay)]
            graph.append(f"{chain}[base]")
            graph.append(
                f"[base][1:v]overlay=0:0,format={target.pix_fmt}[v]"  # yuv420 blend: no RGB round trip
            )
        else:
            graph.append(f"{chain}[v]")
        maps += ["-map", "[v]", *_x264(target)]
        if keyframes_at:
            # a quarter frame early, so the frame itself is the first at or after each time
            times = ",".join(_seconds((Fraction(f) - Fraction(1, 4)) / target.fps) for f in keyframes_at)
            maps += ["-force_key_frames", times]
    else:
        maps += ["-map", "0:v:0", "-c:v", "copy"]
    if target.audio is None:
        maps.append("-an")
    else:
        if clip_probe.audio is None:
            a = target.audio
            source = f"[{inputs.count('-i')}:a]"
            inputs += ["-f", "lavfi", "-i", f"anullsrc=r={a.sample_rate}:cl={a.layout}"]
        else:
            source = "[0:a:0]"
        graph.append(f"{source}{_audio_format(target)}[a]")
        maps += ["-map", "[a]", *_audio_codec(target)]
    duration = _seconds(Fraction(clip_probe.video_duration_s).limit_denominator(100_000))
    args = [*inputs, "-filter_complex", ";".join(graph), *maps, "-t", duration, str(dest)]
    try:
        run_ffmpeg(args, timeout=900)
    except FFmpegError as exc:
        raise AssemblyError(f"segment {clip.index}: could not normalise {clip.path.name}: {exc}") from None
    return dest


@dataclass(frozen=True)
class _Cuts:
    """Where a clip's copied middle starts (``head``, a keyframe) and ends (``tail``, a keyframe), in frames."""

    head: int
    tail: int
    tail_dts: Fraction | None


def _clean_keyframes(path: Path, fps: Fraction) -> dict[int, Fraction]:
    """Keyframes a stream copy can start at: frame number → decoding time. A keyframe is clean when no
    later-decoded frame is shown before it (a closed GOP), so a part starting there decodes on its own."""
    found = keyframes(path)
    return {round(k.pts_s * fps): k.dts_s for k in found if k.clean}


def _cuts(path: Path, frames: int, fps: Fraction, fade: int, *, head: bool, tail: bool) -> _Cuts | None:
    clean = _clean_keyframes(path, fps)
    start = 0
    if head:
        start = min((f for f in clean if f >= fade), default=frames)
    end, end_dts = frames, None
    if tail:
        before = [f for f in clean if f <= frames - fade]
        if not before:
            return None
        end = max(before)
        end_dts = clean[end]
    if start > end:
        return None
    return _Cuts(start, end, end_dts)


def _transition(
    left: Path,
    left_from: int,
    left_frames: int,
    right: Path,
    right_to: int,
    fade: int,
    target: Target,
    dest: Path,
) -> int:
    """Encode one transition window: ``left`` from frame ``left_from`` to its end, crossfaded into ``right``
    up to frame ``right_to``. Returns the piece's frame count."""
    fps = target.fps
    tail = left_frames - left_from
    offset = Fraction(tail - fade) / fps
    graph = [
        "[0:v]setpts=PTS-STARTPTS[l]",
        f"[1:v]trim=end_frame={right_to},setpts=PTS-STARTPTS[r]",
        f"[l][r]xfade=transition=fade:duration={_seconds(Fraction(fade) / fps)}:offset={_seconds(offset)},"
        f"format={target.pix_fmt}[v]",
    ]
    maps = ["-map", "[v]", *_x264(target)]
    if target.audio is not None:
        graph += [
            "[0:a]asetpts=PTS-STARTPTS[la]",
            f"[1:a]atrim=end={_seconds(Fraction(right_to) / fps)},asetpts=PTS-STARTPTS[ra]",
            f"[la][ra]acrossfade=d={_seconds(Fraction(fade) / fps)}[a]",
        ]
        maps += ["-map", "[a]", *_audio_codec(target)]
    else:
        maps.append("-an")
    run_ffmpeg(
        [
            "-ss",
            _seconds(Fraction(left_from) / fps),
            "-i",
            str(left),
            "-t",
            _seconds((Fraction(right_to) + Fraction(1, 2)) / fps),
            "-i",
            str(right),
            "-filter_complex",
            ";".join(graph),
            *maps,
            str(dest),
        ],
        timeout=300,
    )
    return tail + right_to - fade


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
            lines.append(f"duration {_seconds(piece.duration)}")
    path.write_text("\n".join(lines) + "\n")
    return path


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
    count = len(clips)
    reencoded: dict[int, list[str]] = {}
    paths: list[Path] = []
    frames: list[int] = []
    cuts: list[_Cuts | None] = []
    for position, (clip, clip_probe) in enumerate(zip(clips, probes, strict=True)):
        video, audio = differences(clip_probe, target)
        if clip.overlay is not None:
            video.append("burned captions")
        n = target.frames(Fraction(clip_probe.video_duration_s).limit_denominator(100_000))
        head, tail = position > 0 and fade > 0, position < count - 1 and fade > 0
        cut = None
        if fade and not video:
            cut = _cuts(clip.path, clip_probe.frame_count, target.fps, fade, head=head, tail=tail)
            if cut is None:
                video.append("no keyframe between its transitions")
        path = clip.path
        if video or audio:
            reencoded[clip.index] = video + audio
            forced = [f for f, wanted in ((fade, head), (n - fade, tail)) if wanted]
            path = normalise(
                clip,
                clip_probe,
                target,
                workdir / f"norm-{clip.index:05d}.mp4",
                reencode_video=bool(video),
                keyframes_at=forced if video else None,
            )
            done = probe(path)
            wanted = (target.video_signature, target.audio)
            if (_video_signature(done), done.audio) != wanted:
                raise AssemblyError(
                    f"segment {clip.index}: normalised clip has {done.stream_signature()}, expected {wanted}"
                )
            clip_probe = done
            if fade:
                cut = _cuts(path, done.frame_count, target.fps, fade, head=head, tail=tail)
                if cut is None:
                    raise AssemblyError(f"segment {clip.index}: no keyframes at the transition edges")
        paths.append(path)
        frames.append(clip_probe.frame_count)
        cuts.append(cut)

    pieces: list[Piece] = []
    transitions = 0
    fps = target.fps
    for position, (clip, path, n, cut) in enumerate(zip(clips, paths, frames, cuts, strict=True)):
        if not fade:
            pieces.append(Piece(path, duration=Fraction(n) / fps))
            continue
        assert cut is not None
        if cut.tail > cut.head:
            pieces.append(
                Piece(
                    path,
                    inpoint=Fraction(cut.head) / fps if cut.head else None,
                    outpoint_dts=cut.tail_dts,
                    duration=Fraction(cut.tail - cut.head) / fps,
                )
            )
        if position < count - 1:
            following = cuts[position + 1]
            assert following is not None
            dest = workdir / f"xfade-{clip.index:05d}.mp4"
            try:
                expected = _transition(
                    path, cut.tail, n, paths[position + 1], following.head, fade, target, dest
                )
            except FFmpegError as exc:
                raise AssemblyError(
                    f"segments {clip.index}–{clips[position + 1].index}: transition failed: {exc}"
                ) from None
            got = probe(dest).frame_count
            if got != expected:
                raise AssemblyError(
                    f"segments {clip.index}–{clips[position + 1].index}: transition has {got} frames, "
                    f"expected {expected}"
                )
            pieces.append(Piece(dest, duration=Fraction(expected) / fps))
            transitions += 1

    spans = []
    start = 0
    for clip, n in zip(clips, frames, strict=True):
        spans.append(Span(clip.index, float(Fraction(start) / fps), float(Fraction(start + n) / fps)))
        start += n - fade
    total = sum(frames) - fade * (count - 1)
    tables, joined_by = _tables(indexes, fade=fade, reencoded=reencoded, audio=target.audio)
    return JoinPlan(
        listing=_write_listing(pieces, workdir / "concat.ffconcat"),
        target=target,
        spans=spans,
        frame_count=total,
        duration_s=float(Fraction(total) / fps),
        reencoded=reencoded,
        transition_pieces=transitions,
        transition_s=float(Fraction(fade) / fps),
        sources=[(clip.index, path, n) for clip, path, n in zip(clips, paths, frames, strict=True)],
        tables=tables,
        joined_by=joined_by,
    )


def _tables(
    indexes: list[mp4_join.TrackIndex | str],
    *,
    fade: int,
    reencoded: dict[int, list[str]],
    audio: AudioLayout | None,
) -> tuple[list[mp4_join.TrackIndex] | None, str]:
    """The clips' indexes if the plain join can be done by sample tables, and how the join is done."""
    concat = "ffmpeg concat demuxer"
    if fade:
        return None, f"{concat} (transitions)"
    if reencoded:
        return None, f"{concat} (normalised clips)"
    if audio is not None:
        return None, f"{concat} (clips with audio)"
    tables = [index for index in indexes if isinstance(index, mp4_join.TrackIndex)]
    if len(tables) < len(indexes):
        return None, f"{concat} ({next(i for i in indexes if isinstance(i, str))})"
    reason = mp4_join.mismatch(tables)
    if reason is not None:
        return None, f"{concat} ({reason})"
    return tables, "sample tables"


def check_joined(result: VideoProbe, plan: JoinPlan) -> None:
    """The joined video must have exactly the planned frames, size and duration (within one frame); a miss
    says how the clips were joined (through ffmpeg: naming the clip whose index the table join refused)."""
    frame = 1 / float(plan.target.fps)
    how = f" (joined by {plan.joined_by})"
    if result.frame_count != plan.frame_count:
        raise AssemblyError(f"final video has {result.frame_count} frames, planned {plan.frame_count}{how}")
    if abs(result.video_duration_s - plan.duration_s) > frame + 1e-3:
        raise AssemblyError(
            f"final video is {result.video_duration_s:.3f} s, planned {plan.duration_s:.3f} s{how}"
        )
    if (result.width, result.height) != (plan.target.width, plan.target.height):
        raise AssemblyError(
            f"final video is {result.width}x{result.height}, planned {plan.target.width}x{plan.target.height}"
        )


def diagnose(plan: JoinPlan) -> None:
    """After a failed or short join: raise naming the first clip whose frames cannot all be read."""
    for index, path, promised in plan.sources:
        readable = readable_frames(path)
        if readable < promised:
            raise AssemblyError(
                f"segment {index}: clip {path.name} is truncated or corrupt: {readable} of {promised} frames readable"
            )


#: Bytes of MP4 index per sample (sizes, offsets, timing, sync entries), generously; plus a fixed part.
MOOV_BYTES_PER_SAMPLE = 24
MOOV_BASE_BYTES = 65_536


def samples_planned(plan: JoinPlan, extra: int = 0) -> int:
    """Video frames, audio packets (of ~1024 samples) and ``extra`` (subtitle cues) the output will index."""
    audio = 0
    if plan.target.audio is not None or extra:
        audio = math.ceil(plan.duration_s * 48_000 / 1024) + 2 * len(plan.sources)
    return plan.frame_count + audio + 2 * extra


def write_mp4(args: list[str], dest: Path, *, samples: int, timeout: float = 3600) -> None:
    """Write an MP4 whose index (moov) comes first, in one pass: space for it is reserved up front from the
    planned sample count (``-moov_size``). ``+faststart`` would write the file and then move it all again;
    it is the fallback if the reservation turns out too small."""
    reserve = MOOV_BASE_BYTES + MOOV_BYTES_PER_SAMPLE * samples
    try:
        run_ffmpeg([*args, "-moov_size", str(reserve), str(dest)], timeout=timeout)
    except FFmpegError as exc:
        if "reserved_moov_size is too small" not in str(exc):
            raise
        run_ffmpeg([*args, "-movflags", "+faststart", str(dest)], timeout=timeout)


def concat_input(plan: JoinPlan) -> list[str]:
    """ffmpeg input options that read the joined clips."""
    return ["-f", "concat", "-safe", "0", "-i", str(plan.listing)]


def aligned_audio(plan: JoinPlan) -> str:
    """Filters for the joined audio: decoded samples are padded or dropped to follow their timestamps (each
    clip's sound starts with its picture), then cut to the video's exact length."""
    end = _seconds(Fraction(plan.frame_count) / plan.target.fps)
    return f"aresample=async=1:first_pts=0,apad,atrim=end={end}"


def audio_output(plan: JoinPlan) -> list[str]:
    """Encoder options for the joined audio (re-encoded: see the module docstring)."""
    return _audio_codec(plan.target)


def write_video(plan: JoinPlan, dest: Path, captions: list[tuple[float, float, str]] | None = None) -> None:
    """Write the joined video without audio, index first: by sample tables when the plan allows (with a
    timed-text track of ``captions``: start s, end s, text), else with ffmpeg's concat demuxer (stream copy;
    captions are then muxed by an ffmpeg pass of the caller's)."""
    if plan.tables is not None:
        _write_tables(plan, dest, captions)
    elif captions:
        raise ValueError("captions are written by the sample-table join only")
    else:
        write_mp4(
            [*concat_input(plan), "-map", "0:v:0", "-c:v", "copy", "-an"], dest, samples=samples_planned(plan)
        )


def video_input(plan: JoinPlan, workdir: Path) -> list[str]:
    """ffmpeg input options whose input 0 is the joined video (and, from the concat demuxer, the clips' audio)."""
    if plan.tables is None:
        return concat_input(plan)
    video = workdir / "joined-video.mp4"
    _write_tables(plan, video)
    return ["-i", str(video)]


def _write_tables(plan: JoinPlan, dest: Path, captions: list[tuple[float, float, str]] | None = None) -> None:
    assert plan.tables is not None
    try:
        mp4_join.write_joined(plan.tables, dest, captions=captions)
    except mp4_join.Corrupt as exc:
        index = next(index for index, path, _ in plan.sources if path == exc.path)
        raise AssemblyError(f"segment {index}: clip {exc.path.name} is corrupt: {exc}") from None


def write_checked(
    plan: JoinPlan,
    dest: Path,
    write: Callable[[Path], None],
    check: Callable[[VideoProbe, Path], None],
    what: str,
) -> VideoProbe:
    """Write the joined video with ``write`` to a temp file next to ``dest``, probe it, ``check`` it against
    the plan and move it into place; a failed or short join names the clip to blame, and nothing is left."""
    tmp = dest.with_name(f".{dest.name}.tmp.mp4")
    try:
        write(tmp)
        result = probe(tmp)
        if result.frame_count != plan.frame_count:
            diagnose(plan)
        check(result, tmp)
        os.replace(tmp, dest)
    except (FFmpegError, OSError) as exc:
        diagnose(plan)
        raise AssemblyError(f"could not {what}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return replace(result, size_bytes=dest.stat().st_size)


def join(plan: JoinPlan, dest: Path) -> VideoProbe:
    """The plain join: the video stream-copied, audio (if any) re-aligned, index first; probed, checked,
    written atomically."""

    def write(tmp: Path) -> None:
        if not plan.has_audio:
            write_video(plan, tmp)
            return
        audio = ["-map", "0:a:0", "-af", aligned_audio(plan), *audio_output(plan)]
        write_mp4(
            [*concat_input(plan), "-map", "0:v:0", "-c:v", "copy", *audio], tmp, samples=samples_planned(plan)
        )

    return write_checked(plan, dest, write, lambda result, _: check_joined(result, plan), "join the clips")
