"""Stage pools sized from the providers' concurrency limits (and the narration pool from the voices').

A pool of exactly a provider's concurrency loses a hand-off at every wave; a queue depth of 2 keeps the
provider's own queue non-empty (measured 1.00–1.02× the provider bound vs 1.12–1.58×; docs/notes). Each
remote provider with a configured connection counts: its account's own limits when its API states them (a
client with ``account_limits()``, e.g. a plan's tier), else its documented default (``concurrency``). Pools
are per stage (a mapped task's pool is fixed when the DAG is parsed, the provider only when a run starts), so
each stage's pool is sized for the largest of them. Without any configured provider the pools get
``DEFAULT_POOL_SLOTS``.

    python -m video_pipeline_airflow.pools      # create/resize the pools (compose's airflow-init runs this)
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping

from video_pipeline.providers import registry
from video_pipeline.providers.port import RemoteProvider, Stage
from video_pipeline_airflow.hooks.provider import ProviderHook
from video_pipeline_airflow.settings import CLIP_POOL, DEFAULT_POOL_SLOTS, IMAGE_POOL, NARRATION_POOL

log = logging.getLogger(__name__)
QUEUE_DEPTH = 2
POOLS: dict[Stage, str] = {"images": IMAGE_POOL, "clips": CLIP_POOL}


def slots_for(limit: int | None) -> int:
    return DEFAULT_POOL_SLOTS if not limit or limit < 1 else limit * QUEUE_DEPTH


def provider_limits(provider: RemoteProvider) -> Mapping[Stage, int] | None:
    """Tasks in flight per stage the provider takes from this deployment's account; ``None`` when it has no
    connection configured (this deployment does not use it)."""
    hook = ProviderHook(provider.name)
    try:
        client = hook.get_client()
    except Exception:  # no connection or key: not used here
        return None
    limits = dict(provider.concurrency)
    read = getattr(client, "account_limits", None)
    try:
        with client:
            by_model = read() if read is not None else {}
    except Exception as exc:  # the API unreachable: its documented defaults
        log.info("%s account limits unavailable (%s); using its defaults", provider.name, type(exc).__name__)
        by_model = {}
    for stage in limits:
        model = provider.default_models[stage]
        if model in by_model:
            limits[stage] = by_model[model]
    return limits


def narration_slots() -> int:
    """The narration pool: the largest concurrency among the voices this deployment can use (the offline one
    always; a paid one when its connection is configured). A voice answers synchronously, so no queue depth:
    a slot is a request in flight."""
    slots = 0
    for name in registry.speech_names():
        voice = registry.speech(name)
        if voice.conn_id is not None:
            try:
                ProviderHook(name).endpoint()
            except Exception:  # no connection or key: not used here
                continue
        slots = max(slots, voice.concurrency)
    return slots or DEFAULT_POOL_SLOTS


def planned_pools() -> dict[str, int]:
    """Pool sizes: per stage, the largest limit among configured remote providers × the queue depth; the
    narration pool from the voices (``narration_slots``)."""
    sizes = {pool: 0 for pool in POOLS.values()}
    for name in registry.remote_names():
        limits = provider_limits(registry.remote(name))
        for stage, limit in (limits or {}).items():
            sizes[POOLS[stage]] = max(sizes[POOLS[stage]], slots_for(limit))
    return {
        NARRATION_POOL: narration_slots(),
        **{pool: size or DEFAULT_POOL_SLOTS for pool, size in sizes.items()},
    }


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
