"""
### Catalogue finished videos (an example consumer of the pipeline's asset events)

Runs whenever `video_generation` publishes a video: it is scheduled on the asset alias
`video_pipeline_final_video`, which each `publish` resolves to the job's own asset (the final video's storage
URI, e.g. `s3://bucket/prefix/jobs/<job_id>/final.mp4`).

`catalogue` reads each triggering event's `extra` — `job_id`, `run_id`, `title`, `duration_s`, `width`,
`height`, `credits_spent` (this run), `credits_spent_job`, `final_key`, `final_uri`, `manifest_key`,
`manifest_uri`, `storage_url` — and returns one catalogue entry per video. Replace its body with your upload,
notification or catalogue call; a presigned link, if you need one, is signed from `final_uri` by your own code.

To follow one job only, schedule on its asset instead:
`schedule=[Asset("s3://bucket/prefix/jobs/fox-morning/final.mp4")]`.

Deploy it by copying this file into your DAGs folder; it needs nothing but Airflow's Task SDK.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import AssetAlias, dag, task

FINAL_VIDEO = AssetAlias("video_pipeline_final_video")


@dag(
    dag_id="video_catalogue",
    schedule=[FINAL_VIDEO],
    catchup=False,
    doc_md=__doc__,
    tags=["video", "example"],
)
def video_catalogue() -> None:
    @task
    def catalogue(**context: Any) -> list[dict[str, Any]]:
        entries = []
        for event in context["triggering_asset_events"][FINAL_VIDEO]:
            extra = dict(event.extra)
            entries.append(
                {
                    "asset": event.asset.uri,
                    "source": f"{event.source_dag_id}/{event.source_run_id}",
                    **extra,
                }
            )
            print(
                f"Catalogued {extra.get('job_id')} ({extra.get('duration_s')} s, "
                f"{extra.get('credits_spent')} credits): {extra.get('final_uri')}"
            )
        return entries

    catalogue()


video_catalogue()
