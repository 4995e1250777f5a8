"""The Protocols the services depend on. Adapters implement them; tests pass fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

# Only for the signatures: a function imports the domain modules it uses, not every port's (cold start).
if TYPE_CHECKING:
    from coach.domain.audit import AuditEntry
    from coach.domain.chat import ChatMessage, ModelReply, ToolSpec
    from coach.domain.decisions import DecisionPoint, DecisionUpdate
    from coach.domain.deletion import Deletion
    from coach.domain.effects import AlertResearchers
    from coach.domain.exports import ExportJob
    from coach.domain.flow import FlowState
    from coach.domain.message import Message, ResearchEvent
    from coach.domain.outbox import OutboxItem, OutboxState
    from coach.domain.participant import Participant, ParticipantStatus
    from coach.domain.retention import ArchiveKind, ExpiredItems, RetentionPass
    from coach.domain.schedules import ScheduleSpec
    from coach.domain.work import ConversationWork

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str | None = None


class ParticipantStore(Protocol):
    """Participants, their phone index, flow state, transcript and research events (one table)."""

    def create_participant(
        self,
        participant: Participant,
        flow: FlowState,
        events: Sequence[ResearchEvent] = (),
        audit: Sequence[AuditEntry] = (),
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
        audit: Sequence[AuditEntry] = (),
    ) -> Participant:
        """Write `participant` if its stored version is still `participant.version`; return it at version + 1.

        With `previous_phone`, the phone index moves atomically (PhoneNumberTaken if the new one is taken).
        With `flow`, the flow state is written in the same transaction, conditional on its own version.
        Raises Conflict when a version moved, NotFound when the participant is gone.
        """

    def delete_participant(
        self,
        participant_id: str,
        *,
        audit: Sequence[AuditEntry] = (),
        time_left: Callable[[], float] | None = None,
    ) -> Deletion:
        """Delete the participant in batches, while `time_left()` (seconds) stays above 0 (None: no limit).

        The first call removes record, phone index and flow state at once, with `audit` (the tombstone), and
        leaves a deletion marker: from then on the participant is gone for every reader. Each call removes
        what else the participant has, as far as the time allows. items_left 0: only the marker is left, for
        finish_deletion once what lives outside the table is gone too. Raises NotFound when there is neither a
        participant nor a deletion under way."""

    def finish_deletion(self, participant_id: str) -> bool:
        """Remove the deletion marker; False when there was none (another call finished first)."""

    def get_flow_state(self, participant_id: str) -> FlowState:
        """Raises NotFound."""

    def save_flow_state(
        self, flow: FlowState, events: Sequence[ResearchEvent] = (), audit: Sequence[AuditEntry] = ()
    ) -> FlowState:
        """Write if the stored version is still `flow.version`; return it at version + 1. Raises Conflict."""

    def put_message(self, message: Message) -> bool:
        """Store a transcript message once; False when a message with its id is already stored."""

    def list_messages(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[Message]:
        """Oldest first. Raises InvalidPageToken."""

    def list_events(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[ResearchEvent]:
        """Oldest first. Raises InvalidPageToken."""

    def list_decisions(self, participant_id: str, *, limit: int, next_token: str | None) -> Page[DecisionPoint]:
        """The decision-point ledger, oldest first. Raises InvalidPageToken."""


class ResearcherNames(Protocol):
    """Who holds an API key: the name the audit trail records."""

    def name_of(self, key_id: str) -> str | None: ...


class AuditLog(Protocol):
    """The researchers' audit trail: appended to, read, never changed through the API."""

    def append(self, entry: AuditEntry) -> None: ...

    def entries(self, *, participant_id: str | None, limit: int, next_token: str | None) -> Page[AuditEntry]:
        """Oldest first, the whole trail or one participant's. Raises InvalidPageToken."""

    def erase_personal_data(self, participant_id: str) -> int:
        """Erase the personal values in a deleted participant's entries; how many entries held some."""


@dataclass(frozen=True)
class TurnReads:
    """What a turn reads besides the participant and its flow state, in the same request."""

    inbound_id: str | None = None  # an inbound text, by MessageSid
    inbound_at: datetime | None = None  # its stored time, when the work says: then no lookup by id is needed
    work_keys: Sequence[str] = ()  # pieces of work (a firing, a reset...) that may have been done already
    outbox_keys: Sequence[str] = ()  # outbox items the turn looks at (a reminder: its nudge's)


@dataclass(frozen=True)
class StoredTurn:
    """The participant, its flow state and what the TurnReads asked for, as stored (read consistently)."""

    participant: Participant
    flow: FlowState
    inbound: Message | None = None  # None: no inbound text with that id
    work_done: frozenset[str] = frozenset()  # those of the work keys that were done
    outbox: Mapping[str, OutboxItem] = field(default_factory=dict)  # those of the outbox keys that exist
    open_outbox: frozenset[str] = frozenset()  # keys of the participant's items still pending or sending


