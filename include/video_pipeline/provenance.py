"""What a finished run made, from what, and what it cost: the lineage of a job in plain values, which the
Airflow side turns into OpenLineage datasets and a run facet (``video_pipeline_airflow.lineage``).

Datasets are named as OpenLineage names objects (and as its Airflow provider names S3 and file assets):

- storage objects: ``s3://<bucket>`` + ``<prefix>/<key>`` on S3, ``file`` + ``/<root>/<key>`` on local storage;
- the job spec: ``video-pipeline`` + ``jobs/<job_id>/spec``, its version the hash of the spec's content (the
  spec travels in the run's conf; the manifest keeps a copy);
- a provider model: ``video-provider://<provider>`` + ``<model>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

from video_pipeline.layout import JobLayout, content_hash
from video_pipeline.models import Manifest, Stage
from video_pipeline.published import run_credits_by_stage

SPEC_NAMESPACE = "video-pipeline"
PROVIDER_NAMESPACE = "video-provider://{provider}"


@dataclass(frozen=True)
class DatasetRef:
    """One OpenLineage dataset: where (``namespace``), what (``name``), which version, and what it is."""

    namespace: str
    name: str
    version: str | None = None
    description: str | None = None


@dataclass
class Provenance:
    """A run's lineage: its inputs, its outputs, and the facts of the ``videoPipeline`` run facet."""

    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetRef] = field(default_factory=list)
    facet: dict[str, Any] = field(default_factory=dict)


def storage_dataset(storage_url: str, key: str, description: str | None = None) -> DatasetRef:
    """The dataset of ``key`` under the storage root ``storage_url`` (``s3://bucket/prefix`` or
    ``file:///root``)."""
    parsed = urlparse(storage_url)
    path = "/".join(part for part in (unquote(parsed.path).strip("/"), key) if part)
    if parsed.scheme == "s3":
        return DatasetRef(f"s3://{parsed.netloc}", path, description=description)
    if parsed.scheme == "file":
        return DatasetRef("file", f"/{path}", description=description)
    raise ValueError(f"unsupported storage URL {storage_url!r}")


def provider_model(provider: str, model: str, stage: Stage) -> DatasetRef:
    kind = "image model" if stage == "images" else "clip model"
    return DatasetRef(PROVIDER_NAMESPACE.format(provider=provider), model, description=f"{provider} {kind}")


def run_provenance(storage_url: str, manifest: Manifest, run_id: str) -> Provenance:
    """The lineage of ``run_id``, which finished ``manifest``'s job: the spec, its audio track and the models
    that made its segments in; every image, clip, the final video and what was stored beside it, and the
    manifest out; credits and this run's gate decisions in the facet."""
    job = manifest.job
    layout = JobLayout(job.job_id)
    spec = job.model_dump(mode="json")
    inputs = [
        DatasetRef(
            SPEC_NAMESPACE,
            f"{layout.root}/spec",
            content_hash(spec)[:16],
            description=f"job spec: {job.title}",
        )
    ]
    if job.finishing.audio_key:
        inputs.append(storage_dataset(storage_url, job.finishing.audio_key, "audio track"))
    models: dict[tuple[str, str, Stage], None] = {}
    for segment in manifest.segments:
        for stage, provider, model in (
            ("images", segment.image_provider, segment.image_model),
            ("clips", segment.clip_provider, segment.clip_model),
        ):
            if provider and model:
                models[(provider, model, stage)] = None  # type: ignore[index]
    if not models:  # a manifest from before segments named their makers: the spec's choices
        for stage in ("images", "clips"):
            choice = job.choice(stage)  # type: ignore[arg-type]
            models[(choice.provider, str(choice.model), stage)] = None  # type: ignore[index]
    inputs += [provider_model(provider, model, stage) for provider, model, stage in models]

    outputs = []
    for segment in manifest.segments:
        if segment.image_key:
            outputs.append(storage_dataset(storage_url, segment.image_key, f"segment {segment.index} image"))
        if segment.clip_key:
            outputs.append(storage_dataset(storage_url, segment.clip_key, f"segment {segment.index} clip"))
    final = manifest.final
    if final is not None:
        outputs.append(storage_dataset(storage_url, final.key, "final video"))
        for label, key in (
            ("poster", final.poster_key),
            ("preview", final.preview_key),
            ("subtitles", final.subtitles_key),
        ):
            if key:
                outputs.append(storage_dataset(storage_url, key, f"final video {label}"))
    outputs.append(storage_dataset(storage_url, layout.manifest, "job manifest"))
    return Provenance(inputs, outputs, run_facet(manifest, run_id))


def run_facet(manifest: Manifest, run_id: str) -> dict[str, Any]:
    """Credits (estimate, this run's spend in total and per stage, the job's, what was lost, the budget) and
    this run's gate decisions (who, how, when, which segments)."""
    record = manifest.run_record(run_id)
    return {
        "jobId": manifest.job.job_id,
        "segments": len(manifest.segments),
        "credits": {
            "estimate": manifest.credits_estimate,
            "spent": record.credits_spent if record else 0.0,
            "spentByStage": run_credits_by_stage(manifest, run_id),
            "spentByJob": manifest.credits_spent,
            "lostByJob": manifest.credits_lost,
            "budget": manifest.job.budget_credits,
        },
        "decisions": [
            {
                "stage": d.stage,
                "decision": d.decision,
                "segments": d.segments,
                "via": d.via,
                "by": d.by,
                "at": d.at.isoformat(),
                "round": d.round,
            }
            for d in manifest.decisions
            if d.run_id == run_id
        ],
    }
