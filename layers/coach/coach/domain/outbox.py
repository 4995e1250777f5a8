"""The transactional outbox: what a turn or a nudge decided to send or schedule, saved with the state.

An item is written in the same transaction as the flow state that produced it, then carried out and
marked done. A text is written `sending` already (its first attempt begins with the save), so a crash
in between leaves it sending, and the next delivery of the same work (or any run once the attempt's
lease is over) finishes it, first asking Twilio whether it got through.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.reachability import Purpose


class OutboxState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"  # an attempt started; it may have reached Twilio
    SENT = "sent"
    FAILED = "failed"  # refused for good (invalid number, opted out at the carrier)
    CANCELLED = "cancelled"  # the participant may no longer be contacted for its purpose
    EXPIRED = "expired"  # not sent within its validity window (a nudge or reminder): never sent late


class OutboxKind(StrEnum):
    SMS = "sms"
    EFFECT = "effect"  # a schedule change or another side effect of the engine


class OutboxItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    participant_id: str
    key: str = Field(description="Idempotency key: the same decision always has the same key")
    kind: OutboxKind
    created_at: datetime
    state: OutboxState = OutboxState.PENDING
    to: str | None = None  # SMS: the participant's E.164 number when the item was written
    body: str | None = None  # SMS text, already shaped
    purpose: Purpose = Purpose.REPLY  # SMS: what it is for; the reachability rule is asked again before it goes
    valid_until: datetime | None = None  # SMS: not sent after this (a nudge's or reminder's validity window)
    effect: dict[str, Any] | None = None  # EFFECT: the engine's effect, as JSON
    attempts: int = 0
    attempted_at: datetime | None = None
    twilio_sid: str | None = None
    decision_id: str | None = None  # SMS: the decision point this nudge was sent for (the ledger follows it)
    reported_sid: str | None = None  # SMS: the SID a status callback naming this item reported, however early
    error_code: int | None = None
    message_sk: str | None = None  # SMS: the transcript item this send updates
    work_id: str | None = None  # the queued work or firing whose turn saved it (coach.domain.work)

    @property
    def open(self) -> bool:
        return self.state in (OutboxState.PENDING, OutboxState.SENDING)

    def begin_attempt(self, now: datetime) -> OutboxItem:
        """The item as a new attempt to send it begins."""
        update = {"state": OutboxState.SENDING, "attempts": self.attempts + 1, "attempted_at": now}
        return self.model_copy(update=update)

    def in_flight(self, now: datetime, work_id: str | None) -> bool:
        """Whether another run may be sending this item right now: its attempt began within the lease, in a
        run for other work. A later delivery of the same work comes only once that run has ended."""
        return (
            self.state is OutboxState.SENDING
            and self.attempted_at is not None
            and self.work_id is not None
            and self.work_id != work_id
            and now - self.attempted_at < ATTEMPT_LEASE
        )


# Longer than any function that sends may run (60 s): an attempt older than this has no live runner.
ATTEMPT_LEASE = timedelta(minutes=2)


# A send's status-callback URL carries its item in the query string, so the callback names it however early
# it comes (Twilio signs the whole URL: the webhook's signature check covers these too).
CALLBACK_PARTICIPANT, CALLBACK_OUTBOX = "participant", "outbox"


def callback_params(participant_id: str, outbox_key: str) -> dict[str, str]:
    return {CALLBACK_PARTICIPANT: participant_id, CALLBACK_OUTBOX: outbox_key}
