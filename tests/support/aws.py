"""moto resources built from template.yaml, as a deployment would have them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws

from infra.template import create_table, load_template, queue_attributes

SCHEDULE_GROUP = "coach-test-nudges"
EXPORT_BUCKET = "coach-test-export"


@dataclass
class Resources:
    table_name: str
    queue_url: str
    dead_letter_queue_url: str
    dynamodb: Any
    sqs: Any
    schedule_group: str = SCHEDULE_GROUP
    export_queue_url: str = ""
    export_bucket: str = EXPORT_BUCKET


@contextmanager
def template_resources() -> Iterator[Resources]:
    """Inside moto: the table, the FIFO queue and its DLQ exactly as template.yaml declares them, the schedule
    group, the export queue and the export bucket."""
    with mock_aws():
        template = load_template()
        dynamodb = boto3.client("dynamodb")
        sqs = boto3.client("sqs")
        boto3.client("scheduler").create_schedule_group(Name=SCHEDULE_GROUP)
        create_table(dynamodb, template, "coach-test")
        dlq_url = sqs.create_queue(
            QueueName="coach-test-dlq.fifo", Attributes=queue_attributes(template, "InboundDeadLetterQueue")
        )["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        redrive = template["Resources"]["InboundQueue"]["Properties"]["RedrivePolicy"]
        attributes = queue_attributes(template, "InboundQueue")
        attributes["RedrivePolicy"] = json.dumps(
            {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": redrive["maxReceiveCount"]}
        )
        queue_url = sqs.create_queue(QueueName="coach-test-inbound.fifo", Attributes=attributes)["QueueUrl"]
        export_queue_url = sqs.create_queue(
            QueueName="coach-test-export.fifo", Attributes=queue_attributes(template, "ExportQueue")
        )["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=EXPORT_BUCKET)
        yield Resources("coach-test", queue_url, dlq_url, dynamodb, sqs, export_queue_url=export_queue_url)


def received(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message now on the queue, in order, taken out of sight for a minute (tests only).

    FIFO hides a group's later messages while earlier ones are in flight, so keep a test's messages
    per group under ten.
    """
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
    ).get("Messages", []):
        messages.extend(batch)
    return messages


def local_client(stack: Any, service: str) -> Any:
    """A boto3 client for the moto server of a running local stack (infra.local.stack.LocalStack)."""
    return boto3.client(
        service,
        endpoint_url=stack.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
