"""Picks the provider implementation a job asks for."""

from __future__ import annotations

from video_pipeline.models import JobSettings
from video_pipeline.providers.base import LocalProvider


class ProviderUnavailable(ValueError):
    pass


def local_provider(job: JobSettings) -> LocalProvider:
    if job.provider == "storyboard":
        # Imported here: Pillow and the renderer are not needed by tasks of other providers.
        from video_pipeline.providers.storyboard import StoryboardProvider

        return StoryboardProvider()
    raise ProviderUnavailable(f"provider: {job.provider!r} has no local renderer")
