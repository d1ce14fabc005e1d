"""Provider pools sized from the Runway account's concurrency limits (``GET /v1/organization``).

A pool of exactly the provider's concurrency loses a hand-off at every wave; a queue depth of 2 keeps the
provider's own queue non-empty (measured 1.00–1.02× the provider bound vs 1.12–1.58×; notes/airflow-3.3.md).
Without a reachable Runway account the pools get ``DEFAULT_POOL_SLOTS``.

    python -m video_pipeline_airflow.pools      # create/resize the pools (compose's airflow-init runs this)
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any

from video_pipeline_airflow.hooks.runway import RunwayHook
from video_pipeline_airflow.settings import CLIP_POOL, DEFAULT_POOL_SLOTS, IMAGE_POOL

log = logging.getLogger(__name__)
QUEUE_DEPTH = 2


def slots_for(organization: dict[str, Any] | None, model: str) -> int:
    try:
        limit = int(organization["tier"]["models"][model]["maxConcurrentGenerations"])  # type: ignore[index]
    except (KeyError, TypeError, ValueError):
        return DEFAULT_POOL_SLOTS
    return max(1, limit * QUEUE_DEPTH)


def planned_pools(image_model: str = "gen4_image", video_model: str = "gen4_turbo") -> dict[str, int]:
    """Pool sizes from the account's limits when Runway answers, else the defaults."""
    organization: dict[str, Any] | None = None
    try:
        with RunwayHook().get_client() as client:
            organization = client.organization()
    except Exception as exc:  # no connection or key configured, or Runway unreachable
        log.info(
            "Runway organization limits unavailable (%s); using %d slots",
            type(exc).__name__,
            DEFAULT_POOL_SLOTS,
        )
    return {IMAGE_POOL: slots_for(organization, image_model), CLIP_POOL: slots_for(organization, video_model)}


def main() -> None:
    for name, slots in planned_pools().items():
        subprocess.run(
            [
                "airflow",
                "pools",
                "set",
                name,
                str(slots),
                "provider concurrency x queue depth",
                "--include-deferred",
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
