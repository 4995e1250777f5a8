"""Set-ups for the benchmarks: moto with the template's resources, an enrolled participant, a long history,
and long texts through the engine alone."""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import boto3

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.eventbridge_scheduler import EventBridgeScheduler
from coach.bootstrap import build_conversation_service, build_nudge_service, forget_built_services
from coach.bots.engine import run_turn
from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.flow import FlowState, SubState
from coach.domain.message import MAX_BODY_CHARS, Direction, Message
from coach.domain.participant import Participant
from coach.services.enrollment import EnrollmentService, EnrollParticipant
from coach.services.nudges import ScheduledEvent
from coach.settings import ConversationSettings, PromptGeneratorSettings
from tests.bench.__main__ import counting_aws_calls
from tests.support.aws import Resources, template_resources
from tests.support.conversation import START, FakeSms
from tests.support.memory import InMemoryParticipantStore, InMemoryScheduler, InMemoryWorkQueue, ManualClock
from tests.support.memory_conversation import InMemoryConversationStore

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
PHONE = "+12065550100"


@dataclass
class EnrolledStack:
    aws: Resources
    participant_id: str


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """These variables set (None: removed) while inside, then put back as they were: only these, so that moto
    can still remove the credentials it added when its mock ends."""
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def enrolled_stack() -> Iterator[EnrolledStack]:
    """moto, the webhook's environment and one enrolled participant (through the enrollment handler)."""
    from tests.integration.test_enrollment_api import enroll
    from tests.integration.test_webhook_sms import AUTH_TOKEN

    with template_resources() as aws:
        webhook = {"TABLE_NAME": aws.table_name, "QUEUE_URL": aws.queue_url, "TWILIO_AUTH_TOKEN": AUTH_TOKEN}
        with environment(**webhook, PUBLIC_BASE_URL=None, TWILIO_SECRET_NAME=None, AUTO_ENROLL=None):
            forget_built_services()
            participant = enroll({"phone_number": PHONE})
            try:
                yield EnrolledStack(aws, participant["id"])
            finally:
                forget_built_services()


def seed_transcript(participant_id: str, count: int, start: datetime, *, inbound_only: bool = False) -> None:
    """`count` old messages in the participant's transcript (alternately outbound and answered inbound), written
    25 items to a BatchWriteItem rather than one transaction each, exactly as the store lays them out."""
    table = os.environ["TABLE_NAME"]
    store = DynamoDBParticipantStore(table, boto3.client("dynamodb"))
    requests = []
    for n in range(count):
        inbound = inbound_only or n % 2 == 1
        message = Message(
            participant_id=participant_id,
            message_id=f"old{n}",
            direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
            body=f"an old message {n}",
            at=start + timedelta(seconds=n),
            turn="old" if inbound else None,
        )
        requests += [{"PutRequest": {"Item": put["Put"]["Item"]}} for put in store._message_puts(message)]
    for offset in range(0, len(requests), 25):
        batch = {table: requests[offset : offset + 25]}
        while batch:
            batch = store.client.batch_write_item(RequestItems=batch).get("UnprocessedItems") or {}


def signed_text(stack: EnrolledStack, body: str, n: int) -> dict[str, Any]:
    from tests.integration.test_webhook_sms import sms, twilio_event

    return twilio_event("/twilio/sms", sms(body, sid=f"SM{n:032x}", sender=PHONE))


@dataclass
class Coached:
    participant: Participant
    enrollment: EnrollmentService
    queue: InMemoryWorkQueue
    clock: ManualClock


def _stores() -> tuple[DynamoDBParticipantStore, DynamoDBConversationStore]:
    table = os.environ["TABLE_NAME"]
    client = boto3.client("dynamodb")  # from the default session: counted when inside counting_aws_calls
    return DynamoDBParticipantStore(table, client), DynamoDBConversationStore(table, client)


def turn_requests(history: int) -> Counter[str]:
    """AWS requests of one conversation turn (the consent answer: two replies) for a participant whose transcript
    has `history` messages."""
    return measured_turn(history).requests


