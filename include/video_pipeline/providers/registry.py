"""The providers by name: every module of this package that defines ``PROVIDER`` is one.

Adding a provider is adding its module (and its fake and tests): nothing outside this package names one. A
provider is *local* (renders on this machine: :class:`~video_pipeline.providers.base.LocalProvider`) or
*remote* (paid, asynchronous: :class:`~video_pipeline.providers.port.RemoteProvider`); both make images and
clips (:func:`names`). A *voice* (:class:`~video_pipeline.providers.port.SpeechProvider`) speaks narration
(:func:`speech_names`, :func:`speech`); it is never an image or clip provider.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, cast

from video_pipeline import providers as _package
from video_pipeline.providers.base import LocalProvider
from video_pipeline.providers.port import ModelSpec, RemoteProvider, SpeechProvider, Stage

#: A spec that names no provider gets the offline one: it never spends.
DEFAULT_PROVIDER = "storyboard"
#: A spec that names no voice gets the offline one: no key, no network, nothing downloaded.
DEFAULT_SPEECH_PROVIDER = "espeak"
#: Modules of this package that are the port's own, not providers.
_INFRASTRUCTURE = frozenset({"base", "http", "port", "registry"})


class ProviderUnavailable(ValueError):
    """No such provider, or not of the kind asked for."""


@functools.cache
def _all() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for module in pkgutil.iter_modules(_package.__path__):
        if module.name in _INFRASTRUCTURE or module.name.startswith("_"):
            continue
        provider = getattr(importlib.import_module(f"{_package.__name__}.{module.name}"), "PROVIDER", None)
        if provider is not None:
            found[provider.name] = provider
    return found


def all_names() -> list[str]:
    """Every provider: image/clip providers and voices."""
    return sorted(_all())


def names() -> list[str]:
    """The providers that make images and clips."""
    return sorted(name for name, provider in _all().items() if not isinstance(provider, SpeechProvider))


def speech_names() -> list[str]:
    """The voices."""
    return sorted(name for name, provider in _all().items() if isinstance(provider, SpeechProvider))


def get(name: str) -> LocalProvider | RemoteProvider:
    provider = _all().get(name)
    if provider is None or isinstance(provider, SpeechProvider):
        raise ProviderUnavailable(f"no provider {name!r}; known: {', '.join(names())}") from None
    return cast("LocalProvider | RemoteProvider", provider)


def speech(name: str) -> SpeechProvider:
    provider = _all().get(name)
    if not isinstance(provider, SpeechProvider):
        raise ProviderUnavailable(f"no voice provider {name!r}; known: {', '.join(speech_names())}")
    return provider


def is_remote(name: str) -> bool:
    return isinstance(get(name), RemoteProvider)


def remote(name: str) -> RemoteProvider:
    provider = get(name)
    if not isinstance(provider, RemoteProvider):
        raise ProviderUnavailable(f"provider {name!r} renders locally; it has no remote API")
    return provider


def local(name: str) -> LocalProvider:
    provider = get(name)
    if isinstance(provider, RemoteProvider):
        raise ProviderUnavailable(f"provider {name!r} is remote; it has no local renderer")
    return cast(LocalProvider, provider)


def model_spec(name: str, stage: Stage, model: str | None) -> ModelSpec:
    """The model a stage uses (``None``: the provider's default for the stage); ``ValueError`` naming what the
    provider offers when it has no such model for the stage."""
    provider = get(name)
    chosen = model or provider.default_models[stage]
    spec = provider.models.get(chosen)
    if spec is None or spec.stage != stage:
        offered = sorted(m for m, s in provider.models.items() if s.stage == stage)
        raise ValueError(f"{name} has no {stage} model {chosen!r}; it offers {', '.join(offered)}")
    return spec


def remote_names() -> list[str]:
    return [name for name in names() if is_remote(name)]
