"""Deleting many items of the one table: BatchWriteItem, 25 keys a call, what DynamoDB leaves unprocessed sent
again (botocore already backs off between the attempts of one call)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BATCH_WRITE_LIMIT = 25  # DynamoDB's most requests in one BatchWriteItem
_BATCH_WRITE_ATTEMPTS = 8


def delete_keys(client: Any, table_name: str, keys: Sequence[dict[str, Any]]) -> None:
    """Delete the items with these keys (low-level `{"PK": {"S": ...}, "SK": {"S": ...}}`); a missing one is no
    matter. Raises RuntimeError when DynamoDB keeps refusing some: repeating the whole deletion is safe."""
    for offset in range(0, len(keys), BATCH_WRITE_LIMIT):
        requests = [{"DeleteRequest": {"Key": k}} for k in keys[offset : offset + BATCH_WRITE_LIMIT]]
        for _attempt in range(_BATCH_WRITE_ATTEMPTS):
            response = client.batch_write_item(RequestItems={table_name: requests})
            requests = response.get("UnprocessedItems", {}).get(table_name, [])
            if not requests:
                break
        else:
            raise RuntimeError(f"DynamoDB left {len(requests)} deletes unprocessed; repeat the delete")
