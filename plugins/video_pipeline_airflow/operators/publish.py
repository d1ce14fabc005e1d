"""The last step of a job: complete the manifest, release the job, and tell Airflow a video now exists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context

from video_pipeline.manifest import load_manifest
from video_pipeline.models import JobSpec
from video_pipeline.provenance import run_provenance
from video_pipeline_airflow import stages
from video_pipeline_airflow.assets import FINAL_VIDEO_ALIAS, final_video_asset
from video_pipeline_airflow.hooks.storage import get_storage

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage


class PublishOperator(BaseOperator):
    """Publishes a finished job (``stages.publish``: the manifest completed, the run closed, the job released)
    and emits an asset event for its final video through the alias ``video_pipeline_final_video``, with
    :class:`video_pipeline.published.PublishedVideo` (job and run ids, duration, credits, the video's and the
    manifest's keys and storage URIs) as the event's ``extra`` (see ``video_pipeline_airflow.assets``).
    With the OpenLineage provider configured, its COMPLETE event carries the run's whole lineage
    (``video_pipeline_airflow.lineage``).

    :param job: the validated job spec as a dict (templated: ``validate_job``'s ``job`` XCom).
    :param segments: the approved segments as dicts (templated: the clips gate's output).
    :param final: the assembled video as a dict (templated: ``assemble``'s output).
    :param kwargs: passed to ``BaseOperator``; ``outlets`` is the alias and cannot be replaced.
    """

    template_fields: Sequence[str] = ("job", "segments", "final")
    ui_color = "#d9f2d9"

    def __init__(self, *, job: Any, segments: Any, final: Any, **kwargs: Any) -> None:
        kwargs.pop("outlets", None)
        super().__init__(outlets=[FINAL_VIDEO_ALIAS], **kwargs)
        self.job = job
        self.segments = segments
        self.final = final

    def execute(self, context: Context) -> dict[str, Any]:
        published = stages.publish(self.job, self.segments, self.final)
        extra = published.model_dump(mode="json")
        context["outlet_events"][FINAL_VIDEO_ALIAS].add(final_video_asset(published), extra=extra)
        self.log.info("Asset event for %s (alias %s)", published.final_uri, FINAL_VIDEO_ALIAS.name)
        return extra

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The OpenLineage provider asks for the lineage of a successful run here (in the task's process, after
        ``execute``): read back from the manifest ``execute`` completed."""
        from video_pipeline_airflow.lineage import operator_lineage

        storage = get_storage()
        job_id = JobSpec.model_validate(self.job).job_id
        manifest = load_manifest(storage, job_id)
        if manifest is None:
            raise RuntimeError(f"manifest for job {job_id!r} is missing from {storage.url}")
        return operator_lineage(run_provenance(storage.url, manifest, task_instance.run_id))
