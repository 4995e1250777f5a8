"""Lambda's asynchronous invocation in the local stack: a schedule's firing that raises is retried by Lambda
1 and 3 minutes later on the virtual clock, with the same event, then recorded in the function's OnFailure
queue (NudgeDeadLetterQueue in moto), as the template's EventInvokeConfig says. In this process, with a
stand-in prompt generator that fails a given number of times; one stack for the module (moto's state is
process-wide), with its own virtual clock."""

from __future__ import annotations

import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from coach.adapters.eventbridge_scheduler import EventBridgeScheduler
from coach.domain.schedules import SCHEDULED_TIME, ScheduleSpec, at_expression, reminder_schedule_name
from infra.local import LocalStack
from infra.local.scheduler import (
    AsyncInvocations,
    EventInvokeConfig,
    SchedulerEmulator,
    SchedulerExtension,
    async_targets,
    iso,
    queue_delivery,
)
from infra.local.virtual_clock import VirtualClock
from tests.support.aws import local_client as aws
from tests.support.aws import received
from tests.support.scheduler_stack import stack_with_stand_ins

ROLE = "arn:aws:iam::123456789012:role/scheduler"
FAILURE = "error: RuntimeError: the prompt generator failed"


@dataclass
class Call:
    function: str
    event: dict[str, Any]
    request_id: str
    now: datetime  # the virtual time the function saw


