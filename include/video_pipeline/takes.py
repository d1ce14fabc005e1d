"""Takes: k candidate images or clips per segment (``takes`` in the spec), one of which the reviewer picks.

Take 1 is what a one-take job makes (same seed, same key), so nothing changes for ``takes: 1``. Take ``t`` asks
the provider for the same output with another seed (:func:`take_seed`) and is stored at its own key
(``JobLayout.take_key``). A segment lists every take's key (``image_takes`` / ``clip_takes``) and its stage key
(``image_key`` / ``clip_key``) is the picked take's, so everything downstream (clips from images, assembly) uses
the pick without knowing that takes exist; the other takes' keys stay in the manifest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from video_pipeline.models import MAX_TAKES, Stage, VideoSegment

#: Seed distance between two takes of a segment. Not 1: segment n uses seed + n, so with a step of 1 take 2 of
#: segment n would ask for segment n + 1's take 1 (same seed), and two segments with the same prompt on a remote
#: provider (whose cache ignores the segment's position) would share one output instead of offering a choice.
#: A prime far above any segment count or redo offset (``REDO_SEED_STEP`` = 100 003, 20 rounds at most).
TAKE_SEED_STEP = 1_000_003
#: Seeds stay in the spec's range (0 … 2³²−1), which every provider takes.
SEED_MODULUS = 2**32


def take_seed(seed: int, take: int) -> int:
    """The seed of take ``take`` (1-based) of an output whose take 1 uses ``seed``."""
    if not 1 <= take <= MAX_TAKES:
        raise ValueError(f"take {take} is not between 1 and {MAX_TAKES}")
    return seed if take == 1 else (seed + (take - 1) * TAKE_SEED_STEP) % SEED_MODULUS


def _prefix(stage: Stage) -> str:
    return "image" if stage == "images" else "clip"


def merge_takes(stage: Stage, results: Sequence[VideoSegment]) -> VideoSegment:
    """One segment from its takes' results (take 1 first): take 1 is picked, every take's key is listed
    (none with a single take, as before takes existed)."""
    if not results:
        raise ValueError("a segment needs at least one take")
    prefix = _prefix(stage)
    keys = [getattr(r, f"{prefix}_key") for r in results]
    if any(key is None for key in keys):
        raise ValueError(f"{results[0].label}: a take has no {prefix}")
    return results[0].model_copy(
        update={f"{prefix}_takes": keys if len(keys) > 1 else [], f"{prefix}_pick": 1}
    )


def pick_errors(picks: Mapping[int, int], segments: Sequence[VideoSegment], stage: Stage) -> list[str]:
    """What is wrong with ``picks`` (segment → take) at this gate: segments not in the job, takes it does not
    have. Empty: every pick can be applied."""
    counts = {s.index: max(1, len(s.takes(stage))) for s in segments}
    problems = []
    for index, take in sorted(picks.items()):
        if index not in counts:
            problems.append(f"segment {index} is not in this job")
        elif not 1 <= take <= counts[index]:
            have = counts[index]
            problems.append(
                f"segment {index} has {have} take{'s' if have > 1 else ''} (pick 1–{have}), not {take}"
            )
    return problems


def apply_picks(
    segments: Sequence[VideoSegment], stage: Stage, picks: Mapping[int, int], *, skip: Sequence[int] = ()
) -> list[VideoSegment]:
    """The segments with each pick applied: the stage's key becomes the picked take's. Segments in ``skip``
    (redone: their takes are about to be replaced) and segments without takes keep theirs. Picks must have
    passed :func:`pick_errors`."""
    prefix = _prefix(stage)
    picked = []
    for segment in segments:
        take = picks.get(segment.index)
        keys = segment.takes(stage)
        if take is None or segment.index in skip or len(keys) < 2:
            picked.append(segment)
            continue
        picked.append(segment.model_copy(update={f"{prefix}_key": keys[take - 1], f"{prefix}_pick": take}))
    return picked
