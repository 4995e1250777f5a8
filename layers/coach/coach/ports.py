"""The Protocols the services depend on. Adapters implement them; tests pass fakes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from coach.domain.chat import ChatMessage, ModelReply, ToolSpec
from coach.domain.flow import FlowState
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.work import ConversationWork

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str | None = None


class ParticipantStore(Protocol):
    """Participants, their phone index, flow state, transcript and research events (one table)."""

    def create_participant(
        self, participant: Participant, flow: FlowState, events: Sequence[ResearchEvent] = ()
    ) -> None:
        """Participant + phone index + flow state (+ events) in one transaction.

        Raises PhoneNumberTaken when the number is enrolled already.
        """

    def get_participant(self, participant_id: str) -> Participant:
        """Raises NotFound."""

    def participant_id_for_phone(self, phone_number: str) -> str | None: ...

    def list_participants(
        self, *, status: ParticipantStatus | None, limit: int, next_token: str | None
    ) -> Page[Participant]:
        """Oldest first. Raises InvalidPageToken for a token we did not issue."""

    def update_participant(
        self,
        participant: Participant,
        *,
        previous_phone: str | None = None,
        flow: FlowState | None = None,
        events: Sequence[ResearchEvent] = (),
    ) -> Participant:
        """Write `participant` if its stored version is still `participant.version`; return it at version + 1.

        With `previous_phone`, the phone index moves atomically (PhoneNumberTaken if the new one is taken).
        With `flow`, the flow state is written in the same transaction, conditional on its own version.
        Raises Conflict when a version moved, NotFound when the participant is gone.
        """

    def delete_participant(self, participant_id: str) -> None:
        """Remove every item of the participant and its phone index. Raises NotFound."""

    def get_flow_state(self, participant_id: str) -> FlowState:
        """Raises NotFound."""

    def save_flow_state(self, flow: FlowState, events: Sequence[ResearchEvent] = ()) -> FlowState:
        """Write if the stored version is still `flow.version`; return it at version + 1. Raises Conflict."""

    def put_message(self, message: Message) -> bool:
        """Store a transcript message once; False when a message with its id is already stored."""

    def list_messages(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[Message]:
        """Oldest first. Raises InvalidPageToken."""

    def list_events(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[ResearchEvent]:
        """Oldest first. Raises InvalidPageToken."""


class WorkQueue(Protocol):
    """The FIFO queue in front of the conversation function."""

    def send(self, work: ConversationWork) -> None: ...


@dataclass(frozen=True)
class SentSms:
    """What the SMS provider answered for one message."""

    sid: str
    status: str  # queued, sending, sent, delivered, undelivered, failed, ...
    to: str
    body: str
    date_created: datetime | None = None


class SmsSender(Protocol):
    """Sends SMS (Twilio's REST API). Adapters raise DeliveryRejected or DeliveryUnavailable."""

    def send(self, to: str, body: str) -> SentSms:
        """Send one SMS from our number (or messaging service) with the status-callback URL set."""

    def find_sent(self, to: str, body: str, since: datetime) -> SentSms | None:
        """A message with this body sent to `to` at or after `since`, if the provider has one.

        Lets a retried send find out whether an earlier attempt got through before it crashed.
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class LanguageModel(Protocol):
    """A chat model with tool calling (the conversation engine's only way out of pure code)."""

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> ModelReply:
        """One answer to the conversation so far. Raises coach.domain.chat.LanguageModelUnavailable."""