@dataclass
class StandIns:
    """A prompt generator that fails `failures[participant]` times before it succeeds, and a conversation
    function that records the work the prompt generator queued for it."""

    clock: VirtualClock
    failures: dict[str, int] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    stack: LocalStack | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt_generator(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        now, pid = self.clock.now(), event.get("participant_id", "")
        with self._lock:
            self.calls.append(Call("prompt_generator", event, context.aws_request_id, now))
        if pid.startswith("queue"):  # work for the conversation function, as an engine effect would queue
            assert self.stack is not None
            aws(self.stack, "sqs").send_message(
                QueueUrl=self.stack.physical["InboundQueue"].ref,
                MessageBody=json.dumps({"participant_id": pid}),
                MessageGroupId=pid,
                MessageDeduplicationId=f"{pid}-{now.isoformat()}",
            )
        with self._lock:
            failing = self.failures.get(pid, 0) > 0
            if failing:
                self.failures[pid] -= 1
        if failing:
            raise RuntimeError("the prompt generator failed")
        return {"participant_id": pid}

    def conversation(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.extend(
                Call("conversation", json.loads(r["body"]), context.aws_request_id, self.clock.now())
                for r in event["Records"]
            )
        return {"batchItemFailures": []}

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
def emulator(stack: LocalStack, scheduler_extension: SchedulerExtension) -> SchedulerEmulator:
    assert scheduler_extension.emulator is not None
    return scheduler_extension.emulator


def reminder(stack: LocalStack, participant_id: str, due: datetime) -> None:
    """A one-time schedule as the coach writes it (deleted after it fired)."""
    group = stack.physical["NudgeScheduleGroup"].ref
    target = stack.functions["PromptGeneratorFunction"].arn
    payload = {"participant_id": participant_id, "kind": "reminder", "scheduled_time": SCHEDULED_TIME}
    spec = ScheduleSpec(reminder_schedule_name(participant_id), at_expression(due), "UTC", payload, one_time=True)
    EventBridgeScheduler(group, ROLE, target, client=aws(stack, "scheduler")).put(spec)


def dead_letters(stack: LocalStack, participant_id: str) -> list[dict[str, Any]]:
    """The invocation records about the participant in NudgeDeadLetterQueue."""
    messages = received(aws(stack, "sqs"), stack.physical["NudgeDeadLetterQueue"].ref)
    records = [json.loads(m["Body"]) for m in messages]
    return [r for r in records if r["requestPayload"].get("participant_id") == participant_id]


def advance_over_http(stack: LocalStack, minutes: int) -> list[dict[str, Any]]:
    request = urllib.request.Request(
        f"{stack.base_url}/_local/clock/advance", data=json.dumps({"minutes": minutes}).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        fired: list[dict[str, Any]] = json.loads(response.read())["fired"]
    return fired


def minutes_after(start: datetime, moment: datetime) -> float:
    return (moment - start) / timedelta(minutes=1)


def test_a_failed_firing_is_retried_one_and_three_minutes_later_with_the_same_event(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures["retry-1"] = 2
    due = (stand_ins.clock.now() + timedelta(minutes=10)).replace(microsecond=0)
    reminder(stack, "retry-1", due)

    fired = [f for f in advance_over_http(stack, 30) if f["participant_id"] == "retry-1"]

    at = iso(due)
    assert fired == [
        {"schedule": "reminder-retry-1", "at": at, "kind": "reminder", "participant_id": "retry-1",
         "result": FAILURE, "attempt": 1},
        {"schedule": "reminder-retry-1", "at": iso(due + timedelta(minutes=1)), "kind": "reminder",
         "participant_id": "retry-1", "result": FAILURE, "attempt": 2},
        {"schedule": "reminder-retry-1", "at": iso(due + timedelta(minutes=3)), "kind": "reminder",
         "participant_id": "retry-1", "result": "ok", "attempt": 3},
    ]  # fmt: skip
    calls = stand_ins.of("retry-1")
    assert [c.event for c in calls] == [{"participant_id": "retry-1", "kind": "reminder", "scheduled_time": at}] * 3
    assert len({c.request_id for c in calls}) == 1  # one asynchronous invocation, three attempts
    assert [round(minutes_after(due, c.now), 2) for c in calls] == [0, 1, 3]  # the clock stood at each attempt
    assert dead_letters(stack, "retry-1") == []


def test_three_failures_end_as_one_invocation_record_in_the_dead_letter_queue(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures["dead-1"] = 10
    due = (stand_ins.clock.now() + timedelta(minutes=10)).replace(microsecond=0)
    reminder(stack, "dead-1", due)

    fired = [f for f in emulator.advance(timedelta(minutes=30)) if f.participant_id == "dead-1"]

    assert [(f.attempt, f.result) for f in fired] == [(1, FAILURE), (2, FAILURE), (3, FAILURE)]
    [record] = dead_letters(stack, "dead-1")
    request_id = record["requestContext"]["requestId"]
    assert uuid.UUID(request_id).version == 4
    assert {c.request_id for c in stand_ins.of("dead-1")} == {request_id}
    assert record == {
        "version": "1.0",
        "timestamp": (due + timedelta(minutes=3)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": request_id,
            "functionArn": stack.functions["PromptGeneratorFunction"].arn + ":$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"participant_id": "dead-1", "kind": "reminder", "scheduled_time": iso(due)},
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "the prompt generator failed", "errorType": "RuntimeError"},
    }


def test_a_retry_fires_after_its_one_time_schedule_was_deleted(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures["gone-1"] = 1
    reminder(stack, "gone-1", stand_ins.clock.now() + timedelta(minutes=10))

    first = [f for f in emulator.advance(timedelta(minutes=10)) if f.participant_id == "gone-1"]
    scheduler = aws(stack, "scheduler")
    with pytest.raises(scheduler.exceptions.ResourceNotFoundException):  # ActionAfterCompletion DELETE
        scheduler.get_schedule(Name="reminder-gone-1", GroupName=stack.physical["NudgeScheduleGroup"].ref)
    then = [f for f in emulator.advance(timedelta(minutes=5)) if f.participant_id == "gone-1"]

    assert [(f.attempt, f.result) for f in first] == [(1, FAILURE)]
    assert [(f.schedule, f.attempt, f.result) for f in then] == [("reminder-gone-1", 2, "ok")]
    assert len(stand_ins.of("gone-1")) == 2


@pytest.fixture
def short_lived_events(stack: LocalStack, emulator: SchedulerEmulator) -> Iterator[None]:
    """The stack's functions as if their EventInvokeConfig said MaximumEventAgeInSeconds: 150."""
    saved = emulator.invocations
    targets = {
        arn: replace(target, config=replace(target.config, maximum_event_age=timedelta(seconds=150)))
        for arn, target in async_targets(stack).items()
    }
    emulator.invocations = AsyncInvocations(targets, queue_delivery(stack))
    yield
    emulator.invocations = saved


def test_no_retry_is_made_once_the_event_would_be_older_than_its_maximum_age(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns, short_lived_events: None
) -> None:
    stand_ins.failures["aged-1"] = 10
    due = (stand_ins.clock.now() + timedelta(minutes=10)).replace(microsecond=0)
    reminder(stack, "aged-1", due)

    fired = [f for f in emulator.advance(timedelta(minutes=30)) if f.participant_id == "aged-1"]

    # The first retry is 60 s old, within 150 s; the second would be 180 s old.
    assert [(f.attempt, minutes_after(due, f.at)) for f in fired] == [(1, 0), (2, 1)]
    [record] = dead_letters(stack, "aged-1")
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["timestamp"].startswith(iso(due + timedelta(minutes=1)).removesuffix("Z"))


def test_retries_of_two_participants_interleave_in_time_order(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures.update({"mix-1": 2, "mix-2": 2})
    start = (stand_ins.clock.now() + timedelta(minutes=1)).replace(microsecond=0)
    reminder(stack, "mix-1", start + timedelta(minutes=10))
    reminder(stack, "mix-2", start + timedelta(minutes=12))

    fired = [f for f in emulator.advance(timedelta(minutes=30)) if f.participant_id in ("mix-1", "mix-2")]

    assert [(f.participant_id, f.attempt, minutes_after(start, f.at)) for f in fired] == [
        ("mix-1", 1, 10),
        ("mix-1", 2, 11),
        ("mix-2", 1, 12),
        ("mix-1", 3, 13),  # due together: by schedule name
        ("mix-2", 2, 13),
        ("mix-2", 3, 15),
    ]
    assert [f.result for f in fired if f.attempt == 3] == ["ok", "ok"]
    calls = [c for c in stand_ins.calls if c.event.get("participant_id") in ("mix-1", "mix-2")]
    assert [c.now for c in calls] == sorted(c.now for c in calls)


def test_the_queue_is_drained_after_each_attempt(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures["queue-retry-1"] = 1
    reminder(stack, "queue-retry-1", stand_ins.clock.now() + timedelta(minutes=10))

    emulator.advance(timedelta(minutes=30))

    assert [c.function for c in stand_ins.of("queue-retry-1")] == [
        "prompt_generator",
        "conversation",
        "prompt_generator",  # the retry, a minute later, after the first attempt's work was handled
        "conversation",
    ]


def test_a_retry_falls_due_on_the_real_time_tick(
    stack: LocalStack, emulator: SchedulerEmulator, stand_ins: StandIns
) -> None:
    stand_ins.failures["tick-1"] = 1
    reminder(stack, "tick-1", stand_ins.clock.now() + timedelta(minutes=10))
    emulator.advance(timedelta(minutes=10))
    [retry] = [r for r in emulator.invocations.retries() if r.details.get("participant_id") == "tick-1"]

    stand_ins.clock.advance(retry.due - stand_ins.clock.now())  # the clock alone, as if a minute went by
    emulator.check()  # what the tick does every second (if the tick came first, this waits for it)

    first, second = stand_ins.of("tick-1")
    assert first.request_id == second.request_id
    assert second.now >= retry.due
    assert retry not in emulator.invocations.retries()


def test_the_event_invoke_config_comes_from_the_template_with_lambdas_defaults(stack: LocalStack) -> None:
    assert stack.intrinsics is not None

    prompt_generator = EventInvokeConfig.of_function(stack.intrinsics, "PromptGeneratorFunction")
    webhook = EventInvokeConfig.of_function(stack.intrinsics, "WebhookFunction")

    dead_letter_arn = stack.physical["NudgeDeadLetterQueue"].attributes["Arn"]
    assert prompt_generator == EventInvokeConfig(2, timedelta(hours=6), dead_letter_arn, "SQS")
    assert webhook == EventInvokeConfig(2, timedelta(hours=6), None, None)
