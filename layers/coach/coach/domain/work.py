"""What travels on the FIFO queue to the conversation function: one item of work per participant turn."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class WorkKind(StrEnum):
    ENROLLED = "enrolled"  # send the greeting and the first intake question
    RESET = "reset"  # the researcher put the conversation back to intake
    INBOUND = "inbound"  # a text from the participant, already stored under `message_id`
    ONE_OFF = "one_off"  # a researcher's message to the participant (`text`), keyed by `message_id`


class ConversationWork(BaseModel):
    """The body of a queue message. The queue's group id is the participant id (one turn at a time)."""

    model_config = ConfigDict(extra="ignore")

    kind: WorkKind
    participant_id: str
    occurred_at: datetime
    message_id: str | None = None
    # INBOUND: when the text was stored, which with its MessageSid locates it without a lookup (work queued
    # before this field existed finds it by MessageSid alone).
    message_at: datetime | None = None
    text: str | None = None  # ONE_OFF: what the researcher wrote
    override_quiet_hours: bool = False  # ONE_OFF: send even in the participant's quiet hours

    def deduplication_id(self) -> str:
        """Same work, same id: SQS FIFO drops a repeat within 5 minutes; our own checks do the rest."""
        if self.message_id:
            return self.message_id
        return f"{self.kind.value}#{self.participant_id}#{self.occurred_at.isoformat()}"[:128]
