"""OpenLineage for a finished job, handed to the OpenLineage provider by ``publish``
(``PublishOperator.get_openlineage_facets_on_complete``, the provider's hook for custom operators).

With the provider configured (``[openlineage] transport``, see the README), ``publish``'s COMPLETE event holds
the run's whole lineage (``video_pipeline.provenance``): the spec, the audio track and the provider models in;
every image, clip, the final video, its poster/preview/subtitles and the manifest out, in their storage
namespaces; and the run facet ``videoPipeline`` with the credits and the gate decisions. Every other task
emits the provider's usual events (no datasets).
"""

from __future__ import annotations

from typing import Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    documentation_dataset,
)

from video_pipeline.provenance import DatasetRef, Provenance

#: The run facet's key in an OpenLineage event.
FACET_NAME = "videoPipeline"
#: Names the facet's schema (its fields are documented in the README, "Lineage"); versioned with the facet.
FACET_SCHEMA = "urn:video-pipeline:openlineage:facet:VideoPipelineRunFacet:1-0-0"


@attr.define
class VideoPipelineRunFacet(RunFacet):
    """What a run of ``video_generation`` cost and who decided what at its gates.

    :param jobId: the job.
    :param segments: how many segments the job has.
    :param credits: ``estimate``, ``spent`` (this run), ``spentByStage`` (``images``, ``clips``), ``spentByJob``
        (all runs), ``lostByJob`` (paid outputs that could not be fetched), ``budget`` (the spec's, or None).
    :param decisions: this run's gate decisions (``stage``, ``decision``, ``segments``, ``via``, ``by``,
        ``at``, ``round``).
    """

    jobId: str  # OpenLineage facets spell their fields in camelCase
    segments: int
    credits: dict[str, Any]
    decisions: list[dict[str, Any]]

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


def dataset(ref: DatasetRef) -> Dataset:
    facets: dict[str, DatasetFacet] = {}
    if ref.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=ref.version)
    if ref.description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=ref.description)
    return Dataset(namespace=ref.namespace, name=ref.name, facets=facets)


def operator_lineage(provenance: Provenance) -> OperatorLineage:
    """The provider's lineage structure for ``provenance``."""
    return OperatorLineage(
        inputs=[dataset(ref) for ref in provenance.inputs],
        outputs=[dataset(ref) for ref in provenance.outputs],
        run_facets={FACET_NAME: VideoPipelineRunFacet(**provenance.facet)},
    )
