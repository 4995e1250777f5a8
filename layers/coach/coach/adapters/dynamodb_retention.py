"""Retention on the one table (coach.domain.retention): what is old enough to go, where the daily pass stands
(`PK = STUDY#retention`, `SK = PASS`), deletions nobody finished (the DELETIONS index partition), and the move
of profiles an earlier version indexed under one key for everyone.

Old items are found by their sort keys (`MSG#<time>`, `EVT#<time>`): each pass reads only what it removes.
Outbox items carry no time in their key; a participant has a few days' worth of them, read whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from coach.adapters.dynamodb_batches import delete_keys
from coach.adapters.dynamodb_conversation import OUTBOX_PREFIX
from coach.adapters.dynamodb_items import (
    EVENT_PREFIX,
    MESSAGE_ID_PREFIX,
    MESSAGE_PREFIX,
    PARTICIPANTS_GSI1PK,
    PROFILE_SK,
    from_attributes,
    key,
    participant_pk,
    participants_gsi1pk,
    sortable_time,
    to_attributes,
)
from coach.adapters.dynamodb_store import DELETIONS_GSI1PK
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.retention import ArchiveKind, ExpiredItems, RetentionPass

RETENTION_PK, RETENTION_SK = "STUDY#retention", "PASS"


class DynamoDBRetentionStore(DynamoDBTable):
    """Implements coach.ports.RetentionStore."""

    def expired_items(self, participant_id: str, before: datetime) -> ExpiredItems:
        pk, stamp = participant_pk(participant_id), sortable_time(before)
        # A text still waiting for its turn (in the INBOX index) or a send not finished (OUTBOX) stays.
        messages = [i for i in self._older(pk, MESSAGE_PREFIX, stamp) if "GSI1PK" not in i]
        events = list(self._older(pk, EVENT_PREFIX, stamp))
        outbox = [
            i
            for i in self._query(pk, "begins_with(SK, :low)", {":low": {"S": OUTBOX_PREFIX}})
            if "GSI1PK" not in i and datetime.fromisoformat(i["created_at"]["S"]) < before
        ]
        pointers = [
            f"{MESSAGE_ID_PREFIX}{i[name]['S']}" for i in messages for name in ("message_id", "twilio_sid") if name in i
        ]
        return ExpiredItems(
            records={
                ArchiveKind.MESSAGES: [from_attributes(i) for i in messages],
                ArchiveKind.EVENTS: [from_attributes(i) for i in events],
            },
            keys=[*(i["SK"]["S"] for i in [*messages, *events, *outbox]), *pointers],
        )

    def remove_items(self, participant_id: str, keys: Sequence[str]) -> None:
        pk = participant_pk(participant_id)
        delete_keys(self.client, self.table_name, [key(pk, sk) for sk in dict.fromkeys(keys)])

    def retention_pass(self) -> RetentionPass:
        item = self._get(RETENTION_PK, RETENTION_SK)
        return RetentionPass() if item is None else RetentionPass.model_validate(item)

    def save_retention_pass(self, state: RetentionPass) -> None:
        self.client.put_item(TableName=self.table_name, Item=to_attributes(state, PK=RETENTION_PK, SK=RETENTION_SK))

    def unfinished_deletions(self, limit: int) -> list[str]:
        response = self.client.query(
            TableName=self.table_name,
            IndexName="GSI1",
            KeyConditionExpression="GSI1PK = :pk",
            ExpressionAttributeValues={":pk": {"S": DELETIONS_GSI1PK}},
            Limit=limit,
        )
        return [str(item["participant_id"]["S"]) for item in response.get("Items", [])]

    def repair_index(self) -> int:
        return move_legacy_profiles(self.client, self.table_name)

    def _older(self, pk: str, prefix: str, stamp: str) -> Iterator[dict[str, Any]]:
        """The partition's items of `prefix` whose time (in the sort key) is before `stamp`."""
        return self._query(pk, "SK BETWEEN :low AND :high", {":low": {"S": prefix}, ":high": {"S": f"{prefix}{stamp}"}})

    def _query(self, pk: str, condition: str, values: dict[str, Any]) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": f"PK = :pk AND {condition}",
            "ExpressionAttributeValues": {":pk": {"S": pk}, **values},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**request)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def move_legacy_profiles(client: Any, table_name: str) -> int:
    """Give every profile still indexed under the bare `PARTICIPANTS` key its status's key; how many moved.

    Idempotent, and safe beside the running functions: each move is conditional on the profile being as read
    (a profile rewritten meanwhile got its new key from that write; a deleted one stays deleted)."""
    moved = 0
    request: dict[str, Any] = {
        "TableName": table_name,
        "IndexName": "GSI1",
        "KeyConditionExpression": "GSI1PK = :pk",
        "ExpressionAttributeValues": {":pk": {"S": PARTICIPANTS_GSI1PK}},
    }
    while True:
        response = client.query(**request)
        for item in response.get("Items", []):
            if item.get("SK", {}).get("S") != PROFILE_SK:
                continue
            moved += _move(client, table_name, item)
        if "LastEvaluatedKey" not in response:
            return moved
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _move(client: Any, table_name: str, item: dict[str, Any]) -> int:
    status = item["status"]["S"]
    try:
        client.update_item(
            TableName=table_name,
            Key={"PK": item["PK"], "SK": item["SK"]},
            UpdateExpression="SET GSI1PK = :new",
            ConditionExpression="GSI1PK = :old AND #status = :status AND version = :version",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":new": {"S": participants_gsi1pk(status)},
                ":old": {"S": PARTICIPANTS_GSI1PK},
                ":status": {"S": status},
                ":version": item["version"],
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise
        return 0
    return 1
