"""The provider registry: every module of the providers package with a ``PROVIDER`` is one, local or remote."""

from __future__ import annotations

import pytest

from video_pipeline.providers import registry
from video_pipeline.providers.port import RemoteProvider


def test_every_provider_module_is_found_and_classified() -> None:
    names = registry.names()
    assert {"runway", "storyboard"} <= set(names)
    assert registry.DEFAULT_PROVIDER in names and not registry.is_remote(registry.DEFAULT_PROVIDER)
    for name in registry.remote_names():
        provider = registry.remote(name)
        assert isinstance(provider, RemoteProvider) and provider.name == name
        for stage in ("images", "clips"):
            default = provider.models[provider.default_models[stage]]
            assert default.stage == stage
            assert provider.concurrency[stage] >= 1
        assert provider.min_poll_s > 0 and provider.conn_id


def test_the_wrong_kind_is_refused_by_name() -> None:
    with pytest.raises(registry.ProviderUnavailable, match="renders locally"):
        registry.remote(registry.DEFAULT_PROVIDER)
    with pytest.raises(registry.ProviderUnavailable, match="is remote"):
        registry.local("runway")
    with pytest.raises(registry.ProviderUnavailable, match="no provider 'pixie'"):
        registry.get("pixie")


def test_model_specs_default_per_stage_and_refuse_models_of_the_other_stage() -> None:
    assert registry.model_spec("runway", "clips", None).name == "gen4_turbo"
    assert registry.model_spec("runway", "clips", "gen4.5").durations == tuple(range(2, 11))
    with pytest.raises(
        ValueError, match=r"runway has no clips model 'gen4_image'; it offers gen4\.5, gen4_turbo"
    ):
        registry.model_spec("runway", "clips", "gen4_image")


def test_every_remote_provider_prices_its_default_models() -> None:
    from video_pipeline.providers.base import ClipRequest, ImageRequest

    for name in registry.remote_names():
        provider = registry.remote(name)
        image = ImageRequest(
            prompt="p", seed=1, ratio="1280:720", model=provider.default_models["images"], index=1
        )
        clips = provider.models[provider.default_models["clips"]]
        clip = ClipRequest(
            prompt="p",
            seed=1,
            ratio="1280:720",
            model=clips.name,
            index=1,
            duration_s=clips.clip_duration(5),
            image_sha256="0" * 64,
        )
        assert provider.estimate(image) > 0 and provider.estimate(clip) > 0
