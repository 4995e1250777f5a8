"""The ConversationStore contract, against DynamoDB (moto, table from template.yaml) and the in-memory fake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.memory import InMemoryParticipantStore
from coach.adapters.memory_conversation import InMemoryConversationStore
from coach.domain.errors import AlreadyDone, Conflict
from coach.domain.flow import FlowState, SubState
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState
from coach.domain.participant import Participant
from coach.ports import ConversationStore, ParticipantStore, SentSms
from tests.support.aws import template_resources

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PID = "p1"


@dataclass
class Stores:
    participants: ParticipantStore
    conversation: ConversationStore


@pytest.fixture(params=["dynamodb", "memory"])
def stores(request: pytest.FixtureRequest) -> Iterator[Stores]:
    with ExitStack() as stack:
        if request.param == "memory":
            memory = InMemoryParticipantStore()
            built = Stores(memory, InMemoryConversationStore(memory))
        else:
            aws = stack.enter_context(template_resources())
            built = Stores(
                DynamoDBParticipantStore(aws.table_name, aws.dynamodb),
                DynamoDBConversationStore(aws.table_name, aws.dynamodb),
            )
        participant = Participant(
            id=PID, phone_number="+12065550100", timezone="UTC", enrolled_at=T0, created_at=T0, updated_at=T0
        )
        built.participants.create_participant(participant, FlowState.start(PID, "", T0))
        yield built


def inbound(n: int, at: datetime | None = None) -> Message:
    return Message(
        participant_id=PID,
        message_id=f"SM{n:032d}",
        direction=Direction.INBOUND,
        body=f"text {n}",
        at=at or T0 + timedelta(seconds=n),
        status="received",
    )


def reply(key: str, body: str = "hello") -> tuple[OutboxItem, Message]:
    item = OutboxItem(participant_id=PID, key=key, kind=OutboxKind.SMS, created_at=T0, to="+12065550100", body=body)
    message = Message(
        participant_id=PID, message_id=key, direction=Direction.OUTBOUND, body=body, at=T0, status="pending"
    )
    return item, message


def test_an_inbound_text_is_stored_once_and_waits_for_a_turn(stores: Stores) -> None:
    store = stores.conversation

    assert store.record_inbound(inbound(1)) is True
    assert store.record_inbound(inbound(1, at=T0 + timedelta(hours=1))) is False  # Twilio's retry, an hour later

    assert [m.message_id for m in store.unanswered_inbound(PID, 10)] == [inbound(1).message_id]
    assert store.inbound_message(PID, inbound(1).message_id) == inbound(1)
    assert store.inbound_message(PID, "SMunknown") is None
    transcript = stores.participants.list_messages(PID, limit=10, next_token=None).items
    assert [m.body for m in transcript] == ["text 1"]


def test_a_turn_answers_its_texts_exactly_once(stores: Stores) -> None:
    store = stores.conversation
    for n in (1, 2, 3):
        store.record_inbound(inbound(n))
    flow = stores.participants.get_flow_state(PID)
    texts = store.unanswered_inbound(PID, 10)

    saved = store.save_turn(flow.model_copy(update={"sub_state": SubState.FEEDBACK}), answered=texts[:2])

    assert saved.version == flow.version + 1
    assert [m.message_id for m in store.unanswered_inbound(PID, 10)] == [inbound(3).message_id]
    assert store.inbound_message(PID, inbound(1).message_id).turn is not None  # type: ignore[union-attr]
    with pytest.raises(Conflict):  # a racing turn that read the same texts and the same version
        store.save_turn(flow, answered=texts[:1])
    with pytest.raises(Conflict):  # a fresh version, but the text was answered meanwhile
        store.save_turn(saved, answered=texts[1:2])
    assert stores.participants.get_flow_state(PID).version == saved.version


def test_work_and_outbox_keys_make_a_redelivered_turn_already_done(stores: Stores) -> None:
    store = stores.conversation
    flow = stores.participants.get_flow_state(PID)
    item, message = reply("enrolled#p1#0")

    saved = store.save_turn(flow, work_key="enrolled#p1", outbox=[item], messages=[message])

    assert store.work_done(PID, "enrolled#p1")
    assert not store.work_done(PID, "reset#p1")
    with pytest.raises(AlreadyDone):
        store.save_turn(saved, work_key="enrolled#p1", outbox=[item], messages=[message])
    with pytest.raises(AlreadyDone):  # a nudge's key: a second firing on the same day
        store.save_turn(saved, outbox=[item])
    assert [i.key for i in store.open_outbox(PID)] == ["enrolled#p1#0"]
    assert stores.participants.get_flow_state(PID).version == saved.version


def test_an_outbox_item_goes_pending_sending_sent_and_updates_its_transcript_message(stores: Stores) -> None:
    store = stores.conversation
    item, message = reply("t#0", "Try a 1-minute walk")
    store.save_turn(stores.participants.get_flow_state(PID), outbox=[item], messages=[message])

    started = store.begin_attempt(store.open_outbox(PID)[0], T0)
    sent = SentSms(sid="SM" + "a" * 32, status="queued", to="+12065550100", body="Try a 1-minute walk")
    store.finish_outbox_item(started, OutboxState.SENT, T0, sent=sent)

    assert store.open_outbox(PID) == []
    done = store.get_outbox_item(PID, "t#0")
    assert done is not None
    assert (done.state, done.attempts, done.twilio_sid) == (OutboxState.SENT, 1, sent.sid)
    [outbound] = stores.participants.list_messages(PID, limit=10, next_token=None).items
    assert (outbound.status, outbound.twilio_sid) == ("queued", sent.sid)
    with pytest.raises(Conflict):  # someone else finished it meanwhile
        store.finish_outbox_item(started, OutboxState.SENT, T0, sent=sent)
    with pytest.raises(Conflict):
        store.begin_attempt(started, T0)


def test_a_stale_attempt_conflicts(stores: Stores) -> None:
    store = stores.conversation
    item, message = reply("t#0")
    store.save_turn(stores.participants.get_flow_state(PID), outbox=[item], messages=[message])
    read_twice = store.open_outbox(PID)[0]

    store.begin_attempt(read_twice, T0)

    with pytest.raises(Conflict):
        store.begin_attempt(read_twice, T0)
    again = store.get_outbox_item(PID, "t#0")
    assert again is not None
    assert (again.state, again.attempts) == (OutboxState.SENDING, 1)
    assert store.begin_attempt(again, T0).attempts == 2  # a later retry of a crashed attempt


def test_delivery_status_only_moves_forward(stores: Stores) -> None:
    store = stores.conversation
    item, message = reply("t#0")
    store.save_turn(stores.participants.get_flow_state(PID), outbox=[item], messages=[message])
    started = store.begin_attempt(store.open_outbox(PID)[0], T0)
    store.finish_outbox_item(started, OutboxState.SENT, T0, sent=SentSms("SMx", "queued", "+12065550100", "hello"))

    assert store.update_delivery_status(PID, "SMx", "sent", None, T0) is True
    assert store.update_delivery_status(PID, "SMx", "delivered", None, T0) is True
    assert store.update_delivery_status(PID, "SMx", "sent", None, T0) is False  # late callback
    assert store.update_delivery_status(PID, "SMunknown", "delivered", None, T0) is False

    [outbound] = stores.participants.list_messages(PID, limit=10, next_token=None).items
    assert outbound.status == "delivered"


def test_a_failed_delivery_keeps_its_error_code(stores: Stores) -> None:
    store = stores.conversation
    item, message = reply("t#0")
    store.save_turn(stores.participants.get_flow_state(PID), outbox=[item], messages=[message])
    started = store.begin_attempt(store.open_outbox(PID)[0], T0)
    event = ResearchEvent(participant_id=PID, kind="delivery_failed", at=T0, data={"code": 21211})

    store.finish_outbox_item(started, OutboxState.FAILED, T0, error_code=21211, events=[event])

    [outbound] = stores.participants.list_messages(PID, limit=10, next_token=None).items
    assert (outbound.status, outbound.error_code) == ("failed", 21211)
    assert [e.kind for e in stores.participants.list_events(PID, limit=10, next_token=None).items] == [
        "delivery_failed"
    ]


def test_the_not_enrolled_reply_is_claimed_once_per_window(stores: Stores) -> None:
    store = stores.conversation
    day = timedelta(hours=24)

    assert store.claim_not_enrolled_reply("+12065550199", T0, day) is True
    assert store.claim_not_enrolled_reply("+12065550199", T0 + timedelta(hours=23), day) is False
    assert store.claim_not_enrolled_reply("+12065550198", T0, day) is True
    assert store.claim_not_enrolled_reply("+12065550199", T0 + day, day) is True


def test_deleting_the_participant_removes_turn_and_outbox_items(stores: Stores) -> None:
    store = stores.conversation
    store.record_inbound(inbound(1))
    item, message = reply("t#0")
    store.save_turn(
        stores.participants.get_flow_state(PID), answered=[inbound(1)], work_key="w", outbox=[item], messages=[message]
    )

    stores.participants.delete_participant(PID)

    assert store.open_outbox(PID) == []
    assert store.unanswered_inbound(PID, 10) == []
    assert store.get_outbox_item(PID, "t#0") is None
    assert not store.work_done(PID, "w")


def test_a_text_stored_as_already_handled_never_waits_for_a_turn(stores: Stores) -> None:
    handled = inbound(1).model_copy(update={"turn": "webhook:opt_out"})

    assert stores.conversation.record_inbound(handled) is True

    assert stores.conversation.unanswered_inbound(PID, 10) == []
