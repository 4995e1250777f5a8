"""Sends are identified by our own outbox id, never by their body (issue 9): a status callback names its item
however early it comes, and a retried send decides "did it go out?" from that callback or from a message
Twilio created since the attempt began that no other item owns, so an identical earlier text cannot hide it.
On DynamoDB (moto) and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coach.domain.errors import DeliveryUnavailable
from coach.domain.message import Direction
from coach.domain.outbox import CALLBACK_OUTBOX, CALLBACK_PARTICIPANT, OutboxState
from coach.domain.participant import Participant
from coach.ports import SentSms
from tests.support.conversation import Harness, harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        yield built


def coached(h: Harness) -> Participant:
    participant = h.enroll()
    for text in INTAKE:
        h.text(participant, text)
    return participant


def outbound(h: Harness, participant: Participant) -> list[Any]:
    items = h.participants.list_messages(participant.id, limit=500, next_token=None).items
    return [m for m in items if m.direction is Direction.OUTBOUND]


def test_an_identical_earlier_reply_does_not_hide_a_reply_whose_send_failed(h: Harness) -> None:
    # Given a coached participant whose "hello coach" got the canned answer
    participant = coached(h)
    [first] = h.text(participant, "hello coach")

    # When Twilio answers the next send with a 500 and SQS redelivers the work
    h.sms.fail_next(DeliveryUnavailable("Twilio answered 500"))
    work = h.receive(participant, "hello coach, me again")
    with pytest.raises(DeliveryUnavailable):
        h.service.handle(work)
    h.service.handle(work)

    # Then the second text got its own reply, although its body is the first one's
    assert h.sms.bodies_to(participant.phone_number)[-2:] == [first, first]
    assert [m.status for m in outbound(h, participant)[-2:]] == ["queued", "queued"]
    assert h.conversation.open_outbox(participant.id) == []


def test_a_send_whose_answer_was_lost_is_found_and_not_sent_again(h: Harness) -> None:
    participant = coached(h)
    [first] = h.text(participant, "hello coach")
    sent_before = len(h.sms.sent)

    # Twilio took the message but its answer never arrived
    h.sms.fail_next(DeliveryUnavailable("read timeout"), after_accept=True)
    work = h.receive(participant, "hello coach, me again")
    with pytest.raises(DeliveryUnavailable):
        h.service.handle(work)
    h.service.handle(work)

    # One message for the second text, found at Twilio: not the first text's (owned by its item), not a second
    assert len(h.sms.sent) == sent_before + 1
    last = outbound(h, participant)[-1]
    assert last.twilio_sid == h.sms.sent[-1].sid
    assert h.conversation.sid_claimed(participant.id, h.sms.sent[-2].sid)  # the first reply keeps its own
    assert first == h.sms.sent[-1].body


def test_a_callback_that_comes_before_the_sid_is_stored_applies_and_is_not_undone(h: Harness) -> None:
    # Given Twilio delivering so fast that its callback arrives while our send has not returned yet
    participant = coached(h)
    send = h.sms.send

    def send_and_call_back(to: str, body: str, **options: Any) -> SentSms:
        sms = send(to, body, **options)
        params = options["callback_params"]
        assert params[CALLBACK_PARTICIPANT] == participant.id
        h.conversation.record_callback(
            participant.id, params[CALLBACK_OUTBOX], sms.sid, "delivered", None, h.clock.now()
        )
        return sms

    h.sms.send = send_and_call_back  # type: ignore[method-assign]

    # When the participant texts and the reply goes out
    h.text(participant, "did it!")

    # Then the reply's message is delivered (our own "queued" came later and did not move it back)
    last = outbound(h, participant)[-1]
    assert (last.status, last.twilio_sid) == ("delivered", h.sms.sent[-1].sid)


def test_a_crash_after_twilio_took_it_is_settled_by_the_callback_naming_the_item(h: Harness) -> None:
    # Given a send that reached Twilio, whose runner died before it stored the SID
    participant = coached(h)
    h.sms.fail_next(RuntimeError("Lambda ran out of time"), after_accept=True)
    work = h.receive(participant, "did it!")
    with pytest.raises(RuntimeError):
        h.service.handle(work)
    sms = h.sms.sent[-1]
    params = h.sms.callbacks[sms.sid]

    # When Twilio's callback for it arrives, then the work comes back
    assert h.conversation.record_callback(participant.id, params[CALLBACK_OUTBOX], sms.sid, "sent", None, h.clock.now())
    sent_before = len(h.sms.sent)
    h.service.handle(work)

    # Then the item is sent with that SID, without asking Twilio or sending again
    assert len(h.sms.sent) == sent_before
    item = h.conversation.get_outbox_item(participant.id, params[CALLBACK_OUTBOX])
    assert item is not None
    assert (item.state, item.twilio_sid) == (OutboxState.SENT, sms.sid)
    assert outbound(h, participant)[-1].status == "sent"


def test_a_callback_naming_an_unknown_item_changes_nothing(h: Harness) -> None:
    participant = coached(h)

    assert not h.conversation.record_callback(participant.id, "no-such-item", "SMx", "delivered", None, h.clock.now())
    assert not h.conversation.sid_claimed(participant.id, "SMx")
