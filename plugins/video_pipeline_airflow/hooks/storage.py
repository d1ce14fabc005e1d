"""Opens the job storage for Airflow tasks: S3 through the amazon provider's S3Hook, local otherwise."""

from __future__ import annotations

from video_pipeline.storage import Storage, open_storage
from video_pipeline_airflow.settings import AWS_CONN_ID, storage_url


def get_storage(url: str | None = None) -> Storage:
    url = url or storage_url()
    if url.startswith("s3://"):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return open_storage(url, s3_client=S3Hook(aws_conn_id=AWS_CONN_ID).get_conn())
    return open_storage(url)
