"""Fixtures shared by the domain tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from video_pipeline.storage import Storage, open_storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[Storage]:
    """Each test twice: on a local folder and on S3 (moto). A module with a ``storage`` of its own uses that."""
    if request.param == "local":
        yield open_storage(tmp_path.as_uri())
        return
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        yield open_storage("s3://bucket/p", s3_client=client)