@dataclass
class MeasuredTurn:
    requests: Counter[str]  # AWS requests by service.operation
    replies: int  # texts the turn sent


def measured_turn(history: int = 0, answers: tuple[str, ...] = (), text: str = "yes") -> MeasuredTurn:
    """AWS requests of the turn that answers `text`, after the greeting and `answers` (the intake so far) and
    `history` more messages in the transcript. The scheduler is EventBridge Scheduler on moto: a turn that
    creates the daily schedule pays for it."""
    with template_resources() as aws, environment(TABLE_NAME=aws.table_name):
        clock, sms, queue = ManualClock(START), FakeSms(), InMemoryWorkQueue()
        settings = ConversationSettings(table_name=aws.table_name)

        def service() -> Any:
            participants, conversation = _stores()
            scheduler = EventBridgeScheduler(aws.schedule_group, _ROLE, _TARGET, client=boto3.client("scheduler"))
            return build_conversation_service(
                settings,
                participants=participants,
                conversation=conversation,
                sender=sms,
                scheduler=scheduler,
                clock=clock,
            )

        enrollment = EnrollmentService(store=_stores()[0], queue=queue, clock=clock)
        participant = enrollment.enroll(EnrollParticipant(phone_number=PHONE))
        service().handle(queue.sent.pop())
        for n, body in enumerate(answers):
            clock.advance(minutes=1)
            service().handle(_received(participant.id, f"SMintake{n}", body, clock))
        clock.advance(seconds=1)
        seed_transcript(participant.id, history, clock.now() - timedelta(days=1))
        clock.advance(minutes=1)
        work = _received(participant.id, "SMnew", text, clock)
        before = len(sms.sent)
        with counting_aws_calls() as counts:
            service().handle(work)
        replies = len(sms.sent) - before
        assert replies, "the turn sent its reply"
        return MeasuredTurn(counts, replies)


def _received(participant_id: str, sid: str, body: str, clock: ManualClock) -> Any:
    """What the webhook does with a text: store it once, then queue its work (as it does, with the text's time)."""
    from coach.domain.work import ConversationWork, WorkKind

    text = Message(
        participant_id=participant_id,
        message_id=sid,
        direction=Direction.INBOUND,
        body=body,
        at=clock.now(),
        status="received",
    )
    _stores()[1].record_inbound(text)
    return ConversationWork(
        kind=WorkKind.INBOUND, participant_id=participant_id, occurred_at=text.at, message_id=sid, message_at=text.at
    )


_ROLE = "arn:aws:iam::123456789012:role/bench"
_TARGET = "arn:aws:lambda:us-east-1:123456789012:function:bench"


def webhook_requests(stored: int) -> Counter[str]:
    """AWS requests of the webhook for one inbound text, from a participant with `stored` texts stored already."""
    from functions.webhook.app import lambda_handler
    from tests.support.api import LambdaContext

    with enrolled_stack() as stack:
        seed_transcript(stack.participant_id, stored, START - timedelta(days=1), inbound_only=True)
        event = signed_text(stack, "hello coach", stored + 1)
        with counting_aws_calls() as counts:
            response = lambda_handler(event, LambdaContext())
        assert response["statusCode"] == 200, response
        return counts


def _memory_stores() -> tuple[Any, Any]:
    memory = InMemoryParticipantStore()
    return memory, InMemoryConversationStore(memory)


