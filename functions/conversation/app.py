"""Conversation turns from the FIFO queue. Placeholder until issues 3 and 4 write the real handler.

Every record is reported as failed, so SQS keeps it (and the DLQ keeps it after the retries):
work queued now, such as the `enrolled` greeting, is not lost, it waits for the real handler.
"""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = event.get("Records", [])
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if "messageId" in r]}
