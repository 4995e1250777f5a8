"""The Scheduler port on EventBridge Scheduler: one daily cron per participant in its own timezone, and
one-time `at()` schedules that delete themselves after firing. All target the prompt-generator function."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.exceptions import ClientError

from coach.domain.schedules import daily_cron, daily_schedule_name


class EventBridgeScheduler:
    """Implements coach.ports.Scheduler."""

    def __init__(self, group_name: str, role_arn: str, target_arn: str, client: Any | None = None) -> None:
        self.group_name = group_name
        self.role_arn = role_arn
        self.target_arn = target_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("scheduler")
        return self._client

    def put_daily(self, participant_id: str, hhmm: str, timezone: str) -> None:
        payload = {"participant_id": participant_id, "kind": "daily_nudge"}
        self._upsert(daily_schedule_name(participant_id), daily_cron(hhmm), timezone, payload, delete_after=False)

    def delete_daily(self, participant_id: str) -> None:
        self._delete(daily_schedule_name(participant_id))

    def put_once(self, name: str, at: datetime, payload: dict[str, Any]) -> None:
        expression = f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"
        self._upsert(name, expression, "UTC", payload, delete_after=True)

    def delete_once(self, name: str) -> None:
        self._delete(name)

    def _upsert(
        self, name: str, expression: str, timezone: str, payload: dict[str, Any], *, delete_after: bool
    ) -> None:
        request: dict[str, Any] = {
            "Name": name,
            "GroupName": self.group_name,
            "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": {
                "Arn": self.target_arn,
                "RoleArn": self.role_arn,
                "Input": json.dumps(payload, sort_keys=True),
                "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
            },
        }
        if delete_after:
            request["ActionAfterCompletion"] = "DELETE"
        try:
            self.client.update_schedule(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
            try:
                self.client.create_schedule(**request)
            except ClientError as again:
                # Created meanwhile by a racing writer: update it to what we want.
                if again.response["Error"]["Code"] != "ConflictException":
                    raise
                self.client.update_schedule(**request)

    def _delete(self, name: str) -> None:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.group_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