def nudge_timings(count: int, *, in_memory: bool = False) -> tuple[list[float], Counter[str]]:
    """Time and AWS requests of `count` daily nudges, each for its own coached participant, on moto (or, to
    see our own code's share, on the in-memory stores)."""
    with template_resources() as aws, environment(TABLE_NAME=aws.table_name):
        group = "bench-nudges"
        boto3.client("scheduler").create_schedule_group(Name=group)
        participants, conversation = _memory_stores() if in_memory else _stores()
        clock, sms, queue = ManualClock(START), FakeSms(), InMemoryWorkQueue()
        scheduler: Any = EventBridgeScheduler(group, _ROLE, _TARGET)
        if in_memory:
            scheduler = InMemoryScheduler()
        # A rate no pacer waits for: this bench times a nudge's work (bench pacing projects the waits).
        settings = PromptGeneratorSettings(
            table_name=aws.table_name, schedule_group_name=group, send_rate=1000, nudge_concurrency=1
        )
        enrollment = EnrollmentService(store=participants, queue=queue, clock=clock)
        conversation_service = build_conversation_service(
            settings, participants=participants, conversation=conversation, sender=sms, scheduler=scheduler, clock=clock
        )
        ids = []
        for n in range(count):
            participant = enrollment.enroll(EnrollParticipant(phone_number=f"+1206555{n:04d}"))
            conversation_service.handle(queue.sent.pop())
            for m, body in enumerate(INTAKE):
                sid = f"SM{n:04d}{m:02d}"
                text = Message(
                    participant_id=participant.id,
                    message_id=sid,
                    direction=Direction.INBOUND,
                    body=body,
                    at=clock.now(),
                )
                conversation.record_inbound(text)
                from coach.domain.work import ConversationWork, WorkKind

                conversation_service.handle(
                    ConversationWork(
                        kind=WorkKind.INBOUND,
                        participant_id=participant.id,
                        occurred_at=text.at,
                        message_id=sid,
                        message_at=text.at,
                    )
                )
                clock.advance(seconds=1)
            ids.append(participant.id)
        clock.set(START.replace(hour=11, minute=30) + timedelta(days=1))  # 07:30 in New York, the next day
        timings: list[float] = []
        with counting_aws_calls() as counts:
            if not in_memory:  # clients built inside, so their requests are counted
                participants, conversation = _stores()
                scheduler = EventBridgeScheduler(
                    group, scheduler.role_arn, scheduler.target_arn, client=boto3.client("scheduler")
                )
            service = build_nudge_service(
                settings,
                participants=participants,
                conversation=conversation,
                sender=sms,
                scheduler=scheduler,
                clock=clock,
            )
            for participant_id in ids:
                start = time.perf_counter()
                service.fire(ScheduledEvent(participant_id=participant_id, kind="daily_nudge"))
                timings.append(time.perf_counter() - start)
        assert len([s for s in sms.sent if "coffee" in s.body]) >= count, "every participant was nudged"
        return timings, counts


# A run-on reply, dense in feedback cues, with a time and an anchor and no clause break: the shape that made
# reading a text quadratic in its length (issue 9).
LONG_REPLY_PHRASE = "yes done did it after my morning coffee at 7 "


def long_reply() -> str:
    """One text as long as Twilio delivers."""
    return (LONG_REPLY_PHRASE * (MAX_BODY_CHARS // len(LONG_REPLY_PHRASE) + 1))[:MAX_BODY_CHARS]


def text_turn_timings(texts: int, runs: int = 5) -> list[float]:
    """Seconds of our own code (the engine and the offline coach, no stores) for one FEEDBACK turn of `texts`
    coalesced texts of MAX_BODY_CHARS characters each, `runs` times from the same state."""
    participant = Participant(id="p-bench", phone_number=PHONE, timezone="America/New_York", **_times())
    flow = FlowState.start(participant.id, participant.background_text(), START)
    now = START
    steps = [TurnInput(flow=flow, participant=participant, now=now, event=TurnEvent.ENROLLED)]
    for body in INTAKE:
        result = run_turn(steps[-1])
        now += timedelta(minutes=1)
        steps.append(TurnInput(flow=result.flow, participant=participant, now=now, texts=[body]))
    flow = run_turn(steps[-1]).flow
    assert flow.sub_state is SubState.FEEDBACK, "the participant finished intake"
    turn = TurnInput(flow=flow, participant=participant, now=now + timedelta(hours=1), texts=[long_reply()] * texts)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run_turn(turn)
        timings.append(time.perf_counter() - start)
        assert result.replies, "the coach answered"
    return timings


def median_text_turn(texts: int, runs: int = 5) -> float:
    return statistics.median(text_turn_timings(texts, runs))


def _times() -> dict[str, Any]:
    return {"enrolled_at": START, "created_at": START, "updated_at": START}
