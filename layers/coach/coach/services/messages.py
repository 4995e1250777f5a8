"""A researcher's one-off messages (issue 10): to one participant, an arm, or every active participant.

Each goes through the same path as the coach's texts: queued work for the conversation function, whose
turn asks the reachability rule (opt-out, status, consent; quiet hours unless the researcher overrides them)
and saves it in the outbox and the transcript. The segment budget holds: a text longer than it is refused
with what to fix, never cut. Every request is on the audit trail.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from coach.domain.audit import SYSTEM, Actor
from coach.domain.errors import InvalidField
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.participant import ParticipantStatus
from coach.domain.sms_text import count_segments
from coach.domain.work import ConversationWork, WorkKind
from coach.services.enrollment import ArmName, EnrollmentService

MessageText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_BODY_CHARS)]


class SendMessage(BaseModel):
    """Body of POST /conversation/participants/{id}/messages."""

    text: MessageText = Field(description="What to send, within the study's SMS segment budget")
    override_quiet_hours: bool = Field(False, description="Send even in the participant's quiet hours")


class Broadcast(SendMessage):
    """Body of POST /conversation/messages: to an arm's participants, or every one (of the status)."""

    arm: ArmName | None = Field(None, description="Only this arm's participants; all arms when absent")
    status: ParticipantStatus = Field(ParticipantStatus.ACTIVE, description="Only participants with this status")


class MessageQueued(BaseModel):
    participant_ids: list[str] = Field(description="Who it was queued for (each is still checked before sending)")
    message_ids: list[str] = Field(description="The transcript message ids it will have, one per participant")


@dataclass
class ResearcherMessages:
    enrollment: EnrollmentService
    segment_budget: int = 2
    new_id: Callable[[], str] = field(default=lambda: uuid.uuid4().hex[:16])

    def send(self, participant_id: str, body: SendMessage, actor: Actor = SYSTEM) -> MessageQueued:
        self.enrollment.store.get_participant(participant_id)  # 404 for a participant we do not have
        self._within_budget(body.text)
        return self._queue([participant_id], body, actor, scope="participant")

    def broadcast(self, body: Broadcast, actor: Actor = SYSTEM) -> MessageQueued:
        self._within_budget(body.text)
        chosen, token = [], None
        while True:
            page = self.enrollment.store.list_participants(status=body.status, limit=100, next_token=token)
            chosen += [p.id for p in page.items if body.arm is None or p.study_arm == body.arm]
            token = page.next_token
            if token is None:
                break
        return self._queue(chosen, body, actor, scope=f"arm {body.arm}" if body.arm else f"all {body.status.value}")

    def _within_budget(self, text: str) -> None:
        segments = count_segments(text).segments
        if segments > self.segment_budget:
            raise InvalidField(
                "text", f"{segments} SMS segments; the study sends at most {self.segment_budget}: shorten it"
            )

    def _queue(self, participant_ids: list[str], body: SendMessage, actor: Actor, *, scope: str) -> MessageQueued:
        now = self.enrollment.clock.now()
        keys = [f"one_off#{self.new_id()}" for _ in participant_ids]
        for participant_id, key in zip(participant_ids, keys, strict=True):
            self.enrollment.record(
                actor,
                "message",
                participant_id,
                text=body.text,
                override_quiet_hours=body.override_quiet_hours,
                scope=scope,
                message_id=f"{key}#0",
            )
            work = ConversationWork(
                kind=WorkKind.ONE_OFF,
                participant_id=participant_id,
                occurred_at=now,
                message_id=key,
                text=body.text,
                override_quiet_hours=body.override_quiet_hours,
            )
            self.enrollment.queue.send(work)  # a failure is a 5xx: the researcher sends again
        return MessageQueued(participant_ids=participant_ids, message_ids=[f"{k}#0" for k in keys])
