"""POST /twilio/status through the real handler on moto: delivery statuses move forward only; 21610 opts out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.domain.message import Message
from tests.integration.test_webhook_sms import (
    EMPTY_TWIML,
    OUR_NUMBER,
    PHONE,
    STRANGER,
    call,
    enrolled,
    transcript,
    twilio_event,
    use_webhook,
)
from tests.support.aws import Resources
from tests.unit.test_inbound_service import sent_sms

TWILIO_SID = "SMfedcba9876543210fedcba9876543210"
SENT_AT = datetime(2026, 6, 1, 15, 0, tzinfo=UTC)


@pytest.fixture
def webhook(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    use_webhook(monkeypatch)
    return aws


def coached_text(aws: Resources, participant_id: str) -> Message:
    """A text the conversation function sent to the participant, Twilio SID TWILIO_SID."""
    participants = DynamoDBParticipantStore(aws.table_name)
    return sent_sms(participants, DynamoDBConversationStore(aws.table_name), participant_id, TWILIO_SID, SENT_AT)


def callback(status: str, *, sid: str = TWILIO_SID, to: str = PHONE, error: str = "") -> dict[str, str]:
    return {
        "ErrorCode": error,
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": OUR_NUMBER,
        "ApiVersion": "2010-04-01",
    }


def report(status: str, **options: str) -> dict[str, object]:
    return call(twilio_event("/twilio/status", callback(status, **options)))


def stored(aws: Resources, participant_id: str, message: Message) -> Message:
    [found] = [m for m in transcript(aws, participant_id) if m.message_id == message.message_id]
    return found


def test_callbacks_move_the_status_forward_and_a_late_one_never_moves_it_back(webhook: Resources) -> None:
    # Given a text the coach sent (queued at Twilio)
    participant_id = enrolled(webhook)
    message = coached_text(webhook, participant_id)
    # When Twilio reports sent, delivered, and then a "sent" that arrived late
    answers = [report("sent"), report("delivered"), report("sent")]
    # Then each gets 200 and the message ends delivered
    assert [a["statusCode"] for a in answers] == [200, 200, 200]
    assert answers[0]["body"] == EMPTY_TWIML
    assert stored(webhook, participant_id, message).status == "delivered"


def test_a_failure_records_its_error_code(webhook: Resources) -> None:
    participant_id = enrolled(webhook)
    message = coached_text(webhook, participant_id)

    report("undelivered", error="30003")

    found = stored(webhook, participant_id, message)
    assert (found.status, found.error_code) == ("undelivered", 30003)


def test_error_21610_marks_the_participant_opted_out_with_an_event(webhook: Resources) -> None:
    participant_id = enrolled(webhook)
    coached_text(webhook, participant_id)

    response = report("failed", error="21610")

    assert response["statusCode"] == 200
    participants = DynamoDBParticipantStore(webhook.table_name)
    assert participants.get_participant(participant_id).opted_out is True
    events = participants.list_events(participant_id, limit=50, next_token=None).items
    assert [e.data for e in events if e.kind == "opted_out"] == [{"error_code": 21610, "message_sid": TWILIO_SID}]


@pytest.mark.parametrize(("to", "sid"), [(STRANGER, TWILIO_SID), (PHONE, "SM00000000000000000000000000000000")])
def test_a_callback_for_an_unknown_number_or_sid_answers_200_and_changes_nothing(
    webhook: Resources, to: str, sid: str
) -> None:
    participant_id = enrolled(webhook)
    coached_text(webhook, participant_id)
    before = transcript(webhook, participant_id)

    response = report("delivered", sid=sid, to=to)

    assert response["statusCode"] == 200
    assert transcript(webhook, participant_id) == before


def test_a_forged_callback_gets_403_and_changes_nothing(webhook: Resources) -> None:
    participant_id = enrolled(webhook)
    message = coached_text(webhook, participant_id)

    response = call(twilio_event("/twilio/status", callback("failed", error="21610"), token="not-the-token"))

    assert response["statusCode"] == 403
    assert stored(webhook, participant_id, message).status == "queued"
    assert DynamoDBParticipantStore(webhook.table_name).get_participant(participant_id).opted_out is False


def test_a_signed_callback_without_a_status_gets_400(webhook: Resources) -> None:
    fields = callback("sent")
    del fields["MessageStatus"]
    del fields["SmsStatus"]

    response = call(twilio_event("/twilio/status", fields))

    assert response["statusCode"] == 400


def test_a_callback_naming_its_outbox_item_applies_before_the_sid_is_stored(webhook: Resources) -> None:
    # Given a reply saved and handed to Twilio, whose runner has not stored the SID yet
    from coach.domain.message import Direction
    from coach.domain.outbox import OutboxItem, OutboxKind

    participant_id = enrolled(webhook)
    participants = DynamoDBParticipantStore(webhook.table_name)
    conversations = DynamoDBConversationStore(webhook.table_name)
    key = "SMin00000000000000000000000000001#0"
    message = Message(
        participant_id=participant_id, message_id=key, direction=Direction.OUTBOUND, body="Try it", at=SENT_AT
    )
    item = OutboxItem(participant_id=participant_id, key=key, kind=OutboxKind.SMS, created_at=SENT_AT, body="Try it")
    conversations.save_turn(participants.get_flow_state(participant_id), outbox=[item], messages=[message])
    conversations.begin_attempt(conversations.get_outbox_item(participant_id, key) or item, SENT_AT)

    # When Twilio's callback comes to the URL our send gave it (its query names the item, and is signed)
    query = {"outbox": [key], "participant": [participant_id]}
    answer = call(twilio_event("/twilio/status", callback("delivered"), query=query))
    forged = twilio_event("/twilio/status", callback("failed"), query={"outbox": ["other"], "participant": ["other"]})
    forged["multiValueQueryStringParameters"] = query  # the query changed after Twilio signed the URL
    forged["queryStringParameters"] = {"outbox": key, "participant": participant_id}

    # Then the message is delivered, its SID is the item's, and a callback whose query was changed is refused
    assert answer["statusCode"] == 200
    assert (stored(webhook, participant_id, message).status, stored(webhook, participant_id, message).twilio_sid) == (
        "delivered",
        TWILIO_SID,
    )
    assert conversations.sid_claimed(participant_id, TWILIO_SID)
    assert (conversations.get_outbox_item(participant_id, key) or item).reported_sid == TWILIO_SID
    assert call(forged)["statusCode"] == 403
    assert stored(webhook, participant_id, message).status == "delivered"
