"""What a finished job tells the outside world: the finished video's identity, where it and its manifest live,
what it cost this run. The Airflow side sends it as the ``extra`` of an asset event (``video_pipeline_airflow
.assets``), so a downstream DAG (upload, notify, catalogue) gets it without reading the manifest.

Locations are storage URIs (``s3://bucket/prefix/jobs/<job_id>/final.mp4``, ``file:///…``), never presigned
links: an event is stored in Airflow's database and shown in its UI for good, while a presigned link is a
bearer credential that expires within the hour. A consumer signs its own link from the URI.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from video_pipeline.layout import JobLayout
from video_pipeline.models import Manifest, SpendStage
from video_pipeline.storage import Storage


def object_uri(storage: Storage, key: str) -> str:
    """The storage URI of ``key``: the storage's root URL and the key (``s3://bucket/prefix/<key>``,
    ``file:///root/<key>``)."""
    return f"{storage.url.rstrip('/')}/{key}"


def run_credits_by_stage(manifest: Manifest, run_id: str) -> dict[SpendStage, float]:
    """Credits this run spent per stage, from the spend ledger copied into the manifest (reserved less
    released: what the run's provider submissions cost)."""
    spent: dict[SpendStage, float] = {"narration": 0.0, "images": 0.0, "clips": 0.0}
    for entry in manifest.spend:
        if entry.run_id == run_id and entry.stage is not None:
            spent[entry.stage] = round(spent[entry.stage] + entry.credits, 6)
    return spent


class PublishedVideo(BaseModel):
    """A finished job as one flat, JSON-ready record (the asset event's ``extra``)."""

    job_id: str
    run_id: str
    title: str
    duration_s: float
    width: int
    height: int
    credits_spent: float = Field(description="What this run spent (the job's spend ledger, this run only).")
    credits_spent_job: float = Field(description="What the job has spent over all its runs.")
    final_key: str = Field(description="The final video's key under the storage root.")
    final_uri: str = Field(description="The final video's storage URI (never a presigned link).")
    manifest_key: str
    manifest_uri: str
    storage_url: str = Field(description="The storage root the keys are under.")

    @classmethod
    def of(cls, storage: Storage, manifest: Manifest, run_id: str) -> PublishedVideo:
        """The record of ``manifest``'s finished video, as published by ``run_id``."""
        if manifest.final is None:
            raise ValueError(f"job {manifest.job.job_id} has no final video to publish")
        layout = JobLayout(manifest.job.job_id)
        record = manifest.run_record(run_id)
        return cls(
            job_id=manifest.job.job_id,
            run_id=run_id,
            title=manifest.job.title,
            duration_s=round(manifest.final.duration_s, 3),
            width=manifest.final.width,
            height=manifest.final.height,
            credits_spent=record.credits_spent if record else 0.0,
            credits_spent_job=manifest.credits_spent,
            final_key=manifest.final.key,
            final_uri=object_uri(storage, manifest.final.key),
            manifest_key=layout.manifest,
            manifest_uri=object_uri(storage, layout.manifest),
            storage_url=storage.url,
        )
