"""The audit trail on the one table. Entries live apart from any participant's partition, so deleting a
participant cannot delete them: `PK = AUDIT`, `SK = <time>#<id>` (the whole trail in order), and for entries
about a participant `GSI1PK = AUDIT#<participant>` (their trail). The API appends and reads, never changes."""

from __future__ import annotations

from typing import Any

from coach.adapters.dynamodb_items import decode_page_token, from_attributes, sortable_time, to_attributes
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.audit import AuditEntry
from coach.ports import Page

AUDIT_PK = "AUDIT"


def audit_pk(participant_id: str) -> str:
    return f"AUDIT#{participant_id}"


def audit_attributes(entry: AuditEntry) -> dict[str, Any]:
    sk = f"{sortable_time(entry.at)}#{entry.id}"
    keys: dict[str, str] = {"PK": AUDIT_PK, "SK": sk}
    if entry.participant_id is not None:
        keys.update(GSI1PK=audit_pk(entry.participant_id), GSI1SK=sk)
    return to_attributes(entry, **keys)


class DynamoDBAuditLog(DynamoDBTable):
    """Implements coach.ports.AuditLog."""

    def append(self, entry: AuditEntry) -> None:
        self.client.put_item(TableName=self.table_name, Item=audit_attributes(entry))

    def entries(self, *, participant_id: str | None, limit: int, next_token: str | None) -> Page[AuditEntry]:
        if participant_id is None:
            start = decode_page_token(next_token, {"PK": AUDIT_PK, "SK": None}) if next_token else None
            query: dict[str, Any] = {
                "KeyConditionExpression": "PK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": AUDIT_PK}},
            }
            items, last = self._fill_page(query, limit, start, ("PK", "SK"))
        else:
            expected = {"PK": AUDIT_PK, "SK": None, "GSI1PK": audit_pk(participant_id), "GSI1SK": None}
            start = decode_page_token(next_token, expected) if next_token else None
            query = {
                "IndexName": "GSI1",
                "KeyConditionExpression": "GSI1PK = :pk",
                "ExpressionAttributeValues": {":pk": {"S": audit_pk(participant_id)}},
            }
            items, last = self._fill_page(query, limit, start, ("PK", "SK", "GSI1PK", "GSI1SK"))
        return Page([AuditEntry.model_validate(from_attributes(i)) for i in items], last)

    def erase_personal_data(self, participant_id: str) -> int:
        erased, token = 0, None
        while True:
            page = self.entries(participant_id=participant_id, limit=100, next_token=token)
            for entry in page.items:
                if entry.has_personal_data:
                    self.append(entry.without_personal_data())  # same keys: the entry is overwritten
                    erased += 1
            token = page.next_token
            if token is None:
                return erased
