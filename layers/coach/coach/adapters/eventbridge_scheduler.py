"""The Scheduler port on EventBridge Scheduler: the participants' schedules in one group, all targeting the
prompt-generator function, with a retry policy and a dead-letter queue; one-time `at()` schedules delete
themselves after firing. What a schedule does comes from coach.domain.schedules; this adds the rest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from coach.domain.errors import ScheduleUnavailable
from coach.domain.schedules import ScheduleSpec
from coach.ports import ExistingSchedule

# Scheduler invokes Lambda asynchronously: these retries cover only a failed hand-over (throttling, a
# missing permission). A firing that ran and failed is retried by Lambda (the template's EventInvokeConfig).
RETRY_ATTEMPTS = 3
MAXIMUM_EVENT_AGE_SECONDS = 3600


class EventBridgeScheduler:
    """Implements coach.ports.Scheduler. `dead_letter_arn` empty: no dead-letter queue (tests)."""

    def __init__(
        self,
        group_name: str,
        role_arn: str,
        target_arn: str,
        dead_letter_arn: str = "",
        client: Any | None = None,
    ) -> None:
        self.group_name = group_name
        self.role_arn = role_arn
        self.target_arn = target_arn
        self.dead_letter_arn = dead_letter_arn
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("scheduler")
        return self._client

    def get(self, name: str) -> ExistingSchedule | None:
        with _unavailable(f"read schedule {name}"):
            try:
                answer = self.client.get_schedule(Name=name, GroupName=self.group_name)
            except ClientError as exc:
                if _code(exc) == "ResourceNotFoundException":
                    return None
                raise
        target = answer.get("Target") or {}
        try:
            payload = json.loads(target.get("Input") or "{}")
        except json.JSONDecodeError:
            payload = {"unreadable_input": True}
        spec = ScheduleSpec(
            name=name,
            expression=answer.get("ScheduleExpression", ""),
            timezone=answer.get("ScheduleExpressionTimezone") or "UTC",
            payload=payload if isinstance(payload, dict) else {"unreadable_input": True},
            one_time=answer.get("ActionAfterCompletion") == "DELETE",
        )
        return ExistingSchedule(spec, in_order=answer.get("State") != "DISABLED" and self._our_target(target))

    def put(self, spec: ScheduleSpec, *, exists: bool | None = None) -> None:
        request = self._request(spec)
        with _unavailable(f"write schedule {spec.name}"):
            # Without knowledge, create: a reminder or a transition is new every time, and a daily schedule is
            # created once at the end of intake for every time it moves later.
            if exists is True:
                try:
                    self.client.update_schedule(**request)
                    return
                except ClientError as exc:
                    if _code(exc) != "ResourceNotFoundException":
                        raise
            try:
                self.client.create_schedule(**request)
            except ClientError as exc:
                # It exists (a move, or a racing writer created it): make it what we want.
                if _code(exc) != "ConflictException":
                    raise
                self.client.update_schedule(**request)

    def delete(self, name: str) -> None:
        with _unavailable(f"delete schedule {name}"):
            try:
                self.client.delete_schedule(Name=name, GroupName=self.group_name)
            except ClientError as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise

    def _target(self, spec: ScheduleSpec) -> dict[str, Any]:
        target: dict[str, Any] = {
            "Arn": self.target_arn,
            "RoleArn": self.role_arn,
            "Input": json.dumps(dict(spec.payload), sort_keys=True),
            "RetryPolicy": {
                "MaximumRetryAttempts": RETRY_ATTEMPTS,
                "MaximumEventAgeInSeconds": MAXIMUM_EVENT_AGE_SECONDS,
            },
        }
        if self.dead_letter_arn:
            target["DeadLetterConfig"] = {"Arn": self.dead_letter_arn}
        return target

    def _request(self, spec: ScheduleSpec) -> dict[str, Any]:
        request: dict[str, Any] = {
            "Name": spec.name,
            "GroupName": self.group_name,
            "ScheduleExpression": spec.expression,
            "ScheduleExpressionTimezone": spec.timezone,
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "State": "ENABLED",
            "Target": self._target(spec),
        }
        if spec.one_time:
            request["ActionAfterCompletion"] = "DELETE"
        return request

    def _our_target(self, target: dict[str, Any]) -> bool:
        """Whether the schedule invokes what we would have it invoke, as we would (a redeploy may change the
        function, role or dead-letter queue: the reconciler then rewrites the schedule)."""
        retry = target.get("RetryPolicy") or {}
        dead_letter = (target.get("DeadLetterConfig") or {}).get("Arn", "")
        return (
            target.get("Arn") == self.target_arn
            and target.get("RoleArn") == self.role_arn
            and dead_letter == self.dead_letter_arn
            and retry.get("MaximumRetryAttempts") == RETRY_ATTEMPTS
            and retry.get("MaximumEventAgeInSeconds") == MAXIMUM_EVENT_AGE_SECONDS
        )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """SDK failures as the domain's ScheduleUnavailable (the callers retry or answer 503)."""
    try:
        yield
    except ClientError as exc:
        raise ScheduleUnavailable(f"could not {what}: {_code(exc)}") from exc
    except BotoCoreError as exc:
        raise ScheduleUnavailable(f"could not {what}: {type(exc).__name__}") from exc
