"""`make redrive`: move what waits in the inbound dead-letter queue back to the inbound queue, so each text is
answered after all (exactly once: a text answered already is not answered again, and queued work that was
done already only finishes its outbox).

  python -m infra.redrive --stack sms-habit-coach-dev        on AWS: the queues from the stack's outputs
  python -m infra.redrive --local [--port 3000]              the running local stack (`make run`)
  python -m infra.redrive --dlq URL --queue URL [--endpoint-url URL]
  add --dry-run to only count them

A message keeps its message group (the participant), so the participant's order holds; it gets a new
deduplication id, since SQS FIFO would drop a repeat of the old one for five minutes.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from infra.local.resources import FAKE_CREDENTIALS

REDRIVE_SUFFIX = "#redrive"
MAX_DEDUPLICATION_ID = 128


@dataclass(frozen=True)
class Queues:
    dlq_url: str
    queue_url: str
    endpoint_url: str | None = None  # None: AWS's
    local: bool = False  # the local stack's moto takes any credentials


def redrive(sqs: Any, dlq_url: str, queue_url: str, *, dry_run: bool = False, limit: int = 10_000) -> int:
    """Move up to `limit` messages from the dead-letter queue to the queue; how many were (or would be) moved."""
    if dry_run:
        attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"].get("ApproximateNumberOfMessages", 0))
    moved = 0
    while moved < limit:
        batch = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=min(10, limit - moved),
            AttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not batch:
            return moved
        for message in batch:
            sqs.send_message(QueueUrl=queue_url, MessageBody=message["Body"], **_fifo_fields(message))
            sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    return moved


def _fifo_fields(message: dict[str, Any]) -> dict[str, str]:
    attributes = message.get("Attributes", {})
    group = attributes.get("MessageGroupId")
    if group is None:
        return {}
    original = attributes.get("MessageDeduplicationId") or message["MessageId"]
    dedup = f"{original}{REDRIVE_SUFFIX}"
    if len(dedup) > MAX_DEDUPLICATION_ID:
        dedup = (
            f"{original[: MAX_DEDUPLICATION_ID - len(REDRIVE_SUFFIX) - 9]}-{message['MessageId'][:8]}{REDRIVE_SUFFIX}"
        )
    return {"MessageGroupId": group, "MessageDeduplicationId": dedup}


def stack_queues(stack: str, describe: Callable[..., Any] | None = None) -> Queues:
    """The inbound queue and its dead-letter queue, from a deployed stack's outputs."""
    describe = describe or boto3.client("cloudformation").describe_stacks
    [found] = describe(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    return Queues(outputs["DeadLetterQueueUrl"], outputs["InboundQueueUrl"])


def local_queues(port: int) -> Queues:
    """The inbound queues of the running local stack, as its GET /_local/resources tells them."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_local/resources", timeout=10) as answer:
        resources = json.load(answer)
    queues = resources["queues"]
    return Queues(queues["InboundDeadLetterQueue"], queues["InboundQueue"], resources["endpoint_url"], local=True)


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.redrive", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--stack", help="a deployed stack's name (its outputs name the queues)")
    where.add_argument("--local", action="store_true", help="the running local stack")
    where.add_argument("--dlq", help="the dead-letter queue's URL (with --queue)")
    parser.add_argument("--queue", help="the queue's URL (with --dlq)")
    parser.add_argument("--endpoint-url", help="an SQS endpoint other than AWS's (with --dlq)")
    parser.add_argument("--port", type=int, default=3000, help="the local stack's port (with --local)")
    parser.add_argument("--dry-run", action="store_true", help="count what waits, move nothing")
    args = parser.parse_args(argv)
    if args.stack:
        queues = stack_queues(args.stack)
    elif args.local:
        queues = local_queues(args.port)
    elif args.queue:
        queues = Queues(args.dlq, args.queue, args.endpoint_url)
    else:
        parser.error("--dlq needs --queue")
    options: dict[str, Any] = {"endpoint_url": queues.endpoint_url} if queues.endpoint_url else {}
    if queues.local:
        options.update(FAKE_CREDENTIALS, region_name="us-east-1")
    sqs = boto3.client("sqs", **options)
    moved = redrive(sqs, queues.dlq_url, queues.queue_url, dry_run=args.dry_run)
    out(f"{moved} message(s) {'wait in' if args.dry_run else 'moved from'} {queues.dlq_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
