"""The Twilio webhook's use cases: a text from a participant, and a delivery-status callback.

Both get the form fields of a request whose signature was checked already (adapters/twilio_signature.py).
They answer within a few DynamoDB/SQS calls: the coached reply comes later, from the conversation
function, through the FIFO queue.

Texts the webhook handles itself (carrier keywords, texts from opted-out or withdrawn participants)
are stored with `turn` = "webhook:<why>", so no turn ever answers them; every other text is stored
unanswered and queued.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from coach.domain.audit import Actor
from coach.domain.errors import Conflict, DeliveryRejected, InvalidField, NotFound, PhoneNumberTaken
from coach.domain.keywords import KeywordKind, carrier_keyword, normalised_keyword
from coach.domain.message import MAX_BODY_CHARS, Direction, Message
from coach.domain.outbox import CALLBACK_OUTBOX, CALLBACK_PARTICIPANT
from coach.domain.participant import Participant, ParticipantStatus, mask_phone, sender_phone_number
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import Clock, ConversationStore, ParticipantStore, WorkQueue
from coach.services.opt_out import set_opted_out

if TYPE_CHECKING:
    from coach.services.enrollment import EnrollmentService  # only with AUTO_ENROLL: built on first use

WEBHOOK_TURN_PREFIX = "webhook:"  # `turn` of a text the webhook handled itself: no turn may answer it

# Twilio's SIDs are two letters and 32 hex digits; allow some slack, but only characters every key
# and SQS deduplication id accepts.
Sid = Annotated[str, StringConstraints(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]

M = TypeVar("M", bound=BaseModel)


class InboundSms(BaseModel):
    """The form Twilio posts to /twilio/sms (only what we use; Twilio adds fields over time)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    from_: Phone = Field(alias="From")
    to: Phone = Field(alias="To")
    body: str = Field("", alias="Body", description="Absent or empty for a picture-only message")
    message_sid: Sid = Field(alias="MessageSid")
    account_sid: str | None = Field(None, alias="AccountSid", max_length=64)
    num_media: int = Field(0, alias="NumMedia", ge=0)


