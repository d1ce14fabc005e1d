"""The providers by name: every module of this package that defines ``PROVIDER`` is one.

Adding a provider is adding its module (and its fake and tests): nothing outside this package names one. A
provider is *local* (renders on this machine: :class:`~video_pipeline.providers.base.LocalProvider`) or
*remote* (paid, asynchronous: :class:`~video_pipeline.providers.port.RemoteProvider`).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any, cast

from video_pipeline import providers as _package
from video_pipeline.providers.base import LocalProvider
from video_pipeline.providers.port import ModelSpec, RemoteProvider, Stage

#: A spec that names no provider gets the offline one: it never spends.
DEFAULT_PROVIDER = "storyboard"
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


def names() -> list[str]:
    return sorted(_all())


def get(name: str) -> LocalProvider | RemoteProvider:
    try:
        return cast("LocalProvider | RemoteProvider", _all()[name])
    except KeyError:
        raise ProviderUnavailable(f"no provider {name!r}; known: {', '.join(names())}") from None


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
