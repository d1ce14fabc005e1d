"""The provider protocol: what the pipeline asks of an image/clip generator.

Two shapes exist. A *local* provider (storyboard) renders synchronously into a file. A *remote* provider
(Runway) is asynchronous: submit → provider task id → poll until a terminal state → download the output.
The Airflow adapters persist the task id before the first poll and defer while waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from video_pipeline.models import Ratio

#: Request fields a provider draws into its output beyond those every output depends on. The storyboard card
#: shows the segment number ("#002", see ``StoryboardProvider.render_image``): without the index in its key,
#: job B's segment 1 was served job A's card of segment 2 (same prompt, seed and ratio). A remote model's
#: output does not depend on the index, so its cache stays shared across positions and jobs.
DRAWN_FIELDS: dict[str, tuple[str, ...]] = {"storyboard": ("index",)}


class ImageRequest(BaseModel):
    prompt: str
    seed: int
    ratio: Ratio
    model: str
    index: int

    def cache_fields(self, provider: str) -> dict[str, Any]:
        """Everything that determines the output (the content-addressed cache key)."""
        return {
            "provider": provider,
            "model": self.model,
            "prompt": self.prompt,
            "seed": self.seed,
            "ratio": self.ratio,
            **{name: getattr(self, name) for name in DRAWN_FIELDS.get(provider, ())},
        }


class ClipRequest(ImageRequest):
    """An image request's fields (prompt = the motion prompt) plus the clip's length and source image."""

    duration_s: int
    image_sha256: str

    def cache_fields(self, provider: str) -> dict[str, Any]:
        return {
            **super().cache_fields(provider),
            "duration_s": self.duration_s,
            "image_sha256": self.image_sha256,
        }


class LocalProvider(Protocol):
    """Renders outputs on this machine; no provider task ids, no credits.

    :param name: the registry name a job spec uses (``provider``).
    :param models: every model it offers, by name (``video_pipeline.providers.port.ModelSpec``).
    :param default_models: the model a stage uses when the spec names none.
    """

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> Mapping[str, Any]: ...

    @property
    def default_models(self) -> Mapping[Any, str]: ...

    def render_image(self, request: ImageRequest, dest: Path) -> Path: ...

    def render_clip(self, request: ClipRequest, image: Path, dest: Path) -> Path: ...
