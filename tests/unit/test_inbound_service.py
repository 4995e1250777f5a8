"""The webhook's use cases on in-memory stores: what each text leaves stored and queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.bootstrap import build_webhook_service
from coach.domain.errors import InvalidField
from coach.domain.message import MAX_BODY_CHARS, Direction, Message
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import ConversationStore, FinishedItem, ParticipantStore, SentSms
from coach.services.enrollment import EnrollParticipant
from coach.services.inbound import InboundService, SmsOutcome
from coach.settings import WebhookSettings
from tests.support.memory import (
    InMemoryAuditLog,
    InMemoryEnrollmentSequence,
    InMemoryParticipantStore,
    InMemoryWorkQueue,
    ManualClock,
)
from tests.support.memory_conversation import InMemoryConversationStore
from tests.unit.test_enrollment_service import RacingStore
from tests.unit.test_enrollment_service import service as enrollment_service

START = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)
PHONE = "+12065550100"
STRANGER = "+12065550199"
OUR_NUMBER = "+12065550000"
HELP = "Coach help: reply STOP to opt out."
NOT_ENROLLED = "You are not enrolled."


@dataclass
class Webhook:
    service: InboundService
    participants: InMemoryParticipantStore
    conversations: InMemoryConversationStore
    queue: InMemoryWorkQueue
    clock: ManualClock

    def text(self, body: str, sid: str = "SM0001", sender: str = PHONE, **extra: str) -> Any:
        return self.service.receive_sms(form(body, sid, sender, **extra))

    def enroll(self, phone: str = PHONE, **changes: Any) -> Participant:
        participant = enrollment_service(self.participants, self.queue).enroll(EnrollParticipant(phone_number=phone))
        self.queue.sent.clear()
        if changes:
            participant = self.participants.update_participant(participant.model_copy(update=changes))
        return participant

    def transcript(self, participant_id: str) -> list[Message]:
        return list(self.participants.list_messages(participant_id, limit=100, next_token=None).items)

    def events(self, participant_id: str) -> list[str]:
        return [e.kind for e in self.participants.list_events(participant_id, limit=100, next_token=None).items]


def form(body: str, sid: str = "SM0001", sender: str = PHONE, **extra: str) -> dict[str, str]:
    return {"From": sender, "To": OUR_NUMBER, "Body": body, "MessageSid": sid, "AccountSid": "AC1", **extra}


def webhook(participants: InMemoryParticipantStore | None = None, **settings: Any) -> Webhook:
    participants = participants or InMemoryParticipantStore()
    conversations = InMemoryConversationStore(participants=participants)
    queue = InMemoryWorkQueue()
    clock = ManualClock(START)
    configured = WebhookSettings(
        table_name="coach-test",
        queue_url="https://queue.example/inbound.fifo",
        help_text=HELP,
        not_enrolled_text=NOT_ENROLLED,
        **settings,
    )
    service = build_webhook_service(
        configured,
        participants=participants,
        conversations=conversations,
        queue=queue,
        clock=clock,
        audit=InMemoryAuditLog(participants),
        sequence=InMemoryEnrollmentSequence(),
    )
    return Webhook(service, participants, conversations, queue, clock)


def sent_sms(
    participants: ParticipantStore, conversations: ConversationStore, participant_id: str, sid: str, now: datetime
) -> Message:
    """An outbound text the conversation function sent (through the store's own outbox path), Twilio SID `sid`."""
    key = f"reply-{sid}"
    message = Message(
        participant_id=participant_id, message_id=key, direction=Direction.OUTBOUND, body="Try it now", at=now
    )
    item = OutboxItem(participant_id=participant_id, key=key, kind=OutboxKind.SMS, created_at=now, body="Try it now")
    flow = participants.get_flow_state(participant_id)
    conversations.save_turn(flow, outbox=[item], messages=[message])
    sending = conversations.begin_attempt(conversations.get_outbox_item(participant_id, key) or item, now)
    sent = SentSms(sid=sid, status="queued", to=PHONE, body="Try it now")
    assert conversations.finish_outbox([FinishedItem(sending, OutboxState.SENT, sent=sent)], now) == []
    return message


# -- ordinary texts ------------------------------------------------------------------------------


def test_a_text_from_a_participant_is_stored_once_and_queued_for_a_turn() -> None:
    # Given an enrolled participant
    hook = webhook()
    participant = hook.enroll()
    # When they text (their number written as people write it)
    result = hook.text("I walked today", sender="(206) 555-0100")
    # Then the text is stored as received and waits for a turn, and one piece of work is queued
    assert result.outcome is SmsOutcome.QUEUED
    assert result.reply is None
    [stored] = hook.transcript(participant.id)
    assert (stored.direction, stored.message_id, stored.body, stored.status) == (
        Direction.INBOUND,
        "SM0001",
        "I walked today",
        "received",
    )
    assert stored.at == START
    assert stored.truncated is False
    assert stored.turn is None
    assert hook.conversations.unanswered_inbound(participant.id, 10) == [stored]
    assert hook.queue.sent == [
        ConversationWork(
            kind=WorkKind.INBOUND,
            participant_id=participant.id,
            message_id="SM0001",
            occurred_at=START,
            message_at=START,
        )
    ]


def test_a_retry_of_the_same_message_sid_an_hour_later_stores_nothing_new_and_queues_the_same_work() -> None:
    # Given a text that was stored and queued
    hook = webhook()
    participant = hook.enroll()
    hook.text("I walked today")
    before = hook.transcript(participant.id)
    # When Twilio delivers it again an hour later
    hook.clock.advance(hours=1)
    result = hook.text("I walked today")
    # Then nothing new is stored and the queued work is identical (the queue and the turn drop the repeat)
    assert result.duplicate is True
    assert hook.transcript(participant.id) == before
    assert len(hook.queue.sent) == 2
    assert hook.queue.sent[0] == hook.queue.sent[1]
    assert hook.queue.sent[1].deduplication_id() == "SM0001"


def test_a_retry_after_the_turn_answered_the_text_queues_nothing() -> None:
    # Given a text a turn has answered
    hook = webhook()
    participant = hook.enroll()
    hook.text("I walked today")
    [text] = hook.conversations.unanswered_inbound(participant.id, 10)
    hook.conversations.save_turn(hook.participants.get_flow_state(participant.id), answered=[text])
    hook.queue.sent.clear()
    # When Twilio delivers it again
    result = hook.text("I walked today")
    # Then nothing is queued
    assert result.duplicate is True
    assert hook.queue.sent == []


class FailingOnceQueue(InMemoryWorkQueue):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def send(self, work: ConversationWork) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("SQS unreachable")
        super().send(work)


def test_a_text_stored_before_a_queue_failure_is_queued_by_the_retry() -> None:
    # Given the queue fails right after the text was stored
    hook = webhook()
    participant = hook.enroll()
    hook.service.queue = queue = FailingOnceQueue()
    with pytest.raises(ConnectionError):
        hook.text("I walked today")
    assert len(hook.transcript(participant.id)) == 1
    # When Twilio retries a minute later
    hook.clock.advance(minutes=1)
    hook.text("I walked today")
    # Then the work is queued, dated when the text first arrived (which locates the stored text)
    assert queue.sent == [
        ConversationWork(
            kind=WorkKind.INBOUND,
            participant_id=participant.id,
            message_id="SM0001",
            occurred_at=START,
            message_at=START,
        )
    ]


def test_a_long_body_is_cut_and_flagged() -> None:
    hook = webhook()
    participant = hook.enroll()

    hook.text("x" * (MAX_BODY_CHARS + 500))

    [stored] = hook.transcript(participant.id)
    assert len(stored.body) == MAX_BODY_CHARS
    assert stored.truncated is True


@pytest.mark.parametrize("body", ["weekend", "please stop", "Yes", "yes!", "start", "I want to stop eating late"])
def test_words_that_are_not_a_keyword_for_this_participant_are_ordinary_text(body: str) -> None:
    # Given an active participant (not opted out: YES and START mean nothing special)
    hook = webhook()
    participant = hook.enroll()
    # When they text
    result = hook.text(body)
    # Then it goes to the coach
    assert result.outcome is SmsOutcome.QUEUED
    assert len(hook.queue.sent) == 1
    assert hook.participants.get_participant(participant.id).opted_out is False


def test_a_paused_participant_still_gets_a_turn() -> None:
    hook = webhook()
    hook.enroll(status=ParticipantStatus.PAUSED)

    assert hook.text("hello").outcome is SmsOutcome.QUEUED
    assert len(hook.queue.sent) == 1


# -- carrier keywords ----------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["STOP", "stop!", "Stop.", " unsubscribe ", "End", "QUIT", "cancel", "stopall"])
def test_an_opt_out_keyword_marks_the_participant_opted_out_with_an_event_and_queues_nothing(body: str) -> None:
    # Given an active participant
    hook = webhook()
    participant = hook.enroll()
    # When they text an opt-out keyword
    result = hook.text(body)
    # Then they are opted out, the text is on record but no turn will answer it, and nothing is sent
    assert result.outcome is SmsOutcome.OPTED_OUT
    assert result.reply is None
    assert hook.participants.get_participant(participant.id).opted_out is True
    assert hook.events(participant.id)[-1] == "opted_out"
    [event] = [e for e in hook.participants.events[participant.id] if e.kind == "opted_out"]
    assert event.data == {"keyword": body.strip(" !.").lower()}
    [stored] = hook.transcript(participant.id)
    assert stored.body == body
    assert stored.turn == "webhook:opt_out"
    assert hook.conversations.unanswered_inbound(participant.id, 10) == []
    assert hook.queue.sent == []


def test_an_opt_out_confirmation_is_sent_only_when_configured() -> None:
    hook = webhook(opt_out_confirmation="You are opted out. Reply START to come back.")
    participant = hook.enroll()

    result = hook.text("stop")

    assert result.reply == "You are opted out. Reply START to come back."
    assert [m.direction for m in hook.transcript(participant.id)] == [Direction.INBOUND, Direction.OUTBOUND]


def test_an_opt_out_racing_another_update_is_retried_and_keeps_both_changes() -> None:
    # Given a researcher's update lands between our read and our write, twice
    store = RacingStore(losses=2)
    hook = webhook(participants=store)
    participant = hook.enroll()
    # When the participant texts STOP
    hook.text("STOP")
    # Then the opt-out is written on top of the concurrent change, not instead of it
    stored = hook.participants.get_participant(participant.id)
    assert stored.opted_out is True
    assert stored.study_arm == "arm-0"
    assert hook.events(participant.id).count("opted_out") == 1


def test_an_opt_in_keyword_brings_an_opted_out_participant_back_without_a_turn() -> None:
    hook = webhook()
    participant = hook.enroll(opted_out=True)

    result = hook.text("START", sid="SM0002")

    assert result.outcome is SmsOutcome.OPTED_IN
    assert hook.participants.get_participant(participant.id).opted_out is False
    assert hook.events(participant.id)[-1] == "opted_in"
    assert hook.queue.sent == []
    assert hook.conversations.unanswered_inbound(participant.id, 10) == []


@pytest.mark.parametrize("body", ["yes", "UNSTOP", "Start!"])
def test_every_opt_in_keyword_works_for_an_opted_out_participant(body: str) -> None:
    hook = webhook()
    participant = hook.enroll(opted_out=True)

    hook.text(body)

    assert hook.participants.get_participant(participant.id).opted_out is False


def test_a_late_retry_of_start_does_not_undo_a_later_stop() -> None:
    # Given START (SM1), then STOP (SM2)
    hook = webhook()
    participant = hook.enroll(opted_out=True)
    hook.text("START", sid="SM1")
    hook.text("STOP", sid="SM2")
    # When Twilio delivers START again
    hook.text("START", sid="SM1")
    # Then the participant stays opted out, and the record holds each text once
    assert hook.participants.get_participant(participant.id).opted_out is True
    assert [m.message_id for m in hook.transcript(participant.id)] == ["SM1", "SM2"]
    assert hook.events(participant.id).count("opted_in") == 1


def test_help_gets_the_configured_text_and_no_turn() -> None:
    hook = webhook()
    participant = hook.enroll()

    result = hook.text("help?")

    assert result.outcome is SmsOutcome.HELP
    assert result.reply == HELP
    assert hook.queue.sent == []
    inbound, reply = hook.transcript(participant.id)
    assert inbound.turn == "webhook:help"
    assert (reply.direction, reply.body) == (Direction.OUTBOUND, HELP)


@pytest.mark.parametrize(
    "changes", [{"opted_out": True}, {"status": ParticipantStatus.WITHDRAWN}], ids=["opted out", "withdrawn"]
)
@pytest.mark.parametrize("body", ["I walked today", "help"])
def test_a_participant_who_may_not_be_contacted_is_recorded_but_gets_nothing(
    changes: dict[str, Any], body: str
) -> None:
    # Given an opted-out or withdrawn participant
    hook = webhook()
    participant = hook.enroll(**changes)
    # When they text
    result = hook.text(body)
    # Then the text is on record, answered by nobody: no reply, no turn
    assert result.outcome is SmsOutcome.NOT_COACHED
    assert result.reply is None
    assert hook.queue.sent == []
    [stored] = hook.transcript(participant.id)
    assert stored.body == body
    assert hook.conversations.unanswered_inbound(participant.id, 10) == []


# -- unknown senders -----------------------------------------------------------------------------


def test_an_unknown_number_gets_the_not_enrolled_text_at_most_once_a_day() -> None:
    hook = webhook()

    first = hook.text("hi", sender=STRANGER)
    hook.clock.advance(hours=23, minutes=59)
    second = hook.text("hello?", sid="SM0002", sender=STRANGER)
    hook.clock.advance(minutes=1)
    next_day = hook.text("anyone?", sid="SM0003", sender=STRANGER)

    assert (first.outcome, first.reply) == (SmsOutcome.NOT_ENROLLED, NOT_ENROLLED)
    assert second.reply is None
    assert next_day.reply == NOT_ENROLLED
    assert hook.participants.participants == {}
    assert hook.queue.sent == []
    assert first.sender == "***0199"


def test_an_unknown_number_texting_stop_gets_nothing_and_help_gets_the_help_text() -> None:
    hook = webhook()

    stop = hook.text("STOP", sender=STRANGER)
    help_ = hook.text("HELP", sid="SM0002", sender=STRANGER)

    assert stop.reply is None
    assert help_.reply == HELP
    assert hook.conversations.not_enrolled_claims == {}


def test_a_sender_that_is_not_a_phone_number_is_ignored() -> None:
    hook = webhook()

    result = hook.text("Your code is 1234", sender="12345")

    assert result.outcome is SmsOutcome.IGNORED
    assert result.reply is None
    assert hook.queue.sent == []


def test_with_auto_enroll_an_unknown_number_is_enrolled_and_its_text_queued_after_the_greeting() -> None:
    hook = webhook(auto_enroll=True)

    result = hook.text("hi coach", sender="206-555-0199")

    pid = hook.participants.participant_id_for_phone(STRANGER)
    assert pid is not None
    assert result.participant_id == pid
    assert hook.participants.get_participant(pid).timezone == "America/New_York"
    queued = [(w.kind, w.message_id) for w in hook.queue.sent]
    assert queued == [(WorkKind.ENROLLED, None), (WorkKind.INBOUND, "SM0001")]
    assert [m.body for m in hook.transcript(pid)] == ["hi coach"]
    assert "enrolled" in hook.events(pid)


def test_with_auto_enroll_a_retry_does_not_enroll_twice() -> None:
    hook = webhook(auto_enroll=True)

    hook.text("hi coach", sender=STRANGER)
    hook.text("hi coach", sender=STRANGER)

    assert len(hook.participants.participants) == 1
    assert [w.kind for w in hook.queue.sent].count(WorkKind.ENROLLED) == 1


def test_with_auto_enroll_stop_from_an_unknown_number_enrolls_nobody() -> None:
    hook = webhook(auto_enroll=True)

    hook.text("stop", sender=STRANGER)

    assert hook.participants.participants == {}


# -- the form ------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["From", "To", "MessageSid"])
def test_a_form_without_a_required_field_is_refused_naming_it(missing: str) -> None:
    hook = webhook()
    hook.enroll()
    fields = form("hi")
    del fields[missing]

    with pytest.raises(InvalidField) as refused:
        hook.service.receive_sms(fields)

    assert refused.value.field == missing
    assert hook.queue.sent == []


def test_a_message_sid_that_cannot_be_a_key_is_refused() -> None:
    hook = webhook()
    hook.enroll()

    with pytest.raises(InvalidField) as refused:
        hook.text("hi", sid="SM 1/2#3")

    assert refused.value.field == "MessageSid"


def test_a_picture_without_text_is_stored_with_an_empty_body() -> None:
    hook = webhook()
    participant = hook.enroll()
    fields = form("", NumMedia="1", MediaUrl0="https://api.twilio.com/media/1")
    del fields["Body"]

    hook.service.receive_sms(fields)

    assert [m.body for m in hook.transcript(participant.id)] == [""]


field_names = st.sampled_from(["From", "To", "Body", "MessageSid", "NumMedia", "AccountSid", "Other"])
values = st.text(max_size=30) | st.sampled_from([PHONE, STRANGER, "SM1", "STOP", "help", "-1", "12345"])


@settings(max_examples=300, deadline=None)
@given(fields=st.dictionaries(field_names, values, max_size=7))
def test_property_no_form_makes_the_service_fail_other_than_with_invalid_field(fields: dict[str, str]) -> None:
    hook = webhook()
    hook.enroll()
    refused: str | None = None
    try:
        hook.service.receive_sms(fields)
    except InvalidField as exc:
        refused = exc.field
    assert refused in {None, "From", "To", "MessageSid", "NumMedia", "Body", "AccountSid"}


# -- delivery status -----------------------------------------------------------------------------


def status(sid: str, message_status: str, to: str = PHONE, error: str = "") -> dict[str, str]:
    return {"MessageSid": sid, "MessageStatus": message_status, "To": to, "From": OUR_NUMBER, "ErrorCode": error}


def test_a_delivery_callback_moves_the_status_forward_and_never_back() -> None:
    # Given a text the coach sent
    hook = webhook()
    participant = hook.enroll()
    sent = sent_sms(hook.participants, hook.conversations, participant.id, "SM9", START)
    # When Twilio reports "delivered", then a late "sent"
    delivered = hook.service.record_delivery_status(status("SM9", "delivered"))
    late = hook.service.record_delivery_status(status("SM9", "sent"))
    # Then the message stays delivered
    assert delivered.updated is True
    assert late.updated is False
    [stored] = [m for m in hook.transcript(participant.id) if m.message_id == sent.message_id]
    assert stored.status == "delivered"


def test_a_failed_callback_records_the_error_code() -> None:
    hook = webhook()
    participant = hook.enroll()
    sent = sent_sms(hook.participants, hook.conversations, participant.id, "SM9", START)

    hook.service.record_delivery_status(status("SM9", "undelivered", error="30003"))

    [stored] = [m for m in hook.transcript(participant.id) if m.message_id == sent.message_id]
    assert (stored.status, stored.error_code) == ("undelivered", 30003)


def test_error_21610_opts_the_participant_out_with_an_event() -> None:
    hook = webhook()
    participant = hook.enroll()
    sent_sms(hook.participants, hook.conversations, participant.id, "SM9", START)

    result = hook.service.record_delivery_status(status("SM9", "failed", error="21610"))

    assert result.opted_out is True
    assert hook.participants.get_participant(participant.id).opted_out is True
    [event] = [e for e in hook.participants.events[participant.id] if e.kind == "opted_out"]
    assert event.data == {"error_code": 21610, "message_sid": "SM9"}


def test_a_callback_for_an_unknown_number_or_sid_changes_nothing() -> None:
    hook = webhook()
    participant = hook.enroll()
    before = hook.transcript(participant.id)

    stranger = hook.service.record_delivery_status(status("SM9", "delivered", to=STRANGER))
    unknown_sid = hook.service.record_delivery_status(status("SM404", "delivered"))

    assert (stranger.participant_id, stranger.updated) == (None, False)
    assert (unknown_sid.participant_id, unknown_sid.updated) == (participant.id, False)
    assert hook.transcript(participant.id) == before


@pytest.mark.parametrize("missing", ["MessageSid", "MessageStatus", "To"])
def test_a_callback_without_a_required_field_is_refused(missing: str) -> None:
    hook = webhook()
    fields = status("SM9", "sent")
    del fields[missing]

    with pytest.raises(InvalidField) as refused:
        hook.service.record_delivery_status(fields)

    assert refused.value.field == missing


def test_an_older_callback_naming_the_status_sms_status_is_understood() -> None:
    hook = webhook()
    participant = hook.enroll()
    sent_sms(hook.participants, hook.conversations, participant.id, "SM9", START)

    result = hook.service.record_delivery_status({"MessageSid": "SM9", "SmsStatus": "delivered", "To": PHONE})

    assert result.updated is True


class LaggingPhoneIndex(InMemoryParticipantStore):
    """Answers the first phone look-up as if the number were not enrolled yet (another delivery of the
    same text is enrolling it at this very moment)."""

    lagging = True

    def participant_id_for_phone(self, phone_number: str) -> str | None:
        if self.lagging:
            self.lagging = False
            return None
        return super().participant_id_for_phone(phone_number)


def test_with_auto_enroll_a_concurrent_enrollment_of_the_number_is_joined_not_failed() -> None:
    # Given the number was enrolled by a concurrent delivery between our look-up and our enrollment
    hook = webhook(participants=LaggingPhoneIndex(), auto_enroll=True)
    participant = hook.enroll(STRANGER)
    # When the text is handled
    result = hook.text("hi coach", sender=STRANGER)
    # Then it goes to that participant, and nobody is enrolled twice
    assert result.participant_id == participant.id
    assert list(hook.participants.participants) == [participant.id]
    assert [w.kind for w in hook.queue.sent] == [WorkKind.INBOUND]


def test_a_callback_to_something_that_is_not_a_phone_number_changes_nothing() -> None:
    hook = webhook()
    hook.enroll()

    result = hook.service.record_delivery_status(status("SM9", "delivered", to="not-a-number"))

    assert (result.participant_id, result.updated, result.opted_out) == (None, False, False)
