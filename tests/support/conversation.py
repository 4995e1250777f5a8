"""A conversation service on real stores (DynamoDB on moto, or in memory) with a scriptable SMS sender."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.bootstrap import build_conversation_service, build_nudge_service
from coach.domain.message import Direction, Message
from coach.domain.participant import Participant
from coach.domain.schedules import SCHEDULED_TIME, ScheduleSpec
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import ConversationStore, LanguageModel, ParticipantStore, SentSms
from coach.services.conversation import ConversationService
from coach.services.enrollment import EnrollmentService, EnrollParticipant
from coach.services.nudges import NudgeService, ScheduledEvent
from coach.settings import ConversationSettings, PromptGeneratorSettings
from tests.support.aws import template_resources
from tests.support.memory import (
    InMemoryLlmBudget,
    InMemoryParticipantStore,
    InMemoryResearchAlerts,
    InMemoryScheduler,
    InMemoryWorkQueue,
    ManualClock,
)
from tests.support.memory_conversation import InMemoryConversationStore

START = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


def scheduled_time_of(spec: ScheduleSpec, now: datetime) -> datetime | None:
    """When `spec` was last due at or before `now` within the last minute (Scheduler fires to the minute), or
    None: a daily cron in its zone, or a one-time at()."""
    if spec.expression.startswith("at("):
        due = datetime.fromisoformat(spec.expression[3:-1]).replace(tzinfo=UTC)
        return due if due <= now else None
    minute, hour = (int(part) for part in spec.expression.removeprefix("cron(").split()[:2])
    local = now.astimezone(ZoneInfo(spec.timezone))
    due = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return due.astimezone(UTC) if timedelta(0) <= now - due < timedelta(minutes=1) else None


@dataclass
class FakeSms:
    """Records what is sent; `fail_next` queues exceptions raised by the next sends (before or after Twilio
    accepted the message: `after_accept=True` records the send, then raises, like a lost response)."""

    clock: Callable[[], datetime] = lambda: START
    sent: list[SentSms] = field(default_factory=list)
    validity: dict[str, int | None] = field(default_factory=dict)  # SID -> the ValidityPeriod asked for
    callbacks: dict[str, Mapping[str, str]] = field(default_factory=dict)  # SID -> its callback URL's parameters
    failures: list[tuple[Exception, bool]] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, exc: Exception, *, after_accept: bool = False, times: int = 1) -> None:
        self.failures.extend([(exc, after_accept)] * times)

    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = lambda sid: False,
    ) -> SentSms:
        with self._lock:
            failure = self.failures.pop(0) if self.failures else None
            if failure is not None and not failure[1]:
                raise failure[0]
            sms = SentSms(sid=f"SM{next(self._ids):032d}", status="queued", to=to, body=body, date_created=self.clock())
            self.sent.append(sms)
            self.validity[sms.sid] = validity_seconds
            self.callbacks[sms.sid] = dict(callback_params or {})
            if failure is not None:
                raise failure[0]
            return sms

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = lambda sid: False
    ) -> SentSms | None:
        with self._lock:
            matches = [
                s
                for s in self.sent
                if s.to == to and s.body == body and (s.date_created or since) >= since and not claimed(s.sid)
            ]
            return matches[0] if matches else None

    def bodies_to(self, to: str) -> list[str]:
        return [s.body for s in self.sent if s.to == to]


class OneCallAtATime:
    """A boto3 client whose calls run one at a time. moto's DynamoDB is not thread-safe (it deep-copies
    tables during transactions); real DynamoDB is. Turns still interleave freely between calls."""

    _lock = threading.Lock()

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attribute(*args, **kwargs)

        return call


@dataclass
class Harness:
    participants: ParticipantStore
    conversation: ConversationStore
    sms: FakeSms
    scheduler: InMemoryScheduler
    clock: ManualClock
    queue: InMemoryWorkQueue
    build: Callable[..., ConversationService]
    service: ConversationService
    enrollment: EnrollmentService
    build_nudges: Callable[..., NudgeService]
    alerts: InMemoryResearchAlerts = field(default_factory=InMemoryResearchAlerts)
    texts: Iterator[int] = field(default_factory=itertools.count)

    def fire(self, participant: Participant, kind: str = "daily_nudge", **fields: Any) -> list[str]:
        """A schedule fires the prompt generator (now, unless `scheduled_time` says when it was due); the SMS
        it sent."""
        before = len(self.sms.sent)
        self.build_nudges().fire(ScheduledEvent(participant_id=participant.id, kind=kind, **fields))
        return [s.body for s in self.sms.sent[before:]]

    def fire_scheduled(self, participant: Participant) -> list[str]:
        """What Scheduler does: fire each of the participant's schedules that is due now, with its input (the
        scheduled time filled in); the SMS sent. One-time schedules delete themselves after firing."""
        before = len(self.sms.sent)
        for name, spec in sorted(self.scheduler.of(participant.id).items()):
            due = scheduled_time_of(spec, self.clock.now())
            if due is None:
                continue
            payload = {k: (due.isoformat() if v == SCHEDULED_TIME else v) for k, v in spec.payload.items()}
            self.build_nudges().fire(ScheduledEvent.model_validate(payload))
            if spec.one_time:
                self.scheduler.schedules.pop(name, None)
        return [s.body for s in self.sms.sent[before:]]

    def schedules(self, participant: Participant) -> dict[str, tuple[str, str]]:
        """The participant's schedules in the (fake) Scheduler: kind -> (expression, timezone)."""
        return {spec.kind: (spec.expression, spec.timezone) for spec in self.scheduler.of(participant.id).values()}

    def enroll(self, phone: str = "+12065550100", **fields: Any) -> Participant:
        participant = self.enrollment.enroll(EnrollParticipant(phone_number=phone, **fields))
        self.run_queued()
        self.clock.advance(seconds=30)
        return participant

    def run_queued(self) -> None:
        while self.queue.sent:
            self.service.handle(self.queue.sent.pop(0))

    def receive(self, participant: Participant, body: str, sid: str | None = None) -> ConversationWork:
        """What the webhook does for a text: store it once, queue the work."""
        sid = sid or f"SMin{next(self.texts):030d}"
        self.conversation.record_inbound(
            Message(
                participant_id=participant.id,
                message_id=sid,
                direction=Direction.INBOUND,
                body=body,
                at=self.clock.now(),
                status="received",
            )
        )
        now = self.clock.now()
        return ConversationWork(
            kind=WorkKind.INBOUND, participant_id=participant.id, occurred_at=now, message_id=sid, message_at=now
        )

    def text(self, participant: Participant, body: str) -> list[str]:
        """Send a text and run its turn; the SMS sent in reply."""
        before = len(self.sms.sent)
        self.service.handle(self.receive(participant, body))
        self.clock.advance(seconds=30)
        return [s.body for s in self.sms.sent[before:]]


