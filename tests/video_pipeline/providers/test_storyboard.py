"""The storyboard provider's real output, probed: deterministic images, uniform H.264 clips."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from video_pipeline.generation import generate_image
from video_pipeline.layout import cache_key
from video_pipeline.media.probe import probe
from video_pipeline.models import RATIOS, JobSpec
from video_pipeline.providers.base import ClipRequest, ImageRequest
from video_pipeline.providers.storyboard import FPS, StoryboardProvider, camera_move
from video_pipeline.segmentation import segments_for
from video_pipeline.storage import LocalStorage

PROVIDER = StoryboardProvider()


def image_request(**overrides: object) -> ImageRequest:
    fields: dict[str, object] = {
        "prompt": "A red fox at dawn",
        "seed": 3,
        "ratio": "1280:720",
        "model": "m",
        "index": 7,
    }
    fields.update(overrides)
    return ImageRequest.model_validate(fields)


def test_images_are_deterministic_and_seeded(tmp_path: Path) -> None:
    a = PROVIDER.render_image(image_request(), tmp_path / "a.png").read_bytes()
    b = PROVIDER.render_image(image_request(), tmp_path / "b.png").read_bytes()
    c = PROVIDER.render_image(image_request(seed=4), tmp_path / "c.png").read_bytes()
    assert a == b
    assert a != c


@pytest.mark.parametrize("ratio", sorted(RATIOS))
def test_image_resolution_per_ratio(tmp_path: Path, ratio: str) -> None:
    path = PROVIDER.render_image(image_request(ratio=ratio), tmp_path / "i.png")
    with Image.open(path) as image:
        assert image.size == RATIOS[ratio]
        assert image.format == "PNG"


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    tmp = tmp_path_factory.mktemp("clips")
    image = PROVIDER.render_image(image_request(), tmp / "image.png")
    out = []
    for seed, duration in ((1, 2), (2, 3)):
        request = ClipRequest(
            prompt="p", seed=seed, ratio="1280:720", model="m", duration_s=duration, index=1, image_sha256="x"
        )
        out.append(PROVIDER.render_clip(request, image, tmp / f"clip{seed}.mp4"))
    return out


def test_clip_is_exact_h264(clips: list[Path]) -> None:
    info = probe(clips[0])
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 1280, 720)
    assert info.fps == FPS
    assert info.frame_count == 2 * FPS
    assert abs(info.duration_s - 2.0) <= 1 / FPS
    assert not info.has_audio


def test_clips_share_stream_parameters(clips: list[Path]) -> None:
    first, second = (probe(c) for c in clips)
    assert first.stream_signature() == second.stream_signature()
    assert second.frame_count == 3 * FPS


def test_clip_write_is_atomic(tmp_path: Path) -> None:
    bad_image = tmp_path / "not-an-image.png"
    bad_image.write_bytes(b"nope")
    request = ClipRequest(
        prompt="p", seed=1, ratio="960:960", model="m", duration_s=2, index=1, image_sha256="x"
    )
    with pytest.raises(Exception):  # noqa: B017, PT011 - Pillow raises its own error type
        PROVIDER.render_clip(request, bad_image, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-an-image.png"]


# -- the cache key holds everything the card shows ---------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"prompt": "A grey fox at dusk"}, {"seed": 4}, {"ratio": "960:960"}, {"index": 8}, {"model": "other"}],
    ids=lambda change: next(iter(change)),
)
def test_whatever_changes_the_card_changes_its_cache_key(tmp_path: Path, change: dict[str, object]) -> None:
    """A field that changes the rendered card must change the storyboard's cache key (else a cache hit serves
    another card); the index is drawn on the card as "#NNN"."""
    base, changed = image_request(), image_request(**change)
    drawn_differs = (
        PROVIDER.render_image(base, tmp_path / "a.png").read_bytes()
        != PROVIDER.render_image(changed, tmp_path / "b.png").read_bytes()
    )
    key_differs = cache_key("images", base.cache_fields("storyboard")) != cache_key(
        "images", changed.cache_fields("storyboard")
    )
    assert key_differs or not drawn_differs
    if "index" in change:
        assert drawn_differs and key_differs


def test_a_remote_providers_cache_is_shared_across_positions() -> None:
    """The index is the storyboard's: Runway's output does not depend on it, so nothing is paid twice."""
    assert image_request(index=1).cache_fields("runway") == image_request(index=9).cache_fields("runway")


def test_two_jobs_with_one_prompt_at_different_indexes_get_their_own_cards(tmp_path: Path) -> None:
    """Seen: job B's segment 1 showed job A's "#002" (same prompt; seeds 0 + 2 and 1 + 1 are the same)."""
    storage = LocalStorage(tmp_path / "store")
    segments = [{"prompt": "A red fox at dawn", "duration_s": 2}]
    job_a = JobSpec.model_validate({"job_id": "job-a", "title": "A", "seed": 0, "segments": segments * 2})
    job_b = JobSpec.model_validate({"job_id": "job-b", "title": "B", "seed": 1, "segments": segments})
    a2 = generate_image(storage, job_a, segments_for(job_a)[1], PROVIDER)
    b1 = generate_image(storage, job_b, segments_for(job_b)[0], PROVIDER)
    assert (a2.seed, b1.seed) == (2, 2)
    assert not b1.image_cache_hit  # the cache holds A's card #002, not B's #001
    assert a2.image_key and b1.image_key
    for segment in (a2, b1):
        request = ImageRequest(
            prompt=segment.prompt,
            seed=segment.seed,
            ratio="1280:720",
            model="gen4_image",
            index=segment.index,
        )
        card = PROVIDER.render_image(request, tmp_path / f"card-{segment.index}.png").read_bytes()
        assert storage.get_bytes(segment.image_key or "") == card  # each shows its own number
    assert storage.get_bytes(a2.image_key) != storage.get_bytes(b1.image_key)


def test_a_new_motion_prompt_moves_the_camera_differently() -> None:
    """A clip's move depends on its motion prompt over a continuous range: 1000 prompts, 1000 moves."""

    def request(prompt: str) -> ClipRequest:
        return ClipRequest(
            prompt=prompt, seed=1, ratio="1280:720", model="m", duration_s=2, index=1, image_sha256="x"
        )

    assert len({camera_move(request(f"slow push {n}")) for n in range(1000)}) == 1000
    # (tests/plugins/operators/test_gate.py renders clips before and after a redo and compares their bytes)
