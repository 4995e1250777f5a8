"""Tomorrow's nudge, now: on `python -m infra.local`, a participant enrolls and finishes intake by text (signed
webhooks, the offline coach), the virtual clock is advanced to the next local morning and the nudge is in the
fake Twilio; five hours later without a reply, so is the reminder (issue 5; docs/architecture.md, 6 "The local
stack")."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from infra.sms import Target, inbound_form, replies_to, send, signed_webhook
from tests.e2e.local_stack import (
    RunningStack,
    advance,
    clock_now,
    created,
    drain,
    free_port,
    next_local,
    start_stack,
)

pytestmark = pytest.mark.e2e

PHONE = "+12065550188"
INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
MORNING = time(7, 30)
# The participant lives where 07:30 is furthest from now, so the emulator's own tick (real time) cannot fire
# the nudge before the test advances the clock to it. Their offsets differ by hours: one is always far.
ZONES = ("America/New_York", "Europe/London", "Asia/Kolkata")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("daily-nudge"), port=free_port(), api_key="e2e-nudge-key")
    yield running
    running.stop()


def next_morning(now: datetime, zone: ZoneInfo) -> datetime:
    return next_local(now, zone, MORNING)


def farthest_from_morning(now: datetime) -> ZoneInfo:
    return max((ZoneInfo(name) for name in ZONES), key=lambda zone: next_morning(now, zone) - now)


def test_after_intake_the_next_mornings_nudge_and_its_reminder_arrive(stack: RunningStack) -> None:
    target = Target.from_environ({"PORT": str(stack.port)})
    zone = farthest_from_morning(clock_now(stack))
    enrolled = stack.request("POST", "/conversation/participants", {"phone_number": PHONE, "timezone": zone.key})
    assert enrolled.status == 201, enrolled.body
    participant = enrolled.json()["id"]
    drain(stack)  # the greeting
    for body in INTAKE:
        status, _ = send(signed_webhook(target, inbound_form(target, PHONE, body)))
        assert status == 200
        drain(stack)
    before_nudge = {m["sid"] for m in replies_to(target, PHONE)}
    now = clock_now(stack)
    morning = next_morning(now, zone)

    fired = advance(stack, math.ceil((morning - now) / timedelta(minutes=1)) + 1)

    [nudged] = [f for f in fired if f["kind"] == "daily_nudge"]
    assert nudged["participant_id"] == participant
    assert nudged["result"] == "ok"
    assert datetime.fromisoformat(nudged["at"]) == morning
    [nudge] = [m for m in replies_to(target, PHONE) if m["sid"] not in before_nudge]
    assert "coffee" in nudge["body"]  # personalised: the anchor they gave
    assert abs(created(nudge) - morning) < timedelta(seconds=5)  # dated by the virtual clock

    fired = advance(stack, 5 * 60)

    [reminded] = [f for f in fired if f["kind"] == "reminder"]
    assert (reminded["participant_id"], reminded["result"]) == (participant, "ok")
    assert datetime.fromisoformat(reminded["at"]) == morning + timedelta(hours=5)
    [reminder] = [m for m in replies_to(target, PHONE) if m["sid"] not in before_nudge | {nudge["sid"]}]
    assert reminder["body"] != nudge["body"]
    assert abs(created(reminder) - (morning + timedelta(hours=5))) < timedelta(seconds=5)
    assert "Traceback" not in stack.errors()
