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
from datetime import timedelta
from typing import Any

import boto3

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.eventbridge_scheduler import EventBridgeScheduler
from coach.adapters.memory import InMemoryParticipantStore, InMemoryScheduler, InMemoryWorkQueue, ManualClock
from coach.adapters.memory_conversation import InMemoryConversationStore
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

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
PHONE = "+12065550100"


@dataclass
class EnrolledStack:
    aws: Resources
    participant_id: str


@contextmanager
def enrolled_stack() -> Iterator[EnrolledStack]:
    """moto, the webhook's environment and one enrolled participant (through the enrollment handler)."""
    from tests.integration.test_enrollment_api import enroll
    from tests.integration.test_webhook_sms import AUTH_TOKEN

    saved = dict(os.environ)
    with template_resources() as aws:
        os.environ.update(TABLE_NAME=aws.table_name, QUEUE_URL=aws.queue_url, TWILIO_AUTH_TOKEN=AUTH_TOKEN)
        for name in ("PUBLIC_BASE_URL", "TWILIO_SECRET_NAME", "AUTO_ENROLL"):
            os.environ.pop(name, None)
        forget_built_services()
        participant = enroll({"phone_number": PHONE})
        try:
            yield EnrolledStack(aws, participant["id"])
        finally:
            os.environ.clear()
            os.environ.update(saved)
            forget_built_services()


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
    """AWS requests of one conversation turn for a participant whose transcript has `history` messages."""
    with template_resources() as aws:
        os.environ["TABLE_NAME"] = aws.table_name
        participants, conversation = _stores()
        clock, sms, queue = ManualClock(START), FakeSms(), InMemoryWorkQueue()
        settings = ConversationSettings(table_name=aws.table_name)
        enrollment = EnrollmentService(store=participants, queue=queue, clock=clock)
        participant = enrollment.enroll(EnrollParticipant(phone_number=PHONE))
        scheduler = _NoScheduler()
        service = build_conversation_service(
            settings, participants=participants, conversation=conversation, sender=sms, scheduler=scheduler, clock=clock
        )
        service.handle(queue.sent.pop())
        for n in range(history):
            clock.advance(seconds=1)
            participants.put_message(
                Message(
                    participant_id=participant.id,
                    message_id=f"old{n}",
                    direction=Direction.INBOUND if n % 2 else Direction.OUTBOUND,
                    body=f"an old message {n}",
                    at=clock.now(),
                    turn="old" if n % 2 else None,
                )
            )
        clock.advance(minutes=1)
        text = Message(
            participant_id=participant.id,
            message_id="SMnew",
            direction=Direction.INBOUND,
            body="yes",
            at=clock.now(),
            status="received",
        )
        conversation.record_inbound(text)
        from coach.domain.work import ConversationWork, WorkKind

        work = ConversationWork(
            kind=WorkKind.INBOUND, participant_id=participant.id, occurred_at=clock.now(), message_id="SMnew"
        )
        with counting_aws_calls() as counts:
            participants, conversation = _stores()
            service = build_conversation_service(
                settings,
                participants=participants,
                conversation=conversation,
                sender=sms,
                scheduler=scheduler,
                clock=clock,
            )
            service.handle(work)
        assert sms.sent[-1].body, "the turn sent its reply"
        return counts


def _memory_stores() -> tuple[Any, Any]:
    memory = InMemoryParticipantStore()
    return memory, InMemoryConversationStore(memory)


class _NoScheduler:
    def get(self, name: str) -> None:
        return None

    def put(self, spec: Any, *, exists: bool | None = None) -> None: ...
    def delete(self, name: str) -> None: ...


def nudge_timings(count: int, *, in_memory: bool = False) -> tuple[list[float], Counter[str]]:
    """Time and AWS requests of `count` daily nudges, each for its own coached participant, on moto (or, to
    see our own code's share, on the in-memory stores)."""
    with template_resources() as aws:
        os.environ["TABLE_NAME"] = aws.table_name
        group = "bench-nudges"
        boto3.client("scheduler").create_schedule_group(Name=group)
        participants, conversation = _memory_stores() if in_memory else _stores()
        clock, sms, queue = ManualClock(START), FakeSms(), InMemoryWorkQueue()
        scheduler: Any = EventBridgeScheduler(
            group, "arn:aws:iam::123456789012:role/bench", "arn:aws:lambda:us-east-1:123456789012:function:bench"
        )
        if in_memory:
            scheduler = InMemoryScheduler()
        settings = PromptGeneratorSettings(table_name=aws.table_name, schedule_group_name=group)
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
                conversation.record_inbound(
                    Message(
                        participant_id=participant.id,
                        message_id=sid,
                        direction=Direction.INBOUND,
                        body=body,
                        at=clock.now(),
                    )
                )
                from coach.domain.work import ConversationWork, WorkKind

                conversation_service.handle(
                    ConversationWork(
                        kind=WorkKind.INBOUND, participant_id=participant.id, occurred_at=clock.now(), message_id=sid
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
