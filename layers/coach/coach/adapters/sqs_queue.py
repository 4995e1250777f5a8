"""The FIFO work queue on SQS: group = participant (one turn at a time, in order); and the export queue."""

from __future__ import annotations

import json
from typing import Any

from coach.adapters import aws_clients
from coach.domain.work import ConversationWork


class SqsWorkQueue:
    """Implements coach.ports.WorkQueue."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("sqs")

    def send(self, work: ConversationWork) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=work.model_dump_json(),
            MessageGroupId=work.participant_id,
            MessageDeduplicationId=work.deduplication_id(),
        )


class SqsExportQueue:
    """Implements coach.ports.ExportQueue: one message per export (FIFO, deduplicated on its id)."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("sqs")

    def send(self, export_id: str) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps({"export_id": export_id}),
            MessageGroupId=export_id,
            MessageDeduplicationId=export_id,
        )


class SqsRedelivery:
    """Brings a failed record back after a chosen delay (its visibility timeout), instead of the queue's."""

    def __init__(self, client: Any | None = None) -> None:
        self._client = client
        self._urls: dict[str, str] = {}

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("sqs")

    def return_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        """Make the record visible again in `seconds` (0: at once)."""
        self.client.change_message_visibility(
            QueueUrl=self._url(queue_arn), ReceiptHandle=receipt_handle, VisibilityTimeout=max(0, seconds)
        )

    def _url(self, queue_arn: str) -> str:
        if queue_arn not in self._urls:
            _, _, _, _, account, name = queue_arn.split(":", 5)
            self._urls[queue_arn] = self.client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
                "QueueUrl"
            ]
        return self._urls[queue_arn]