@dataclass(frozen=True)
class SavedTurn:
    """What save_turn stored: the flow state at its new version, and the outbox items as stored (each text
    linked to its transcript message)."""

    flow: FlowState
    outbox: Sequence[OutboxItem] = ()


@dataclass(frozen=True)
class FinishedItem:
    """How an outbox item ended. `item` is as this runner last wrote it: its state and attempts are the
    condition of the write that closes it."""

    item: OutboxItem
    state: OutboxState
    sent: SentSms | None = None
    error_code: int | None = None
    events: Sequence[ResearchEvent] = ()
    decision_updates: Sequence[DecisionUpdate] = ()


class ConversationStore(Protocol):
    """Inbound texts, turns and the outbox: what the webhook and the conversation function share."""

    # -- the webhook ---------------------------------------------------------------------------

    def record_inbound(self, message: Message) -> bool:
        """Store an inbound text once, keyed by its MessageSid, waiting for a turn; False if stored already."""

    def claim_not_enrolled_reply(self, phone_number: str, now: datetime, window: timedelta) -> bool:
        """True for the first claim per number within `window`: only then may the not-enrolled text go out."""

    def update_delivery_status(
        self, participant_id: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        """Move a sent message's status forward (never back). False for an unknown SID or an older status."""

    def record_callback(
        self, participant_id: str, outbox_key: str, twilio_sid: str, status: str, error_code: int | None, now: datetime
    ) -> bool:
        """A status callback that names our outbox item (its URL carries the key): however early it comes, the
        item learns its SID (which no other item may then claim) and its message's status moves forward.
        False for an unknown item or an older status."""

    def sid_claimed(self, participant_id: str, twilio_sid: str) -> bool:
        """Whether an outbox item of the participant has this Twilio SID as its own."""

    # -- turns ---------------------------------------------------------------------------------

    def load_turn(self, participant_id: str, reads: TurnReads | None = None) -> StoredTurn:
        """The participant, its flow state, the keys of its open outbox items and what `reads` names, read
        consistently in one request (a text found by id alone costs one more). Raises NotFound when the
        participant or its flow state is gone."""

    def inbound_message(self, participant_id: str, message_id: str) -> Message | None:
        """The stored inbound text with this MessageSid, read consistently."""

    def unanswered_inbound(self, participant_id: str, limit: int) -> list[Message]:
        """Inbound texts no turn has answered yet, oldest first (may lag a little: save_turn re-checks)."""

    def work_done(self, participant_id: str, work_key: str) -> bool:
        """Whether a turn for this piece of queued work (enrolled, reset, ...) has been saved."""

    def save_turn(
        self,
        flow: FlowState,
        *,
        participant: Participant | None = None,
        answered: Sequence[Message] = (),
        work_key: str | None = None,
        outbox: Sequence[OutboxItem] = (),
        messages: Sequence[Message] = (),
        events: Sequence[ResearchEvent] = (),
        decisions: Sequence[DecisionPoint] = (),
        decision_updates: Sequence[DecisionUpdate] = (),
    ) -> SavedTurn:
        """One transaction: the new flow state (conditional on its version, and on `participant`'s version
        when given), `answered` marked answered (each conditional on no turn having answered it), the work
        key, the outbox items and outbound transcript messages (each new; an item updates the message with
        its key), and the events. Returns the flow at version + 1 and the items as stored.

        Raises Conflict when the flow or the participant moved or a text was answered meanwhile (reload and
        recompute), and AlreadyDone when the work key or an outbox key exists already (nothing to do but
        finish the outbox).
        """

    def update_decision(self, update: DecisionUpdate, now: datetime) -> bool:
        """Set fields of a decision point (its send, delivery, reply); False when there is none."""

    # -- the outbox ----------------------------------------------------------------------------

    def open_outbox(self, participant_id: str) -> list[OutboxItem]:
        """Items still pending or sending, oldest first, from an index (it may lag a moment behind a write)."""

    def get_outbox_item(self, participant_id: str, item_key: str) -> OutboxItem | None: ...

    def outbox_items(self, participant_id: str, item_keys: Sequence[str]) -> list[OutboxItem]:
        """Those of these items that exist, read consistently in one request, oldest first."""

    def begin_attempt(self, item: OutboxItem, now: datetime) -> OutboxItem:
        """Mark an attempt as started (state sending, attempts + 1). Raises Conflict if the item moved."""

    def finish_outbox(
        self,
        finished: Sequence[FinishedItem],
        now: datetime,
        *,
        unchanged: tuple[Participant, FlowState] | None = None,
    ) -> list[str]:
        """Close the items in one write, each with its transcript message (SID, error code, and a status that
        only moves forward), events and ledger updates; a sent SMS's SID becomes findable by
        update_delivery_status. Returns the keys of items another runner had moved meanwhile (left as they
        are). With `unchanged`, nothing is written if that participant or flow state version has moved since:
        raises Conflict."""


@dataclass(frozen=True)
class ExistingSchedule:
    """A schedule as the Scheduler holds it: what it does, and whether the rest is as we would set it
    (enabled, our target, role, retry policy and dead-letter queue)."""

    spec: ScheduleSpec
    in_order: bool = True


class Scheduler(Protocol):
    """EventBridge Scheduler: the participants' schedules, by name (coach.domain.schedules)."""

    def get(self, name: str) -> ExistingSchedule | None:
        """The schedule of this name, or None when there is none."""

    def put(self, spec: ScheduleSpec, *, exists: bool | None = None) -> None:
        """Create the schedule or make it what `spec` says. `exists`: what the caller knows (saves a
        request); None when it does not know."""

    def delete(self, name: str) -> None:
        """Remove the schedule; nothing to remove is fine."""


class ResearchAlerts(Protocol):
    """Where the research team hears of a safety flag at once (SNS, to the alarm e-mail)."""

    def safety_flag(self, participant_id: str, alert: AlertResearchers) -> None:
        """Raise DeliveryUnavailable when the alert could not be handed over (the outbox tries again)."""


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


def _nothing_claimed(sid: str) -> bool:
    return False


class SmsSender(Protocol):
    """Sends SMS (Twilio's REST API). Adapters raise DeliveryRejected or DeliveryUnavailable."""

    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = _nothing_claimed,
    ) -> SentSms:
        """Send one SMS from our number (or messaging service) with the status-callback URL set.

        `validity_seconds`: how long the provider may keep it queued before dropping it (a nudge's window).
        `callback_params`: added to the status-callback URL, so the callback names our item. `claimed(sid)`:
        whether another item owns a message already, for a retry that must find out whether its own try got
        through (never by its body alone)."""

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = _nothing_claimed
    ) -> SentSms | None:
        """The oldest message with this body sent to `to` at or after `since` whose SID is not `claimed`.

        Lets a retried send find out whether an earlier attempt got through before it crashed.
        """


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware (UTC)."""


class LanguageModel(Protocol):
    """A chat model with tool calling (the conversation engine's only way out of pure code)."""

    def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, time_left: float | None = None
    ) -> ModelReply:
        """One answer to the conversation so far, within `time_left` seconds (None: no deadline).

        Raises coach.domain.chat.LanguageModelUnavailable (with .kind and .calls) and nothing else."""


