"""The daily intervention never stops, doubles or goes stale silently (issue 8), on `python -m infra.local` as a
researcher and a participant would use it: the API, signed webhooks, the virtual clock and the fake Twilio.

  - a timezone changed through the API: the next nudge comes at the chosen time in the new zone;
  - withdrawn, then active again: the next morning brings the nudge;
  - Twilio down for two hours around the nudge time: no nudge that day, a nudge_expired event, and the next
    morning exactly one nudge;
  - a schedule deleted behind the system's back (in moto): the watchdog finds the missed decision point, records
    it with the reason, repairs the schedule, and the day after brings the nudge.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from infra.sms import Target, inbound_form, replies_to, send, signed_webhook
from tests.e2e.local_stack import (
    RunningStack,
    advance_to,
    clock_now,
    created,
    drain,
    free_port,
    moto_endpoint,
    next_local,
    research_events,
    start_stack,
)

pytestmark = pytest.mark.e2e

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
MORNING = time(7, 30)
WATCHDOG = time(11, 0)  # UTC, the template's WatchdogSchedule
# Zones whose mornings are hours apart: the one furthest from now leaves the emulator's own real-time tick no
# chance to fire a nudge before the test moves the clock.
ZONES = ("America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Tokyo", "America/Los_Angeles")


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    running = start_stack(tmp_path, port=free_port(), api_key="e2e-integrity-key")
    yield running
    running.stop()


def furthest_morning(now: datetime, exclude: tuple[str, ...] = ()) -> ZoneInfo:
    zones = [ZoneInfo(name) for name in ZONES if name not in exclude]
    return max(zones, key=lambda zone: next_local(now, zone, MORNING) - now)


def coached(stack: RunningStack, phone: str, zone: ZoneInfo) -> str:
    """Enroll through the API and finish intake by signed texts; the participant's id."""
    target = Target.from_environ({"PORT": str(stack.port)})
    enrolled = stack.request("POST", "/conversation/participants", {"phone_number": phone, "timezone": zone.key})
    assert enrolled.status == 201, enrolled.body
    drain(stack)  # the greeting
    for body in INTAKE:
        status, _ = send(signed_webhook(target, inbound_form(target, phone, body)))
        assert status == 200
        drain(stack)
    participant_id: str = enrolled.json()["id"]
    return participant_id


def nudges_to(stack: RunningStack, phone: str) -> list[dict[str, Any]]:
    """The daily habit prompts the fake Twilio took for `phone` (they name the anchor; reminders do not)."""
    target = Target.from_environ({"PORT": str(stack.port)})
    intake_done = [m for m in replies_to(target, phone) if "Here's your tiny habit" in m["body"]]
    first = min(created(m) for m in intake_done)
    return sorted(
        (m for m in replies_to(target, phone) if "coffee" in m["body"] and created(m) > first),
        key=created,
    )


def put(stack: RunningStack, participant_id: str, body: dict[str, Any]) -> None:
    reply = stack.request("PUT", f"/conversation/participants/{participant_id}", body)
    assert reply.status == 200, reply.body


