"""The ConversationStore contract, against DynamoDB (moto, table from template.yaml) and the in-memory fake."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.flow import FlowState, SubState
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState
from coach.domain.participant import Participant
from coach.ports import ConversationStore, FinishedItem, ParticipantStore, SentSms, TurnReads
from tests.support.aws import template_resources
from tests.support.memory import InMemoryParticipantStore
from tests.support.memory_conversation import InMemoryConversationStore

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

    saved = store.save_turn(flow.model_copy(update={"sub_state": SubState.FEEDBACK}), answered=texts[:2]).flow

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

    saved = store.save_turn(flow, work_key="enrolled#p1", outbox=[item], messages=[message]).flow

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
    assert store.finish_outbox([FinishedItem(started, OutboxState.SENT, sent=sent)], T0) == []

    assert store.open_outbox(PID) == []
    done = store.get_outbox_item(PID, "t#0")
    assert done is not None
    assert (done.state, done.attempts, done.twilio_sid) == (OutboxState.SENT, 1, sent.sid)
    [outbound] = stores.participants.list_messages(PID, limit=10, next_token=None).items
    assert (outbound.status, outbound.twilio_sid) == ("queued", sent.sid)
    # someone else finished it meanwhile: left as it is
    assert store.finish_outbox([FinishedItem(started, OutboxState.FAILED, error_code=30003)], T0) == ["t#0"]
    assert store.get_outbox_item(PID, "t#0") == done
    assert store.load_turn(PID).open_outbox == frozenset()
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
    store.finish_outbox(
        [FinishedItem(started, OutboxState.SENT, sent=SentSms("SMx", "queued", "+12065550100", "hello"))], T0
    )

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

    store.finish_outbox([FinishedItem(started, OutboxState.FAILED, error_code=21211, events=[event])], T0)

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


def test_a_turn_loads_participant_flow_text_work_and_outbox_in_one_consistent_read(stores: Stores) -> None:
    store = stores.conversation
    text = inbound(1)
    store.record_inbound(text)
    item, message = reply("enrolled#p1#0")
    store.save_turn(stores.participants.get_flow_state(PID), work_key="enrolled#p1", outbox=[item], messages=[message])

    reads = TurnReads(
        inbound_id=text.message_id,
        inbound_at=text.at,
        work_keys=["enrolled#p1", "reset#p1"],
        outbox_keys=["enrolled#p1#0", "x#0"],
    )
    loaded = store.load_turn(PID, reads)

    assert loaded.participant == stores.participants.get_participant(PID)
    assert loaded.flow == stores.participants.get_flow_state(PID)
    assert loaded.inbound == text
    assert loaded.work_done == {"enrolled#p1"}
    assert list(loaded.outbox) == ["enrolled#p1#0"]
    assert loaded.outbox["enrolled#p1#0"].body == "hello"
    # Work queued before it carried the text's time finds the text by its MessageSid; a wrong time does too
    assert store.load_turn(PID, TurnReads(inbound_id=text.message_id)).inbound == text
    wrong_time = TurnReads(inbound_id=text.message_id, inbound_at=text.at + timedelta(seconds=1))
    assert store.load_turn(PID, wrong_time).inbound == text
    assert store.load_turn(PID, TurnReads(inbound_id="SMunknown", inbound_at=T0)).inbound is None
    assert store.load_turn(PID, TurnReads(inbound_id=item.key)).inbound is None  # outbound: not a text to answer
    with pytest.raises(NotFound):
        store.load_turn("nobody")


def test_a_turn_decided_on_a_participant_that_changed_meanwhile_is_not_saved(stores: Stores) -> None:
    store = stores.conversation
    loaded = store.load_turn(PID)
    stores.participants.update_participant(loaded.participant.model_copy(update={"opted_out": True}))  # STOP
    item, message = reply("t#0")

    with pytest.raises(Conflict):
        store.save_turn(loaded.flow, participant=loaded.participant, outbox=[item], messages=[message])

    assert store.open_outbox(PID) == []
    fresh = store.load_turn(PID)
    saved = store.save_turn(fresh.flow, participant=fresh.participant, outbox=[item], messages=[message])
    assert saved.flow.version == fresh.flow.version + 1
    assert [i.key for i in saved.outbox] == ["t#0"]


def test_items_saved_as_being_sent_are_closed_together_and_a_status_never_moves_back(stores: Stores) -> None:
    # Given two texts saved as being sent, and a status callback for the first that came before our finish
    store = stores.conversation
    first, first_message = reply("t#0", "one")
    second, second_message = reply("t#1", "two")
    sending = [i.begin_attempt(T0) for i in (first, second)]
    saved = store.save_turn(
        stores.participants.get_flow_state(PID), outbox=sending, messages=[first_message, second_message]
    )
    assert [(i.state, i.attempts) for i in store.open_outbox(PID)] == [(OutboxState.SENDING, 1)] * 2
    assert store.load_turn(PID).open_outbox == {"t#0", "t#1"}  # what the next turn's one read tells it
    assert [i.key for i in store.outbox_items(PID, ["t#1", "t#0", "nothing#0"])] == ["t#0", "t#1"]
    assert store.record_callback(PID, "t#0", "SMone", "delivered", None, T0)

    # When both are finished in one write
    one = SentSms("SMone", "queued", "+12065550100", "one")
    two = SentSms("SMtwo", "queued", "+12065550100", "two")
    finished = [
        FinishedItem(saved.outbox[0], OutboxState.SENT, sent=one),
        FinishedItem(saved.outbox[1], OutboxState.SENT, sent=two),
    ]
    assert store.finish_outbox(finished, T0) == []

    # Then both are sent, the first stays delivered (forward only) and each SID finds its message
    assert store.open_outbox(PID) == []
    assert store.load_turn(PID).open_outbox == frozenset()
    messages = {m.message_id: m for m in stores.participants.list_messages(PID, limit=10, next_token=None).items}
    assert (messages["t#0"].status, messages["t#0"].twilio_sid) == ("delivered", "SMone")
    assert (messages["t#1"].status, messages["t#1"].twilio_sid) == ("queued", "SMtwo")
    assert store.update_delivery_status(PID, "SMtwo", "delivered", None, T0)
    assert store.sid_claimed(PID, "SMone")


def test_a_finish_that_assumes_an_unchanged_state_writes_nothing_once_it_changed(stores: Stores) -> None:
    store = stores.conversation
    item, message = reply("t#0")
    loaded = store.load_turn(PID)
    saved = store.save_turn(
        loaded.flow, participant=loaded.participant, outbox=[item.begin_attempt(T0)], messages=[message]
    )
    stores.participants.save_flow_state(saved.flow.model_copy(update={"last_habit_prompt": "a newer turn"}))
    done = [FinishedItem(saved.outbox[0], OutboxState.SENT, sent=SentSms("SMx", "queued", "+12065550100", "hello"))]

    with pytest.raises(Conflict):
        store.finish_outbox(done, T0, unchanged=(loaded.participant, saved.flow))

    assert [i.key for i in store.open_outbox(PID)] == ["t#0"]
    assert store.load_turn(PID).open_outbox == {"t#0"}
    assert store.finish_outbox(done, T0) == []
    assert store.open_outbox(PID) == []
    assert store.load_turn(PID).open_outbox == frozenset()
