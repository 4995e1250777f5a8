"""What every store on the one table shares: the client, conditional puts, transactions, consistent
reads and full pages."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from coach.adapters import aws_clients
from coach.adapters.dynamodb_items import (
    EVENT_PREFIX,
    FLOW_SK,
    MESSAGE_ID_PREFIX,
    MESSAGE_PREFIX,
    encode_page_token,
    from_attributes,
    key,
    participant_pk,
    sortable_time,
    to_attributes,
)
from coach.domain.flow import FlowState
from coach.domain.message import Message, ResearchEvent, status_rank

TRANSACTION_LIMIT = 100  # DynamoDB's most items in one TransactWriteItems
_BATCH_GET_ATTEMPTS = 8
_SINGLE_WRITES = {"Put": "put_item", "Update": "update_item", "Delete": "delete_item"}


class DynamoDBTable:
    def __init__(self, table_name: str, client: Any | None = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        # One client per container for every store (coach.adapters.aws_clients), unless one was given.
        return self._client if self._client is not None else aws_clients.client("dynamodb")

    def _put(
        self, item: dict[str, Any], condition: str | None = None, values: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    def _transact(self, items: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Run a transaction; None when it committed, else the cancellation reasons (one per item).

        One item is written with a plain conditional write instead: the same guarantee at half the cost."""
        if len(items) == 1 and (single := _single_write(items[0])) is not None:
            operation, request = single
            try:
                getattr(self.client, operation)(**request)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                return [{"Code": "ConditionalCheckFailed"}]
            return None
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons: list[dict[str, Any]] = exc.response.get("CancellationReasons") or []
            if not any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                raise  # throttling, conflicts with another transaction: let the caller's retries act
            return reasons
        return None

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self.client.get_item(TableName=self.table_name, Key=key(pk, sk), ConsistentRead=True)
        item = response.get("Item")
        return None if item is None else from_attributes(item)

    def _get_many(self, pk: str, sort_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Items of one partition by sort key (those that exist), read consistently in one BatchGetItem; more
        requests only for keys DynamoDB leaves unprocessed (under throttling)."""
        keys = [key(pk, sk) for sk in dict.fromkeys(sort_keys)]
        found: dict[str, dict[str, Any]] = {}
        for _attempt in range(_BATCH_GET_ATTEMPTS):
            request = {self.table_name: {"Keys": keys, "ConsistentRead": True}}
            response = self.client.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table_name, []):
                found[item["SK"]["S"]] = from_attributes(item)
            keys = (response.get("UnprocessedKeys") or {}).get(self.table_name, {}).get("Keys", [])
            if not keys:
                return found
        raise RuntimeError(f"DynamoDB left {len(keys)} reads unprocessed; try again")

    def _fill_page(
        self, query: dict[str, Any], limit: int, start: dict[str, Any] | None, key_names: tuple[str, ...]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Query until `limit` items pass the filter or the data ends; the token is the last item returned.

        A filter can make DynamoDB pages short or empty; the caller still gets full pages.
        """
        items: list[dict[str, Any]] = []
        while len(items) < limit:
            request = {**query, "TableName": self.table_name, "Limit": limit - len(items) + 1}
            if start is not None:
                request["ExclusiveStartKey"] = start
            response = self.client.query(**request)
            items.extend(response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if start is None:
                break
        has_more = len(items) > limit or start is not None
        items = items[:limit]
        if not has_more or not items:
            return items, None
        return items, encode_page_token({name: items[-1][name] for name in key_names})

    def _event_item(self, event: ResearchEvent) -> dict[str, Any]:
        # A short random suffix: two events of one kind in the same microsecond must both be kept.
        sk = f"{EVENT_PREFIX}{sortable_time(event.at)}#{event.kind}#{uuid.uuid4().hex[:8]}"
        return to_attributes(event, PK=participant_pk(event.participant_id), SK=sk)

    @staticmethod
    def _message_sk(message: Message) -> str:
        return message_sort_key(message.at, message.message_id)

    def _flow_put(self, flow: FlowState) -> dict[str, Any]:
        stored = flow.model_copy(update={"version": flow.version + 1})
        return self._put(
            to_attributes(stored, PK=participant_pk(flow.participant_id), SK=FLOW_SK),
            "version = :v",
            {":v": {"N": str(flow.version)}},
        )

    def _message_puts(self, message: Message, **extra: str) -> list[dict[str, Any]]:
        """A transcript message and the pointer that makes its id unique (the put fails when it exists)."""
        pk = participant_pk(message.participant_id)
        sk = self._message_sk(message)
        pointer = {**key(pk, f"{MESSAGE_ID_PREFIX}{message.message_id}"), "sk": {"S": sk}}
        attributes = to_attributes(message, PK=pk, SK=sk, **extra)
        if message.status is not None:
            attributes["status_rank"] = {"N": str(status_rank(message.status))}
        return [self._put(pointer, "attribute_not_exists(PK)"), self._put(attributes)]


def message_sort_key(at: datetime, message_id: str) -> str:
    """A transcript message's sort key: by time, then id."""
    return f"{MESSAGE_PREFIX}{sortable_time(at)}#{message_id}"


def _single_write(item: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """A transaction's one Put, Update or Delete as the plain call that does the same (same parameters)."""
    [(kind, request)] = item.items()
    operation = _SINGLE_WRITES.get(kind)
    return None if operation is None else (operation, request)