class DeliveryStatus(BaseModel):
    """The form Twilio posts to a message's status callback (/twilio/status)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    message_sid: Sid = Field(alias="MessageSid")
    status: str = Field(alias="MessageStatus", pattern=r"^[A-Za-z_-]{1,32}$")
    to: Phone = Field(alias="To", description="The participant")
    from_: str | None = Field(None, alias="From", max_length=64)
    error_code: int | None = Field(None, alias="ErrorCode", ge=0)

    @model_validator(mode="before")
    @classmethod
    def _older_status_name(cls, data: Any) -> Any:
        # Older callbacks name the status SmsStatus; newer ones send both.
        if isinstance(data, Mapping) and "MessageStatus" not in data and "SmsStatus" in data:
            return {**data, "MessageStatus": data["SmsStatus"]}
        return data

    @field_validator("error_code", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class SmsOutcome(StrEnum):
    QUEUED = "queued"  # stored (now or before) and queued for a turn
    NOT_COACHED = "not_coached"  # opted out or withdrawn: stored, no turn
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    HELP = "help"
    NOT_ENROLLED = "not_enrolled"  # an unknown number; declined (a reply at most once per window)
    IGNORED = "ignored"  # not a phone number, or STOP from a number we do not know


@dataclass(frozen=True)
class SmsResult:
    outcome: SmsOutcome
    reply: str | None = None  # what to answer in TwiML, if anything
    participant_id: str | None = None
    duplicate: bool = False  # this MessageSid was stored before (a Twilio retry)
    sender: str = "***"  # masked: the only form of the number logs may carry


@dataclass(frozen=True)
class StatusResult:
    participant_id: str | None
    updated: bool  # the message's status moved forward
    opted_out: bool = False  # this callback opted the participant out (error 21610)


class _Action(StrEnum):
    CONVERSE = "converse"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NOT_COACHED = "not_coached"


_OUTCOMES = {
    _Action.OPT_OUT: SmsOutcome.OPTED_OUT,
    _Action.OPT_IN: SmsOutcome.OPTED_IN,
    _Action.HELP: SmsOutcome.HELP,
    _Action.NOT_COACHED: SmsOutcome.NOT_COACHED,
}


@dataclass
class InboundService:
    participants: ParticipantStore
    conversations: ConversationStore
    queue: WorkQueue
    clock: Clock
    help_text: str
    not_enrolled_text: str
    not_enrolled_window: timedelta = timedelta(hours=24)
    opt_out_confirmation: str | None = None
    default_phone_region: str = "US"
    enrollment: EnrollmentService | None = None  # set = AUTO_ENROLL: unknown senders are enrolled

    # -- POST /twilio/sms ------------------------------------------------------------------------

    def receive_sms(self, fields: Mapping[str, str]) -> SmsResult:
        sms = _parse(InboundSms, fields)
        try:
            phone = sender_phone_number(sms.from_, self.default_phone_region, "From")
        except InvalidField:
            return SmsResult(SmsOutcome.IGNORED)  # a short code or an alphanumeric sender: nobody to coach
        keyword = carrier_keyword(sms.body)
        participant = self._participant_for(phone)
        if participant is None:
            if keyword is KeywordKind.HELP:
                return SmsResult(SmsOutcome.HELP, reply=self.help_text, sender=mask_phone(phone))
            if keyword is KeywordKind.OPT_OUT:
                return SmsResult(SmsOutcome.IGNORED, sender=mask_phone(phone))  # Twilio's opt-out covers it
            if self.enrollment is None:
                return self._decline(phone)
            participant = self._auto_enroll(phone)
        now = self.clock.now()
        message = Message(
            participant_id=participant.id,
            message_id=sms.message_sid,
            direction=Direction.INBOUND,
            body=sms.body[:MAX_BODY_CHARS],
            at=now,
            twilio_sid=sms.message_sid,
            status="received",
            truncated=len(sms.body) > MAX_BODY_CHARS,
        )
        action = _action(participant, keyword)
        if action is _Action.CONVERSE:
            return self._converse(message, mask_phone(phone))
        return self._handle_here(action, participant, message, normalised_keyword(sms.body), mask_phone(phone))

    def _converse(self, message: Message, sender: str) -> SmsResult:
        """Store the text once and queue it; a retry queues the very same work again."""
        pid = message.participant_id
        stored_now = self.conversations.record_inbound(message)
        at = message.at
        if not stored_now:
            earlier = self.conversations.inbound_message(pid, message.message_id)
            if earlier is not None and earlier.turn is not None:
                # Answered by a turn already, or handled here: nothing is left to do.
                return SmsResult(SmsOutcome.QUEUED, participant_id=pid, duplicate=True, sender=sender)
            if earlier is not None:
                at = earlier.at
        # Queued even when stored before: the first attempt may have stopped between store and send.
        # The queue drops a repeat within 5 minutes; the conversation function answers a text once.
        work = ConversationWork(
            kind=WorkKind.INBOUND, participant_id=pid, message_id=message.message_id, occurred_at=at, message_at=at
        )
        self.queue.send(work)
        return SmsResult(SmsOutcome.QUEUED, participant_id=pid, duplicate=not stored_now, sender=sender)

    def _handle_here(
        self, action: _Action, participant: Participant, message: Message, keyword: str | None, sender: str
    ) -> SmsResult:
        """Keywords and texts nobody may answer: stored for the record, never queued."""
        pid = participant.id
        changes_consent = action in (_Action.OPT_OUT, _Action.OPT_IN)
        # Act only on the first delivery of this text: a late retry of START must not undo a later STOP.
        if changes_consent and self.conversations.inbound_message(pid, message.message_id) is None:
            self._set_opted_out(pid, action is _Action.OPT_OUT, {"keyword": keyword}, participant)
        handled = message.model_copy(update={"turn": f"{WEBHOOK_TURN_PREFIX}{action.value}"})
        stored_now = self.participants.put_message(handled)
        reply = {_Action.HELP: self.help_text, _Action.OPT_OUT: self.opt_out_confirmation}.get(action)
        if reply is not None:
            self.participants.put_message(
                Message(
                    participant_id=pid,
                    message_id=f"{message.message_id}#reply",
                    direction=Direction.OUTBOUND,
                    body=reply,
                    at=message.at,
                    status="twiml",  # answered in the webhook's response; Twilio sends no status for it
                )
            )
        return SmsResult(_OUTCOMES[action], reply=reply, participant_id=pid, duplicate=not stored_now, sender=sender)

    def _decline(self, phone: str) -> SmsResult:
        """An unknown number: a polite reply at most once per window, then silence."""
        claimed = self.conversations.claim_not_enrolled_reply(phone, self.clock.now(), self.not_enrolled_window)
        reply = self.not_enrolled_text if claimed else None
        return SmsResult(SmsOutcome.NOT_ENROLLED, reply=reply, sender=mask_phone(phone))

    def _auto_enroll(self, phone: str) -> Participant:
        assert self.enrollment is not None
        try:
            from coach.services.enrollment import EnrollParticipant

            return self.enrollment.enroll(EnrollParticipant(phone_number=phone), AUTO_ENROLL)
        except PhoneNumberTaken:
            # A concurrent delivery of this text (or the API) enrolled the number a moment ago.
            participant = self._participant_for(phone)
            if participant is None:
                raise Conflict("the number was enrolled and removed meanwhile") from None
            return participant

    # -- POST /twilio/status ---------------------------------------------------------------------

    def record_delivery_status(
        self, fields: Mapping[str, str], reference: Mapping[str, str] | None = None
    ) -> StatusResult:
        """A status callback. `reference`: the query string of its URL, which names our outbox item (Twilio signs
        the URL, so it is ours): then it applies however early it comes. Without one (an older message), the
        SID stored at the send finds the message."""
        callback = _parse(DeliveryStatus, fields)
        now = self.clock.now()
        status, sid = callback.status.lower(), callback.message_sid
        participant_id, outbox_key = _referenced_item(reference or {})
        if participant_id is not None and outbox_key is not None:
            updated = self.conversations.record_callback(
                participant_id, outbox_key, sid, status, callback.error_code, now
            )
        else:
            try:
                phone = sender_phone_number(callback.to, self.default_phone_region, "To")
            except InvalidField:
                return StatusResult(None, updated=False)
            participant_id = self.participants.participant_id_for_phone(phone)
            if participant_id is None:
                return StatusResult(None, updated=False)
            updated = self.conversations.update_delivery_status(participant_id, sid, status, callback.error_code, now)
        opted_out = False
        if callback.error_code == DeliveryRejected.OPTED_OUT:
            # The carrier says the person opted out: honour it whatever we know of this SID.
            data = {"error_code": callback.error_code, "message_sid": sid}
            opted_out = self._set_opted_out(participant_id, True, data)
        return StatusResult(participant_id, updated=updated, opted_out=opted_out)

    # -- shared ----------------------------------------------------------------------------------

    def _participant_for(self, phone: str) -> Participant | None:
        participant_id = self.participants.participant_id_for_phone(phone)
        if participant_id is None:
            return None
        try:
            return self.participants.get_participant(participant_id)
        except NotFound:
            return None  # deleted between the two reads

    def _set_opted_out(
        self, participant_id: str, opted_out: bool, data: dict[str, Any], known: Participant | None = None
    ) -> bool:
        return set_opted_out(self.participants, participant_id, opted_out, self.clock, data, known)


AUTO_ENROLL = Actor(name="auto-enroll")  # the audit trail's name for enrollments by a first text
_ITEM_REFERENCE = re.compile(r"^[A-Za-z0-9_#:.+-]{1,200}$")


def _referenced_item(reference: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(participant id, outbox key) from a callback URL's query string, or (None, None)."""
    participant_id, outbox_key = reference.get(CALLBACK_PARTICIPANT), reference.get(CALLBACK_OUTBOX)
    if not participant_id or not outbox_key:
        return None, None
    if not (_ITEM_REFERENCE.match(participant_id) and _ITEM_REFERENCE.match(outbox_key)):
        return None, None
    return participant_id, outbox_key


def _action(participant: Participant, keyword: KeywordKind | None) -> _Action:
    if keyword is KeywordKind.OPT_OUT:
        return _Action.OPT_OUT
    if keyword is KeywordKind.OPT_IN and participant.opted_out:
        return _Action.OPT_IN
    if participant.opted_out or participant.status is ParticipantStatus.WITHDRAWN:
        return _Action.NOT_COACHED
    if keyword is KeywordKind.HELP:
        return _Action.HELP
    return _Action.CONVERSE


def _parse(model: type[M], fields: Mapping[str, str]) -> M:
    """The form as `model`, or InvalidField naming the first field to fix (400)."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        message = "is required" if error["type"] == "missing" else str(error["msg"])
        raise InvalidField(field, message) from exc
