"""The study's counters on the one table: the LLM budget (one item per UTC day, `PK = STUDY#llm`,
`SK = DAY#<date>`, added to atomically by every turn that used the LLM, expiring a year later) and the
enrollment sequence that arm allocation follows (`PK = STUDY#allocation`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from coach.adapters.dynamodb_items import key
from coach.adapters.dynamodb_table import DynamoDBTable

BUDGET_PK = "STUDY#llm"
KEPT = timedelta(days=366)


class DynamoDBLlmBudget(DynamoDBTable):
    """Implements coach.ports.LlmBudget."""

    def spent(self, day: str) -> int:
        item = self._get(BUDGET_PK, f"DAY#{day}")
        return int(item.get("tokens", 0)) if item else 0

    def add(self, day: str, tokens: int) -> None:
        if tokens <= 0:
            return
        expires = date.fromisoformat(day) + KEPT
        self.client.update_item(
            TableName=self.table_name,
            Key=key(BUDGET_PK, f"DAY#{day}"),
            UpdateExpression="ADD tokens :tokens SET expires_at = if_not_exists(expires_at, :expires)",
            ExpressionAttributeValues={
                ":tokens": {"N": str(tokens)},
                ":expires": {"N": str(_epoch(expires))},
            },
        )


def _epoch(day: date) -> int:
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())


class DynamoDBEnrollmentSequence(DynamoDBTable):
    """Implements coach.ports.EnrollmentSequence: 0, 1, 2, ... across every function that enrolls."""

    def next(self) -> int:
        answer = self.client.update_item(
            TableName=self.table_name,
            Key=key("STUDY#allocation", "SEQUENCE"),
            UpdateExpression="ADD enrolled :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(answer["Attributes"]["enrolled"]["N"]) - 1
