"""The inbox watcher's trigger against S3 and SQS over HTTP (moto's server): an object created in the inbox
becomes one event naming it, the queue is emptied, and everything that is not a new inbox spec (S3's test
event, a rejected file moved aside, another folder) wakes nobody."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from video_pipeline_airflow.triggers.inbox_queue import InboxQueueTrigger, inbox_keys
from video_pipeline_dev.moto_s3 import MotoS3

BUCKET = "inbox-bucket"


def notification(key: str, event: str = "ObjectCreated:Put") -> str:
    return json.dumps({"Records": [{"eventName": event, "s3": {"object": {"key": key}}}]})


def test_inbox_keys_are_new_specs_directly_in_an_inbox_folder() -> None:
    bodies = [
        json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"}),
        notification("pipeline%2Finbox%2Fa+b.json"),
        notification("pipeline/inbox/a b.json"),  # the same key again
        notification("pipeline/inbox/rejected/x.json", "ObjectCreated:Copy"),
        notification("pipeline/processing/y.json"),
        notification("pipeline/inbox/notes.txt"),
        notification("pipeline/inbox/gone.json", "ObjectRemoved:Delete"),
        notification("inbox/top.json"),
        "not json",
        json.dumps(["a list"]),
    ]
    assert inbox_keys(bodies) == ["pipeline/inbox/a b.json", "inbox/top.json"]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    server = MotoS3()
    server.start()
    settings = {
        "endpoint_url": server.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": server.endpoint, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    try:
        yield settings
    finally:
        server.stop()


def inbox_with_notifications(settings: dict[str, Any]) -> tuple[Any, Any, str]:
    """A bucket that notifies a queue of ``pipeline/inbox/*.json`` objects, as the README configures it."""
    s3: Any = boto3.client("s3", **settings)
    sqs: Any = boto3.client("sqs", **settings)
    s3.create_bucket(Bucket=BUCKET)
    queue = sqs.create_queue(QueueName="video-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": "pipeline/inbox/"}, {"Name": "suffix", "Value": ".json"}]
    s3.put_bucket_notification_configuration(
        Bucket=BUCKET,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}}
            ]
        },
    )
    return s3, sqs, queue


async def first_event(trigger: InboxQueueTrigger, timeout: float = 20) -> dict[str, Any]:
    run: Any = trigger.run()
    try:
        event = await asyncio.wait_for(anext(run), timeout)
        await asyncio.wait_for(anext(run), 0.5)  # lets it delete the batch; then it waits for the next one
    except TimeoutError:
        pass
    finally:
        await run.aclose()
    return dict(event.payload)


async def test_a_spec_put_into_the_inbox_fires_one_event_naming_it(aws: dict[str, Any]) -> None:
    s3, sqs, queue = inbox_with_notifications(aws)
    s3.put_object(Bucket=BUCKET, Key="pipeline/inbox/rejected/old.json", Body=b"{}")  # a move aside
    s3.put_object(Bucket=BUCKET, Key="pipeline/inbox/fox.json", Body=b"{}")
    trigger = InboxQueueTrigger(queue_url=queue, wait_time_s=1)

    event = await first_event(trigger)

    assert event == {"keys": ["pipeline/inbox/fox.json"], "count": 1, "queue": queue}
    left = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    assert left["Attributes"]["ApproximateNumberOfMessages"] == "0"  # the batch was deleted


async def test_a_queue_that_cannot_be_read_is_retried_not_fatal(
    aws: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = inbox_with_notifications(aws)[2]
    monkeypatch.setattr("video_pipeline_airflow.triggers.inbox_queue.RETRY_DELAY_S", 0.2)
    trigger = InboxQueueTrigger(queue_url=queue.replace("video-inbox", "missing"), wait_time_s=1)
    run: Any = trigger.run()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(run), 1.5)
    await run.aclose()
    # said once, however many tries (a trigger's log goes to stdout here)
    assert capsys.readouterr().out.count("cannot be read") == 1


def test_the_trigger_serialises_what_a_new_triggerer_needs() -> None:
    trigger = InboxQueueTrigger(queue_url="https://sqs.eu-west-1.amazonaws.com/1/q", wait_time_s=99)
    classpath, kwargs = trigger.serialize()
    assert classpath == "video_pipeline_airflow.triggers.inbox_queue.InboxQueueTrigger"
    assert kwargs["wait_time_s"] == 20  # SQS's longest long poll
    assert InboxQueueTrigger(**kwargs).serialize() == (classpath, kwargs)
