"""The store contract, run against DynamoDB (moto, table from template.yaml) and the in-memory fake.

Given/When/Then. The fake passes the same tests, so unit tests that use it can trust it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.memory import InMemoryParticipantStore
from coach.domain.errors import Conflict, InvalidPageToken, NotFound, PhoneNumberTaken
from coach.domain.flow import FlowState, SubState
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.ports import ParticipantStore
from tests.support.aws import template_resources

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["dynamodb", "memory"])
def store(request: pytest.FixtureRequest) -> Iterator[ParticipantStore]:
    if request.param == "memory":
        yield InMemoryParticipantStore()
        return
    with template_resources() as resources:
        yield DynamoDBParticipantStore(resources.table_name, resources.dynamodb)


def participant(
    n: int, *, phone: str | None = None, status: ParticipantStatus = ParticipantStatus.ACTIVE
) -> Participant:
    at = T0 + timedelta(minutes=n)
    return Participant(
        id=f"p{n:03d}",
        phone_number=phone or f"+1206555{n:04d}",
        timezone="America/New_York",
        status=status,
        enrolled_at=at,
        created_at=at,
        updated_at=at,
    )


def enroll(store: ParticipantStore, p: Participant) -> Participant:
    store.create_participant(p, FlowState.start(p.id, p.background_text(), p.created_at))
    return p


def message(p: Participant, n: int) -> Message:
    return Message(
        participant_id=p.id,
        message_id=f"SM{n:032d}",
        direction=Direction.INBOUND,
        body=f"text {n}",
        at=T0 + timedelta(seconds=n),
    )


def test_created_participant_is_found_by_id_and_by_phone(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))

    assert store.get_participant(p.id) == p
    assert store.participant_id_for_phone(p.phone_number) == p.id
    assert store.get_flow_state(p.id).sub_state is SubState.INTAKE


def test_a_taken_phone_number_creates_nothing(store: ParticipantStore) -> None:
    first = enroll(store, participant(1))

    with pytest.raises(PhoneNumberTaken):
        enroll(store, participant(2, phone=first.phone_number))

    with pytest.raises(NotFound):
        store.get_participant("p002")
    with pytest.raises(NotFound):
        store.get_flow_state("p002")
    assert store.participant_id_for_phone(first.phone_number) == first.id


def test_missing_participant_is_not_found(store: ParticipantStore) -> None:
    with pytest.raises(NotFound):
        store.get_participant("nobody")
    with pytest.raises(NotFound):
        store.delete_participant("nobody")
    assert store.participant_id_for_phone("+12065559999") is None


def test_update_bumps_the_version_and_a_stale_write_conflicts(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))

    saved = store.update_participant(p.model_copy(update={"name": "Ada"}))

    assert saved.version == p.version + 1
    assert store.get_participant(p.id).name == "Ada"
    with pytest.raises(Conflict):
        store.update_participant(p.model_copy(update={"name": "stale"}))
    assert store.get_participant(p.id).name == "Ada"


def test_update_of_a_deleted_participant_is_not_found(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    store.delete_participant(p.id)

    with pytest.raises(NotFound):
        store.update_participant(p.model_copy(update={"name": "Ada"}))


def test_phone_change_moves_the_index_atomically(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))

    store.update_participant(p.model_copy(update={"phone_number": "+12065550777"}), previous_phone=p.phone_number)

    assert store.participant_id_for_phone("+12065550777") == p.id
    assert store.participant_id_for_phone(p.phone_number) is None


def test_phone_change_to_a_taken_number_changes_nothing(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    other = enroll(store, participant(2))

    with pytest.raises(PhoneNumberTaken):
        store.update_participant(
            p.model_copy(update={"phone_number": other.phone_number}), previous_phone=p.phone_number
        )

    assert store.get_participant(p.id) == p
    assert store.participant_id_for_phone(p.phone_number) == p.id
    assert store.participant_id_for_phone(other.phone_number) == other.id


def test_update_with_flow_state_is_one_write_conditional_on_both_versions(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    flow = store.get_flow_state(p.id)
    store.save_flow_state(flow.model_copy(update={"sub_state": SubState.FEEDBACK}))  # someone else moved it

    with pytest.raises(Conflict):
        store.update_participant(
            p.model_copy(update={"name": "Ada"}), flow=flow.model_copy(update={"participant_background": "x"})
        )

    assert store.get_participant(p.id).name is None
    assert store.get_flow_state(p.id).sub_state is SubState.FEEDBACK


def test_flow_state_optimistic_locking(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    flow = store.get_flow_state(p.id)

    saved = store.save_flow_state(flow.model_copy(update={"sub_state": SubState.FEEDBACK}))

    assert saved.version == flow.version + 1
    assert store.get_flow_state(p.id) == saved
    with pytest.raises(Conflict):
        store.save_flow_state(flow.model_copy(update={"last_habit_prompt": "stale"}))
    assert store.get_flow_state(p.id).last_habit_prompt is None


def test_list_is_oldest_first_in_full_pages_with_a_status_filter(store: ParticipantStore) -> None:
    for n in range(7):
        enroll(store, participant(n, status=ParticipantStatus.PAUSED if n % 2 else ParticipantStatus.ACTIVE))

    first = store.list_participants(status=ParticipantStatus.ACTIVE, limit=2, next_token=None)
    second = store.list_participants(status=ParticipantStatus.ACTIVE, limit=2, next_token=first.next_token)

    assert [p.id for p in first.items] == ["p000", "p002"]
    assert [p.id for p in second.items] == ["p004", "p006"]
    assert second.next_token is None
    everyone = store.list_participants(status=None, limit=100, next_token=None)
    assert [p.id for p in everyone.items] == [f"p{n:03d}" for n in range(7)]
    assert everyone.next_token is None


@pytest.mark.parametrize("token", ["garbage", "e30", "eyJQSyI6IDF9", "W10", "!!!!"])
def test_a_token_we_did_not_issue_is_refused(store: ParticipantStore, token: str) -> None:
    enroll(store, participant(1))

    with pytest.raises(InvalidPageToken):
        store.list_participants(status=None, limit=10, next_token=token)
    with pytest.raises(InvalidPageToken):
        store.list_messages("p001", limit=10, next_token=token)


def test_a_message_token_of_another_participant_is_refused(store: ParticipantStore) -> None:
    a, b = enroll(store, participant(1)), enroll(store, participant(2))
    for n in range(3):
        store.put_message(message(a, n))
    page = store.list_messages(a.id, limit=1, next_token=None)
    assert page.next_token is not None

    with pytest.raises(InvalidPageToken):
        store.list_messages(b.id, limit=1, next_token=page.next_token)


def test_a_message_is_stored_once_and_listed_in_order(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))

    assert store.put_message(message(p, 2)) is True
    assert store.put_message(message(p, 1)) is True
    assert store.put_message(message(p, 2).model_copy(update={"at": T0 + timedelta(hours=1)})) is False

    pages, token = [], None
    while True:
        page = store.list_messages(p.id, limit=1, next_token=token)
        pages.append([m.body for m in page.items])
        if (token := page.next_token) is None:
            break
    assert pages == [["text 1"], ["text 2"]]


def test_delete_removes_every_item_and_frees_the_number(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    keep = enroll(store, participant(2))
    for n in range(30):  # more than one batch of deletes
        store.put_message(message(p, n))
    store.save_flow_state(store.get_flow_state(p.id), [ResearchEvent(participant_id=p.id, kind="x", at=T0)])

    store.delete_participant(p.id)

    with pytest.raises(NotFound):
        store.get_participant(p.id)
    with pytest.raises(NotFound):
        store.get_flow_state(p.id)
    assert store.list_messages(p.id, limit=100, next_token=None).items == []
    assert store.list_events(p.id, limit=100, next_token=None).items == []
    assert store.participant_id_for_phone(p.phone_number) is None
    enroll(store, participant(3, phone=p.phone_number))
    assert store.get_participant(keep.id) == keep


def test_delete_leaves_no_orphan_items_in_the_table() -> None:
    with template_resources() as resources:
        store = DynamoDBParticipantStore(resources.table_name, resources.dynamodb)
        p = enroll(store, participant(1))
        for n in range(5):
            store.put_message(message(p, n))

        store.delete_participant(p.id)

        left = resources.dynamodb.scan(TableName=resources.table_name)["Items"]
        assert left == []


def test_events_keep_their_data_types(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    event = ResearchEvent(participant_id=p.id, kind="nudge_decision", at=T0, data={"p": 0.6, "n": 3, "ok": True})

    store.save_flow_state(store.get_flow_state(p.id), [event, event.model_copy()])

    events = store.list_events(p.id, limit=10, next_token=None).items
    assert [e.data for e in events] == [{"p": 0.6, "n": 3, "ok": True}] * 2
