"""The EventBridge Scheduler adapter on moto: one daily schedule per participant, never piling up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coach.adapters.eventbridge_scheduler import EventBridgeScheduler
from coach.domain.schedules import daily_schedule_name, one_time_schedule_name

GROUP = "coach-test-nudges"
ROLE = "arn:aws:iam::123456789012:role/scheduler-invokes-prompt-generator"
TARGET = "arn:aws:lambda:us-east-1:123456789012:function:prompt-generator"


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        scheduler = boto3.client("scheduler")
        scheduler.create_schedule_group(Name=GROUP)
        yield scheduler


def schedules(client: Any) -> list[str]:
    return sorted(s["Name"] for s in client.list_schedules(GroupName=GROUP)["Schedules"])


def test_the_daily_schedule_is_a_cron_in_the_participants_timezone_targeting_the_prompt_generator(client: Any) -> None:
    EventBridgeScheduler(GROUP, ROLE, TARGET, client).put_daily("p-1", "07:30", "Asia/Kolkata")

    schedule = client.get_schedule(Name=daily_schedule_name("p-1"), GroupName=GROUP)
    assert schedule["ScheduleExpression"] == "cron(30 7 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Asia/Kolkata"
    assert schedule["Target"]["Arn"] == TARGET
    assert schedule["Target"]["RoleArn"] == ROLE
    assert json.loads(schedule["Target"]["Input"]) == {"participant_id": "p-1", "kind": "daily_nudge"}
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}


def test_changing_the_time_updates_the_one_schedule(client: Any) -> None:
    scheduler = EventBridgeScheduler(GROUP, ROLE, TARGET, client)

    scheduler.put_daily("p-1", "07:30", "America/New_York")
    scheduler.put_daily("p-1", "19:00", "America/New_York")
    scheduler.put_daily("p-1", "19:00", "America/New_York")

    assert schedules(client) == [daily_schedule_name("p-1")]
    assert client.get_schedule(Name="nudge-p-1", GroupName=GROUP)["ScheduleExpression"] == "cron(0 19 * * ? *)"


def test_deleting_removes_it_and_deleting_nothing_is_fine(client: Any) -> None:
    scheduler = EventBridgeScheduler(GROUP, ROLE, TARGET, client)
    scheduler.put_daily("p-1", "07:30", "UTC")

    scheduler.delete_daily("p-1")
    scheduler.delete_daily("p-1")
    scheduler.delete_once("once-nobody")

    assert schedules(client) == []


def test_a_one_time_schedule_fires_at_its_moment_and_deletes_itself(client: Any) -> None:
    scheduler = EventBridgeScheduler(GROUP, ROLE, TARGET, client)
    name = one_time_schedule_name("p-1", "reminder#nudge#p-1#2026-07-01")

    scheduler.put_once(name, datetime(2026, 7, 1, 16, 30, tzinfo=UTC), {"participant_id": "p-1", "kind": "reminder"})

    schedule = client.get_schedule(Name=name, GroupName=GROUP)
    assert schedule["ScheduleExpression"] == "at(2026-07-01T16:30:00)"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert len(name) <= 64
    scheduler.delete_once(name)
    assert schedules(client) == []