class EnrollmentSequence(Protocol):
    """The study's enrollment count, which arm allocation by permuted blocks follows."""

    def next(self) -> int:
        """This enrollment's number: 0 for the first, atomically across concurrent enrollments."""


class LlmBudget(Protocol):
    """The study-wide daily token budget, shared by every participant's turns."""

    def spent(self, day: str) -> int:
        """Tokens spent on `day` (UTC date) so far."""

    def add(self, day: str, tokens: int) -> None:
        """Count tokens spent on `day` (atomic across concurrent turns)."""


class ExportJobs(Protocol):
    """The export jobs researchers asked for (PK = EXPORT on the one table)."""

    def create(self, job: ExportJob) -> None: ...

    def get(self, export_id: str) -> ExportJob:
        """Raises NotFound."""

    def save(self, job: ExportJob) -> ExportJob:
        """Write `job` if the stored one still has job.version; returns it with the next version. Raises Conflict."""

    def list(self, *, limit: int, next_token: str | None) -> Page[ExportJob]:
        """Newest first. Raises InvalidPageToken for a token we did not issue."""


class ExportFiles(Protocol):
    """Where export files go (S3), and time-limited URLs to download them."""

    def put(self, key: str, path: Path, content_type: str) -> None: ...

    def url(self, key: str, seconds: int) -> str: ...


class ExportQueue(Protocol):
    """Hands an export to the export function."""

    def send(self, export_id: str) -> None: ...


class ParticipantArchive(Protocol):
    """What retention moved out of the table, kept per participant (S3: JSON lines under archive/<id>/)."""

    def put(self, participant_id: str, kind: ArchiveKind, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Keep `records` (items as stored, each with its SK) as one file; the same name again replaces it."""

    def records(self, participant_id: str, kind: ArchiveKind) -> Iterator[dict[str, Any]]:
        """Every archived record of the kind, oldest file first, each SK once."""

    def erase(self, participant_id: str, time_left: Callable[[], float] | None = None) -> bool:
        """Delete the participant's whole archive; False when the time ran out first (call again)."""


class RetentionStore(Protocol):
    """The table's side of retention (coach.domain.retention) and of deletions left unfinished."""

    def expired_items(self, participant_id: str, before: datetime) -> ExpiredItems:
        """The participant's messages, events and outbox items from before `before` that may go."""

    def remove_items(self, participant_id: str, keys: Sequence[str]) -> None:
        """Remove the participant's items with these sort keys (those gone already are no matter)."""

    def retention_pass(self) -> RetentionPass: ...

    def save_retention_pass(self, state: RetentionPass) -> None: ...

    def unfinished_deletions(self, limit: int) -> list[str]:
        """Participants whose deletion began and has not finished (at most `limit`, in id order)."""

    def repair_index(self) -> int:
        """Move participants an earlier version indexed under one key for all to their status's key; how many."""