def test_timezone_change_withdrawal_and_a_twilio_outage_never_stop_or_double_the_nudge(stack: RunningStack) -> None:
    phone = "+12065550161"
    first_zone = furthest_morning(clock_now(stack))
    participant = coached(stack, phone, first_zone)

    # A researcher corrects the timezone: the next nudge comes at 7:30 in the new zone
    zone = furthest_morning(clock_now(stack), exclude=(first_zone.key,))
    put(stack, participant, {"timezone": zone.key})
    morning = next_local(clock_now(stack), zone, MORNING)
    fired = advance_to(stack, morning + timedelta(minutes=1))
    [nudged] = [f for f in fired if f["kind"] == "daily_nudge" and f["participant_id"] == participant]
    assert (datetime.fromisoformat(nudged["at"]), nudged["result"]) == (morning, "ok")
    [nudge] = nudges_to(stack, phone)
    assert abs(created(nudge) - morning) < timedelta(seconds=5)
    [decision] = [e["data"] for e in research_events(stack, participant) if e["kind"] == "nudge_decision"]
    assert (decision["available"], decision["timezone"], decision["local_time"]) == (True, zone.key, "07:30")

    # Withdrawn, then active again: the next morning brings the nudge
    put(stack, participant, {"status": "withdrawn"})
    put(stack, participant, {"status": "active"})
    morning = next_local(clock_now(stack), zone, MORNING)
    advance_to(stack, morning + timedelta(minutes=1))
    assert [created(m) - morning < timedelta(seconds=5) for m in nudges_to(stack, phone)[1:]] == [True]

    # Twilio down from an hour before the next nudge to an hour after it
    morning = next_local(clock_now(stack), zone, MORNING)
    advance_to(stack, morning - timedelta(hours=1))
    fault = stack.request("POST", "/_local/twilio/faults", {"status": 503, "minutes": 120}, key=None)
    assert fault.status == 200, fault.body
    # A day of firings with Twilio down: each send is tried three times with real backoff, and Lambda tries the
    # firing three times; about 8 s on an idle machine, so more than the default 10 s of waiting for them.
    fired = advance_to(stack, morning + timedelta(days=1, minutes=1), timeout=60)

    # ... no nudge that day (Lambda retried the firing twice, then gave up), an expiry on record, and the next
    # morning exactly one nudge
    attempts = [f for f in fired if f["kind"] == "daily_nudge" and f["participant_id"] == participant]
    assert [(f["attempt"], f["result"].startswith("error")) for f in attempts] == [
        (1, True),
        (2, True),
        (3, True),
        (1, False),
    ]
    later = [m for m in nudges_to(stack, phone) if created(m) > morning - timedelta(hours=1)]
    assert len(later) == 1
    assert abs(created(later[0]) - (morning + timedelta(days=1))) < timedelta(seconds=5)
    events = research_events(stack, participant)
    [expired] = [e["data"] for e in events if e["kind"] == "nudge_expired"]
    assert (expired["purpose"], expired["reason"]) == ("nudge", "not_sent_within_its_window")
    skipped = [e["data"]["reason"] for e in events if e["kind"] == "reminder_skipped"]
    assert "nudge_not_sent" in skipped  # no "did you try today's habit?" for a habit never sent
    assert [e for e in events if e["kind"] == "decision_missed"] == []  # every decision point is on record


def test_a_schedule_deleted_behind_the_systems_back_is_found_by_the_watchdog_and_repaired(
    stack: RunningStack,
) -> None:
    phone = "+12065550162"
    zone = furthest_morning(clock_now(stack))
    participant = coached(stack, phone, zone)
    moto = boto3.client(
        "scheduler",
        endpoint_url=moto_endpoint(stack),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    group = next(g["Name"] for g in moto.list_schedule_groups()["ScheduleGroups"] if g["Name"].endswith("nudges"))
    moto.delete_schedule(Name=f"nudge-{participant}", GroupName=group)

    # The next local morning passes without a firing; the watchdog runs after the slot's window has closed
    missed = next_local(clock_now(stack), zone, MORNING)
    watchdog = next_local(missed + timedelta(hours=1), ZoneInfo("UTC"), WATCHDOG)
    fired = advance_to(stack, watchdog + timedelta(minutes=1))

    assert not [f for f in fired if f["kind"] == "daily_nudge" and f["participant_id"] == participant]
    assert [f["result"] for f in fired if f["kind"] == "watchdog"][-1] == "ok"
    [found] = [e["data"] for e in research_events(stack, participant) if e["kind"] == "decision_missed"]
    assert (found["reason"], found["local_date"]) == ("schedule_missing", missed.astimezone(zone).date().isoformat())
    schedule = moto.get_schedule(Name=f"nudge-{participant}", GroupName=group)
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == ("cron(30 7 * * ? *)", zone.key)

    # The day after brings the nudge again
    morning = next_local(clock_now(stack), zone, MORNING)
    advance_to(stack, morning + timedelta(minutes=1))
    [nudge] = nudges_to(stack, phone)
    assert abs(created(nudge) - morning) < timedelta(seconds=5)
    assert created(nudge) > watchdog.astimezone(UTC)
