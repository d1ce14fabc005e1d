"""The example consumer DAG parses on its own (Task SDK only) and schedules on the pipeline's asset alias."""

from __future__ import annotations

from pathlib import Path

from airflow.dag_processing.dagbag import DagBag
from airflow.sdk import AssetAlias, AssetAll

from video_pipeline_airflow.assets import FINAL_VIDEO_ALIAS_NAME

EXAMPLE_DAGS = Path(__file__).resolve().parents[2] / "examples" / "dags"


def test_the_catalogue_example_schedules_on_every_published_video() -> None:
    bag = DagBag(dag_folder=str(EXAMPLE_DAGS), bundle_name="examples")
    assert bag.import_errors == {}
    dag = bag.dags["video_catalogue"]
    assert dag.doc_md and dag.tags
    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAll)
    assert list(condition.objects) == [AssetAlias(FINAL_VIDEO_ALIAS_NAME)]


def test_the_example_imports_nothing_of_the_pipeline() -> None:
    """It is copied into other deployments' DAG folders, where the pipeline's packages may not be."""
    source = (EXAMPLE_DAGS / "video_catalogue.py").read_text()
    assert "video_pipeline" not in source.replace("video_pipeline_final_video", "")