@contextmanager
def harness(kind: str, *, language_model: LanguageModel | None = None, **settings: Any) -> Iterator[Harness]:
    """kind: "dynamodb" (moto, table from template.yaml) or "memory"."""
    with ExitStack() as stack:
        participants: ParticipantStore
        conversation: ConversationStore
        if kind == "memory":
            memory = InMemoryParticipantStore()
            participants, conversation = memory, InMemoryConversationStore(memory)
            table = "memory"
        else:
            aws = stack.enter_context(template_resources())
            client = OneCallAtATime(aws.dynamodb)
            participants = DynamoDBParticipantStore(aws.table_name, client)
            conversation = DynamoDBConversationStore(aws.table_name, client)
            table = aws.table_name
        scheduler, clock, queue, budget = (
            InMemoryScheduler(),
            ManualClock(START),
            InMemoryWorkQueue(),
            InMemoryLlmBudget(),
        )
        sms = FakeSms(clock=clock.now)
        alerts = InMemoryResearchAlerts()
        config = ConversationSettings(table_name=table, **settings)

        def build(**overrides: Any) -> ConversationService:
            parts: dict[str, Any] = {
                "participants": participants,
                "conversation": conversation,
                "sender": sms,
                "scheduler": scheduler,
                "clock": clock,
                "language_model": lambda: language_model,
                "budget": budget,
                "alerts": alerts,
                **overrides,
            }
            return build_conversation_service(config, **parts)

        def build_nudges(**overrides: Any) -> NudgeService:
            nudge_config = PromptGeneratorSettings(table_name=table, **{**settings, **overrides})
            return build_nudge_service(
                nudge_config,
                participants=participants,
                conversation=conversation,
                sender=sms,
                scheduler=scheduler,
                clock=clock,
                language_model=lambda: language_model,
                budget=budget,
                alerts=alerts,
            )

        ids = itertools.count(1)
        enrollment = EnrollmentService(
            store=participants,
            queue=queue,
            clock=clock,
            scheduler=scheduler,
            new_id=lambda: f"participant-{next(ids):04d}",  # reproducible, like a study's own ids
        )
        yield Harness(
            participants, conversation, sms, scheduler, clock, queue, build, build(), enrollment, build_nudges, alerts
        )
