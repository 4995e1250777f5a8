"""The EventBridge Scheduler adapter on moto: the schedules a participant's state calls for, written with our
target, role, retry policy and dead-letter queue; a reconcile makes moto's match, however they drifted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from coach.adapters.eventbridge_scheduler import MAXIMUM_EVENT_AGE_SECONDS, RETRY_ATTEMPTS, EventBridgeScheduler
from coach.domain.errors import ScheduleUnavailable
from coach.domain.flow import DailySchedule, FlowState, PendingReminder, SubState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.schedules import (
    SCHEDULED_TIME,
    ScheduleSpec,
    at_expression,
    daily_cron,
    daily_schedule_name,
    desired_schedules,
    reminder_schedule_name,
)
from coach.services.schedules import Change, reconcile

GROUP = "coach-test-nudges"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-prompt-generator"
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:prompt-generator"
DLQ = "arn:aws:sqs:us-east-1:123456789012:coach-test-nudge-dlq"
NOW = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        scheduler = boto3.client("scheduler")
        scheduler.create_schedule_group(Name=GROUP)
        yield scheduler


def adapter(client: Any) -> EventBridgeScheduler:
    return EventBridgeScheduler(GROUP, ROLE, TARGET, DLQ, client=client)


def names(client: Any) -> list[str]:
    return sorted(s["Name"] for s in client.list_schedules(GroupName=GROUP)["Schedules"])


def daily(pid: str = "p-1", hhmm: str = "07:30", zone: str = "Asia/Kolkata") -> ScheduleSpec:
    return ScheduleSpec(
        name=daily_schedule_name(pid),
        expression=daily_cron(hhmm),
        timezone=zone,
        payload={"participant_id": pid, "kind": "daily_nudge", "scheduled_time": SCHEDULED_TIME},
    )


def coached(timezone: str = "America/New_York", status: ParticipantStatus = ParticipantStatus.ACTIVE) -> Participant:
    return Participant(
        id="p-1",
        phone_number="+12065550100",
        timezone=timezone,
        status=status,
        enrolled_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


def flow_with(**fields: Any) -> FlowState:
    return FlowState.start("p-1", "", NOW).model_copy(
        update={"consent": True, "sub_state": SubState.FEEDBACK, **fields}
    )


def test_the_daily_schedule_is_a_cron_in_the_participants_timezone_with_retries_and_a_dead_letter_queue(
    client: Any,
) -> None:
    adapter(client).put(daily())

    schedule = client.get_schedule(Name="nudge-p-1", GroupName=GROUP)
    assert schedule["ScheduleExpression"] == "cron(30 7 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Asia/Kolkata"
    assert schedule["Target"]["Arn"] == TARGET
    assert schedule["Target"]["RoleArn"] == ROLE
    assert schedule["Target"]["DeadLetterConfig"] == {"Arn": DLQ}
    assert schedule["Target"]["RetryPolicy"] == {
        "MaximumRetryAttempts": RETRY_ATTEMPTS,
        "MaximumEventAgeInSeconds": MAXIMUM_EVENT_AGE_SECONDS,
    }
    # Scheduler fills in when the firing was due: a late retry knows its day.
    assert json.loads(schedule["Target"]["Input"]) == {
        "participant_id": "p-1",
        "kind": "daily_nudge",
        "scheduled_time": "<aws.scheduler.scheduled-time>",
    }
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert "ActionAfterCompletion" not in schedule or schedule["ActionAfterCompletion"] != "DELETE"


def test_reading_a_schedule_back_gives_what_was_written(client: Any) -> None:
    scheduler = adapter(client)
    scheduler.put(daily())

    existing = scheduler.get("nudge-p-1")

    assert existing is not None
    assert existing.spec == daily()
    assert existing.in_order
    assert scheduler.get("nudge-nobody") is None


def test_a_schedule_of_another_target_or_disabled_is_not_in_order(client: Any) -> None:
    adapter(client).put(daily())
    elsewhere = EventBridgeScheduler(GROUP, ROLE, TARGET + "-old", DLQ, client=client)
    assert elsewhere.get("nudge-p-1") is not None
    assert not elsewhere.get("nudge-p-1").in_order  # type: ignore[union-attr]

    schedule = client.get_schedule(Name="nudge-p-1", GroupName=GROUP)
    client.update_schedule(
        Name="nudge-p-1",
        GroupName=GROUP,
        ScheduleExpression=schedule["ScheduleExpression"],
        ScheduleExpressionTimezone=schedule["ScheduleExpressionTimezone"],
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=schedule["Target"],
        State="DISABLED",
    )
    assert not adapter(client).get("nudge-p-1").in_order  # type: ignore[union-attr]


def test_moving_the_time_updates_the_one_schedule(client: Any) -> None:
    scheduler = adapter(client)

    scheduler.put(daily(hhmm="07:30"))
    scheduler.put(daily(hhmm="19:00"))
    scheduler.put(daily(hhmm="19:00"), exists=True)

    assert names(client) == ["nudge-p-1"]
    assert client.get_schedule(Name="nudge-p-1", GroupName=GROUP)["ScheduleExpression"] == "cron(0 19 * * ? *)"


def test_a_schedule_that_does_not_exist_is_created_in_one_request(client: Any) -> None:
    # Given a count of the adapter's requests to Scheduler
    calls: list[str] = []
    client.meta.events.register("before-call.scheduler.*", lambda event_name, **_: calls.append(event_name))
    scheduler = adapter(client)
    reminder = ScheduleSpec(
        name=reminder_schedule_name("p-1"),
        expression=at_expression(NOW + timedelta(hours=5)),
        timezone="UTC",
        payload={"participant_id": "p-1", "kind": "reminder", "nudge_key": "n", "scheduled_time": SCHEDULED_TIME},
        one_time=True,
    )

    # When a reminder and a daily schedule are written without knowing whether they exist, then one moves
    scheduler.put(reminder)
    scheduler.put(daily(hhmm="07:30"))
    created = list(calls)
    scheduler.put(daily(hhmm="19:00"))

    # Then each new one took one CreateSchedule; the move, a refused create and the update
    assert [c.rsplit(".", 1)[1] for c in created] == ["CreateSchedule", "CreateSchedule"]
    assert [c.rsplit(".", 1)[1] for c in calls[2:]] == ["CreateSchedule", "UpdateSchedule"]
    assert client.get_schedule(Name="nudge-p-1", GroupName=GROUP)["ScheduleExpression"] == "cron(0 19 * * ? *)"


def test_a_wrong_guess_about_existence_still_writes_it(client: Any) -> None:
    scheduler = adapter(client)
    scheduler.put(daily(hhmm="07:30"), exists=True)  # said to exist, does not: created
    scheduler.put(daily(hhmm="08:00"), exists=False)  # said not to exist, does: updated

    assert names(client) == ["nudge-p-1"]
    assert client.get_schedule(Name="nudge-p-1", GroupName=GROUP)["ScheduleExpression"] == "cron(0 8 * * ? *)"


def test_deleting_removes_it_and_deleting_nothing_is_fine(client: Any) -> None:
    scheduler = adapter(client)
    scheduler.put(daily())

    scheduler.delete("nudge-p-1")
    scheduler.delete("nudge-p-1")

    assert names(client) == []


def test_a_one_time_schedule_is_an_at_in_utc_that_deletes_itself(client: Any) -> None:
    spec = ScheduleSpec(
        name=reminder_schedule_name("p-1"),
        expression=at_expression(datetime(2026, 7, 1, 16, 30, tzinfo=UTC)),
        timezone="UTC",
        payload={"participant_id": "p-1", "kind": "reminder"},
        one_time=True,
    )

    adapter(client).put(spec)

    schedule = client.get_schedule(Name="reminder-p-1", GroupName=GROUP)
    assert schedule["ScheduleExpression"] == "at(2026-07-01T16:30:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert adapter(client).get("reminder-p-1").spec == spec  # type: ignore[union-attr]


class Throttled:
    """A Scheduler client whose every call is throttled, as AWS answers a burst over its quota."""

    def __getattr__(self, name: str) -> Any:
        def call(**request: Any) -> Any:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, name)

        return call


@pytest.mark.parametrize("call", ["get", "put", "delete"])
def test_a_throttled_scheduler_is_a_schedule_unavailable_error_not_a_crash(call: str) -> None:
    broken = EventBridgeScheduler(GROUP, ROLE, TARGET, DLQ, client=Throttled())
    operations = {
        "get": lambda: broken.get("nudge-p-1"),
        "put": lambda: broken.put(daily()),
        "delete": lambda: broken.delete("x"),
    }

    with pytest.raises(ScheduleUnavailable, match="ThrottlingException"):
        operations[call]()


def test_reconcile_creates_what_is_missing_fixes_what_drifted_and_removes_what_is_not_wanted(client: Any) -> None:
    # Given a participant whose state calls for a daily nudge at 07:30 New York time and a pending reminder
    scheduler = adapter(client)
    reminder = PendingReminder(nudge_key="nudge#p-1#2026-07-01", due_at=NOW + timedelta(hours=5))
    flow = flow_with(daily_schedule=DailySchedule(time="07:30", since=NOW), pending_reminder=reminder)
    desired = desired_schedules(coached(), flow, NOW)
    # ... and in moto a daily schedule in the wrong zone, no reminder, and a stray transition
    scheduler.put(daily(zone="Asia/Tokyo"))
    stray = ScheduleSpec("transition-p-1", at_expression(NOW + timedelta(hours=1)), "UTC", {"kind": "x"}, True)
    scheduler.put(stray)

    # When the schedules are reconciled twice
    first = reconcile(scheduler, "p-1", desired)
    second = reconcile(scheduler, "p-1", desired)

    # Then moto holds exactly what the state calls for, and the second run changes nothing
    assert {(c.name, c.change, c.why) for c in first} == {
        ("nudge-p-1", Change.UPDATED, "differs"),
        ("reminder-p-1", Change.CREATED, "missing"),
        ("transition-p-1", Change.DELETED, "not_desired"),
    }
    assert second == []
    assert names(client) == ["nudge-p-1", "reminder-p-1"]
    assert scheduler.get("nudge-p-1").spec.timezone == "America/New_York"  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [ParticipantStatus.WITHDRAWN, ParticipantStatus.COMPLETED])
def test_a_withdrawn_or_completed_participant_keeps_no_schedule(client: Any, status: ParticipantStatus) -> None:
    scheduler = adapter(client)
    flow = flow_with(daily_schedule=DailySchedule(time="07:30"))
    reconcile(scheduler, "p-1", desired_schedules(coached(), flow, NOW))
    assert names(client) == ["nudge-p-1"]

    reconcile(scheduler, "p-1", desired_schedules(coached(status=status), flow, NOW))

    assert names(client) == []
