"""The FIFO work queue on SQS: group = participant (one turn at a time, in order)."""

from __future__ import annotations

from typing import Any

import boto3

from coach.domain.work import ConversationWork


class SqsWorkQueue:
    """Implements coach.ports.WorkQueue."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("sqs")
        return self._client

    def send(self, work: ConversationWork) -> None:
        self.client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=work.model_dump_json(),
            MessageGroupId=work.participant_id,
            MessageDeduplicationId=work.deduplication_id(),
        )
