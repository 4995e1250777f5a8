"""The local stack's scheduler emulator and virtual clock, in this process with a stand-in prompt generator:
schedules are written by the real EventBridgeScheduler adapter into moto (and the template's own by the
stack), and fire as EventBridge Scheduler would fire them, each at its own moment of the virtual clock,
with Scheduler's context attributes in their input. One stack for the module (moto's state is
process-wide); the clock is the module's own, so the process-wide one (infra.local.virtual_clock) is left alone.
Lambda's retries of failed firings: test_local_async_invoke.py."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from coach.adapters.eventbridge_scheduler import EventBridgeScheduler
from coach.domain.schedules import (
    SCHEDULED_TIME,
    ScheduleSpec,
    at_expression,
    daily_cron,
    daily_schedule_name,
    reminder_schedule_name,
)
from infra.local import LocalStack
from infra.local.scheduler import SchedulerEmulator, SchedulerExtension, iso
from infra.local.virtual_clock import VirtualClock
from tests.support.aws import local_client as aws
from tests.support.scheduler_stack import stack_with_stand_ins

ROLE = "arn:aws:iam::123456789012:role/scheduler"
KOLKATA = ZoneInfo("Asia/Kolkata")  # no DST: a fixed number of mornings in any span (DST: test_aws_cron.py)


@dataclass
class Call:
    function: str
    event: dict[str, Any]
    now: datetime  # the virtual time the function saw


@dataclass
class StandIns:
    """The prompt generator and conversation functions, as far as these tests need them."""

    clock: VirtualClock
    calls: list[Call] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # participants whose firing raises
    stack: LocalStack | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt_generator(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        now = self.clock.now()
        with self._lock:
            self.calls.append(Call("prompt_generator", event, now))
        if event["kind"] == "watchdog":  # the template's own schedule, once a day
            return {"checked": 0}
        pid = event["participant_id"]
        if pid in self.broken:
            raise RuntimeError("the prompt generator failed")
        if event["kind"] == "daily_nudge" and pid.startswith("remind"):  # as the real one: a reminder in 5 h
            key = f"nudge#{pid}#{now.date()}"
            payload = {"participant_id": pid, "kind": "reminder", "nudge_key": key}
            put_once(self.running(), reminder_schedule_name(pid), now + timedelta(hours=5), payload)
        if pid.startswith("queue"):  # work for the conversation function, as an engine effect would queue
            aws(self.running(), "sqs").send_message(
                QueueUrl=self.running().physical["InboundQueue"].ref,
                MessageBody=json.dumps({"participant_id": pid, "after": event["kind"]}),
                MessageGroupId=pid,
                MessageDeduplicationId=f"{pid}-{now.isoformat()}",
            )
        return {"participant_id": pid}

    def conversation(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.extend(Call("conversation", json.loads(r["body"]), self.clock.now()) for r in event["Records"])
        return {"batchItemFailures": []}

    def running(self) -> LocalStack:
        assert self.stack is not None
        return self.stack

    def of(self, participant_id: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.event.get("participant_id") == participant_id]


@pytest.fixture(scope="module")
def stand_ins() -> StandIns:
    return StandIns(VirtualClock())


@pytest.fixture(scope="module")
def running(stand_ins: StandIns) -> Iterator[tuple[LocalStack, SchedulerExtension]]:
    handlers = {"PromptGeneratorFunction": stand_ins.prompt_generator, "ConversationFunction": stand_ins.conversation}

    def keep(stack: LocalStack) -> None:
        stand_ins.stack = stack

    with stack_with_stand_ins(stand_ins.clock, handlers, before_start=keep) as both:
        yield both


@pytest.fixture(scope="module")
def stack(running: tuple[LocalStack, SchedulerExtension]) -> LocalStack:
    return running[0]


@pytest.fixture(scope="module")
def scheduler_extension(running: tuple[LocalStack, SchedulerExtension]) -> SchedulerExtension:
    return running[1]


@pytest.fixture
def emulator(stack: LocalStack, scheduler_extension: SchedulerExtension) -> Iterator[SchedulerEmulator]:
    assert scheduler_extension.emulator is not None
    yield scheduler_extension.emulator
    client = aws(stack, "scheduler")  # recurring schedules of one test must not fire in the next
    for schedule in client.list_schedules(GroupName=group(stack))["Schedules"]:
        if schedule["Name"] != stack.physical["WatchdogSchedule"].ref:  # the template's stays, as deployed
            client.delete_schedule(Name=schedule["Name"], GroupName=group(stack))


def group(stack: LocalStack) -> str:
    return stack.physical["NudgeScheduleGroup"].ref


def adapter(stack: LocalStack) -> EventBridgeScheduler:
    target = stack.functions["PromptGeneratorFunction"].arn
    return EventBridgeScheduler(group(stack), ROLE, target, client=aws(stack, "scheduler"))


def put_daily(stack: LocalStack, participant_id: str, hhmm: str, timezone: str) -> None:
    """The daily schedule coach.domain.schedules.desired_schedules would have."""
    payload = {"participant_id": participant_id, "kind": "daily_nudge", "scheduled_time": SCHEDULED_TIME}
    adapter(stack).put(ScheduleSpec(daily_schedule_name(participant_id), daily_cron(hhmm), timezone, payload))


def put_once(stack: LocalStack, name: str, due: datetime, payload: dict[str, Any]) -> None:
    adapter(stack).put(ScheduleSpec(name, at_expression(due), "UTC", payload, one_time=True))


def raw_schedule(stack: LocalStack, name: str, expression: str, payload: Any = None, **extra: Any) -> None:
    """A schedule written directly, for what our adapter never writes (DISABLED, rate, invalid cron)."""
    target = {"Arn": stack.functions["PromptGeneratorFunction"].arn, "RoleArn": ROLE}
    target["Input"] = json.dumps(payload or {"participant_id": name, "kind": "daily_nudge"})
    aws(stack, "scheduler").create_schedule(
        Name=name,
        GroupName=group(stack),
        ScheduleExpression=expression,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        **extra,
    )


def post(stack: LocalStack, path: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(stack.base_url + path, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_a_daily_schedule_fires_once_each_local_morning_at_that_moment(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    put_daily(stack, "daily-1", "07:30", "Asia/Kolkata")

    fired = emulator.advance(timedelta(days=3))

    calls = stand_ins.of("daily-1")
    local = [c.now.astimezone(KOLKATA) for c in calls]
    assert len(calls) == 3
    assert len({moment.date() for moment in local}) == 3
    assert all((m.hour, m.minute) == (7, 30) and m.second < 5 for m in local)  # the clock stood at the firing
    reported = [f for f in fired if f.participant_id == "daily-1"]
    assert all(f.schedule == daily_schedule_name("daily-1") and f.result == "ok" for f in reported)
    assert [f.at.astimezone(KOLKATA).strftime("%H:%M") for f in reported] == ["07:30"] * len(reported)
    assert [c.event for c in calls] == [  # Scheduler put the slot's time in: each morning its own
        {"participant_id": "daily-1", "kind": "daily_nudge", "scheduled_time": iso(f.at)} for f in reported
    ]


def test_a_one_time_schedule_fires_once_and_is_deleted(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    due = stand_ins.clock.now() + timedelta(minutes=30)
    payload = {"participant_id": "once-1", "kind": "reminder", "nudge_key": "nudge#once-1#day"}
    put_once(stack, "once-once-1", due, {**payload, "scheduled_time": SCHEDULED_TIME})

    first = emulator.advance(timedelta(hours=1))
    again = emulator.advance(timedelta(days=1))

    [firing] = [f for f in first if f.participant_id == "once-1"]
    assert (firing.schedule, firing.kind, firing.result, firing.attempt) == ("once-once-1", "reminder", "ok", 1)
    assert firing.at == due.replace(microsecond=0)  # at() is written to the second
    assert [c.event for c in stand_ins.of("once-1")] == [{**payload, "scheduled_time": iso(firing.at)}]
    assert not [f for f in again if f.participant_id == "once-1"]
    with pytest.raises(aws(stack, "scheduler").exceptions.ResourceNotFoundException):
        aws(stack, "scheduler").get_schedule(Name="once-once-1", GroupName=group(stack))


def test_a_one_time_schedule_already_past_fires_at_the_next_check(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    past = stand_ins.clock.now() - timedelta(minutes=10)
    put_once(stack, "once-late-1", past, {"participant_id": "late-1", "kind": "transition"})

    deadline = time.monotonic() + 10  # the emulator's own tick, every second of real time
    while not stand_ins.of("late-1") and time.monotonic() < deadline:
        time.sleep(0.05)

    assert [c.event["kind"] for c in stand_ins.of("late-1")] == ["transition"]


def test_a_disabled_schedule_does_not_fire(stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns) -> None:
    raw_schedule(stack, "off-1", "cron(* * * * ? *)", State="DISABLED")
    raw_schedule(stack, "on-1", "cron(* * * * ? *)")

    emulator.advance(timedelta(minutes=10))

    assert stand_ins.of("off-1") == []
    assert len(stand_ins.of("on-1")) >= 10


def test_a_reminder_a_nudge_schedules_inside_the_span_fires_in_the_same_advance(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    put_daily(stack, "remind-1", "07:30", "Asia/Kolkata")

    fired = emulator.advance(timedelta(hours=29))  # a morning, and five hours after it, whatever the hour now

    mine = [f for f in fired if f.participant_id == "remind-1"][:2]
    assert [f.kind for f in mine] == ["daily_nudge", "reminder"]
    assert mine[1].at - mine[0].at == timedelta(hours=5)  # to the second: at() drops the fraction
    nudge, reminder = stand_ins.of("remind-1")[:2]
    assert abs(reminder.now - (nudge.now + timedelta(hours=5))) < timedelta(seconds=5)


def test_firings_run_in_time_order_across_schedules_and_a_failure_stops_nothing(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.broken.add("broken-1")
    start = stand_ins.clock.now()
    for pid, minutes in (("order-c", 50), ("broken-1", 20), ("order-a", 10), ("order-b", 30)):
        put_once(stack, f"once-{pid}", start + timedelta(minutes=minutes), {"participant_id": pid, "kind": "x"})

    fired = [f for f in emulator.advance(timedelta(hours=1)) if f.schedule.startswith("once-")]

    # Lambda retries the failure at +1 and +3 minutes, in time order with the other firings.
    assert [(f.participant_id, f.attempt) for f in fired] == [
        ("order-a", 1),
        ("broken-1", 1),
        ("broken-1", 2),
        ("broken-1", 3),
        ("order-b", 1),
        ("order-c", 1),
    ]
    assert fired == sorted(fired, key=lambda f: f.at)
    assert {f.result for f in fired if f.participant_id == "broken-1"} == {
        "error: RuntimeError: the prompt generator failed"
    }
    assert {f.result for f in fired if f.participant_id != "broken-1"} == {"ok"}


def test_the_queue_is_drained_after_each_firing_before_the_next(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    start = stand_ins.clock.now()
    for pid, minutes in (("queue-1", 10), ("queue-2", 20)):
        put_once(stack, f"once-{pid}", start + timedelta(minutes=minutes), {"participant_id": pid, "kind": "x"})

    emulator.advance(timedelta(minutes=30))

    order = [
        (c.function, c.event["participant_id"])
        for c in stand_ins.calls
        if c.event.get("participant_id") in ("queue-1", "queue-2")
    ]
    assert order == [
        ("prompt_generator", "queue-1"),
        ("conversation", "queue-1"),
        ("prompt_generator", "queue-2"),
        ("conversation", "queue-2"),
    ]


def test_a_rate_starts_when_created_and_counts_from_there(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    raw_schedule(stack, "rate-1", "rate(2 hours)")

    emulator.advance(timedelta(hours=5))

    times = [c.now for c in stand_ins.of("rate-1")]
    assert len(times) == 3
    assert [round((b - a) / timedelta(minutes=1)) for a, b in itertools.pairwise(times)] == [120, 120]


def test_start_and_end_dates_bound_a_recurring_schedule(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    now = stand_ins.clock.now()
    raw_schedule(
        stack, "bounded-1", "rate(1 hour)", StartDate=now + timedelta(hours=2), EndDate=now + timedelta(hours=5)
    )

    emulator.advance(timedelta(hours=8))

    hours = [round((c.now - now) / timedelta(hours=1), 2) for c in stand_ins.of("bounded-1")]
    assert hours == [2, 3, 4, 5]  # StartDate is the rate's origin; EndDate is the last moment it may fire


def test_the_input_gets_schedulers_context_attributes_at_each_firing(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    placeholders = {
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "schedule_arn": "<aws.scheduler.schedule-arn>",
        "execution_id": "<aws.scheduler.execution-id>",
        "attempt": "<aws.scheduler.attempt-number>",
    }
    raw_schedule(stack, "context-1", "rate(1 hour)", {"participant_id": "context-1", "kind": "x", **placeholders})

    fired = [f for f in emulator.advance(timedelta(hours=1, minutes=30)) if f.schedule == "context-1"]

    events = [c.event for c in stand_ins.of("context-1")]
    assert len(events) == len(fired) == 2  # when created, and an hour later
    arn = f"arn:aws:scheduler:us-east-1:123456789012:schedule/{group(stack)}/context-1"
    for firing, event in zip(fired, events, strict=True):
        assert event["scheduled_time"] == iso(firing.at.replace(microsecond=0))
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["scheduled_time"])
        assert event["schedule_arn"] == arn
        assert re.fullmatch(r"[0-9a-f]{16}", event["execution_id"])
        assert event["attempt"] == "1"
    assert events[0]["execution_id"] != events[1]["execution_id"]


def test_the_templates_watchdog_schedule_is_in_moto_and_fires_once_a_day_at_11_utc(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    name = stack.physical["WatchdogSchedule"].ref
    schedule = aws(stack, "scheduler").get_schedule(Name=name, GroupName=group(stack))
    assert name == "sms-habit-coach-local-watchdog-schedule"
    assert (schedule["ScheduleExpression"], schedule["ScheduleExpressionTimezone"]) == ("cron(0 11 * * ? *)", "UTC")
    assert schedule["Target"]["Arn"] == stack.functions["PromptGeneratorFunction"].arn
    assert schedule["Target"]["RoleArn"] == stack.physical["SchedulerInvokeRole"].attributes["Arn"]
    assert schedule["Target"]["DeadLetterConfig"]["Arn"] == stack.physical["NudgeDeadLetterQueue"].attributes["Arn"]
    seen = len(stand_ins.calls)

    fired = [f for f in emulator.advance(timedelta(days=3)) if f.schedule == name]

    assert [(f.kind, f.result) for f in fired] == [("watchdog", "ok")] * 3
    assert [f.at.astimezone(UTC).strftime("%H:%M:%S") for f in fired] == ["11:00:00"] * 3
    assert len({f.at.astimezone(UTC).date() for f in fired}) == 3
    watched = [c.event for c in stand_ins.calls[seen:] if c.event.get("kind") == "watchdog"]
    assert watched == [{"kind": "watchdog", "scheduled_time": iso(f.at)} for f in fired]


def test_an_input_that_is_not_json_is_reported(stack: LocalStack, emulator: SchedulerEmulator) -> None:
    due = f"at({(emulator.clock.now() + timedelta(minutes=5)).astimezone(UTC):%Y-%m-%dT%H:%M:%S})"
    target = {"Arn": stack.functions["PromptGeneratorFunction"].arn, "RoleArn": ROLE, "Input": "not json"}
    aws(stack, "scheduler").create_schedule(
        Name="garbled-1",
        GroupName=group(stack),
        ScheduleExpression=due,
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
    )

    [firing] = [f for f in emulator.advance(timedelta(minutes=10)) if f.schedule == "garbled-1"]

    assert firing.result == "error: the schedule's Target.Input is not JSON"


def test_an_expression_aws_would_refuse_never_fires_and_says_why(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns, capsys: pytest.CaptureFixture[str]
) -> None:
    raw_schedule(stack, "bad-1", "cron(0 9 * * * *)")  # moto takes it; AWS wants one ? among the day fields

    emulator.advance(timedelta(days=2))

    assert stand_ins.of("bad-1") == []
    assert "bad-1 never fires: cron(0 9 * * * *): exactly one of day-of-month and day-of-week must be ?" in (
        capsys.readouterr().err
    )


def test_the_clock_endpoints_read_and_advance_the_clock(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    with urllib.request.urlopen(stack.base_url + "/_local/clock", timeout=5) as response:
        before = json.loads(response.read())
    due = datetime.fromisoformat(before["now"]) + timedelta(minutes=90)
    put_once(stack, "once-http-1", due, {"participant_id": "http-1", "kind": "reminder"})

    status, answer = post(stack, "/_local/clock/advance", b'{"minutes": 120}')

    assert status == 200
    assert answer["offset_minutes"] == pytest.approx(before["offset_minutes"] + 120, abs=0.5)
    assert datetime.fromisoformat(answer["now"]) - datetime.fromisoformat(before["now"]) >= timedelta(minutes=120)
    assert answer["now"].endswith("Z")
    [firing] = [f for f in answer["fired"] if f["participant_id"] == "http-1"]
    assert firing == {
        "schedule": "once-http-1",
        "at": due.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "kind": "reminder",
        "participant_id": "http-1",
        "result": "ok",
        "attempt": 1,
    }
    assert stack.environment["VIRTUAL_CLOCK"] == "true"


@pytest.mark.parametrize(
    "body",
    [b'{"minutes": 0}', b'{"minutes": -5}', b'{"minutes": 10081}', b'{"minutes": "60"}', b'{"minutes": true}',
     b'{"hours": 1}', b'{"minutes": 1, "hours": 1}', b"[60]", b"sixty", b""],
)  # fmt: skip
def test_a_bad_advance_is_400_and_moves_nothing(stack: LocalStack, stand_ins: StandIns, body: bytes) -> None:
    offset = stand_ins.clock.offset

    status, answer = post(stack, "/_local/clock/advance", body)

    assert status == 400
    assert answer["error"] == "invalid advance"
    assert "minutes" in answer["details"]
    assert stand_ins.clock.offset == offset


def test_other_methods_and_paths(stack: LocalStack) -> None:
    request = urllib.request.Request(stack.base_url + "/_local/clock", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405
    with pytest.raises(urllib.error.HTTPError) as elsewhere:
        urllib.request.urlopen(stack.base_url + "/_local/clock/rewind", timeout=5)
    assert elsewhere.value.code == 403  # not the clock's: API Gateway's answer to an unknown path


def test_the_banner_says_how_to_advance(stack: LocalStack) -> None:
    banner = stack.banner()

    assert f"curl -s -X POST {stack.base_url}/_local/clock/advance -d '{{\"minutes\": 1440}}'" in banner
    assert "sms-habit-coach-local-nudges" in banner
