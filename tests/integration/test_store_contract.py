"""The store contract, run against DynamoDB (moto, table from template.yaml) and the in-memory fake.

Given/When/Then. The fake passes the same tests, so unit tests that use it can trust it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from coach.adapters.dynamodb_audit import DynamoDBAuditLog
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.domain.audit import SYSTEM, AuditEntry
from coach.domain.errors import Conflict, InvalidPageToken, NotFound, PhoneNumberTaken
from coach.domain.flow import FlowState, SubState
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.ports import AuditLog, ParticipantStore
from tests.support.aws import template_resources
from tests.support.budget import Countdown
from tests.support.memory import InMemoryAuditLog, InMemoryParticipantStore

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


def ids(participants: Any) -> list[str]:
    return [p.id for p in participants]


def every_page(store: ParticipantStore, status: ParticipantStatus | None, limit: int) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = store.list_participants(status=status, limit=limit, next_token=token)
        pages.append(ids(page.items))
        if (token := page.next_token) is None:
            return pages


def test_each_status_lists_alone_and_the_whole_list_merges_them_oldest_first(store: ParticipantStore) -> None:
    statuses = list(ParticipantStatus)
    for n in range(9):
        enroll(store, participant(n, status=statuses[n % len(statuses)]))

    # The whole list pages across the statuses in one order: oldest first, each participant once
    assert every_page(store, None, 2) == [
        ["p000", "p001"],
        ["p002", "p003"],
        ["p004", "p005"],
        ["p006", "p007"],
        ["p008"],
    ]
    # and a status's list holds that status only, oldest first
    for n, status in enumerate(statuses):
        listed = [pid for page in every_page(store, status, 1) for pid in page]
        assert listed == [f"p{k:03d}" for k in range(n, 9, len(statuses))]


def test_a_status_change_between_two_pages_neither_skips_nor_repeats_anyone(store: ParticipantStore) -> None:
    for n in range(6):
        enroll(store, participant(n))
    first = store.list_participants(status=None, limit=3, next_token=None)

    # When one already listed is paused and one not yet listed is withdrawn before the next page
    store.update_participant(store.get_participant("p001").model_copy(update={"status": ParticipantStatus.PAUSED}))
    store.update_participant(store.get_participant("p004").model_copy(update={"status": ParticipantStatus.WITHDRAWN}))
    rest = store.list_participants(status=None, limit=10, next_token=first.next_token)

    # Then the pages still hold everyone once, in order, and each moved to its new status's list
    assert ids(first.items) + ids(rest.items) == [f"p{n:03d}" for n in range(6)]
    assert ids(store.list_participants(status=ParticipantStatus.PAUSED, limit=10, next_token=None).items) == ["p001"]
    assert ids(store.list_participants(status=ParticipantStatus.ACTIVE, limit=10, next_token=None).items) == [
        "p000",
        "p002",
        "p003",
        "p005",
    ]


def test_a_token_of_one_list_is_refused_by_another(store: ParticipantStore) -> None:
    for n in range(3):
        enroll(store, participant(n))
    token = store.list_participants(status=ParticipantStatus.ACTIVE, limit=1, next_token=None).next_token
    assert token is not None

    for other in (None, ParticipantStatus.PAUSED):
        with pytest.raises(InvalidPageToken):
            store.list_participants(status=other, limit=1, next_token=token)


def test_a_status_list_reads_one_partition_of_the_index_and_no_partition_holds_everyone() -> None:
    with template_resources() as resources:
        client = RecordingClient(resources.dynamodb)
        store = DynamoDBParticipantStore(resources.table_name, client)
        for n, status in enumerate(ParticipantStatus):
            enroll(store, participant(n, status=status))
        profile = resources.dynamodb.get_item(TableName=resources.table_name, Key=pk_sk("PARTICIPANT#p001", "PROFILE"))
        assert profile["Item"]["GSI1PK"] == {"S": "PARTICIPANTS#paused"}

        client.calls.clear()
        listed = store.list_participants(status=ParticipantStatus.PAUSED, limit=10, next_token=None)

        assert ids(listed.items) == ["p001"]
        assert [(name, kwargs["ExpressionAttributeValues"][":pk"]["S"]) for name, kwargs in client.calls] == [
            ("query", "PARTICIPANTS#paused")
        ]


class RecordingClient:
    """A DynamoDB client that records each call (name, arguments); `fail_at` makes that call number raise."""

    def __init__(self, client: Any, fail_at: dict[str, int] | None = None) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._fail_at = dict(fail_at or {})

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            if sum(1 for called, _ in self.calls if called == name) == self._fail_at.get(name):
                raise ConnectionError(f"{name} lost (simulated crash)")
            return attribute(**kwargs)

        return call


def pk_sk(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


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
        assert store.finish_deletion(p.id) is True

        left = resources.dynamodb.scan(TableName=resources.table_name)["Items"]
        assert left == []


def audit_of(store: ParticipantStore) -> AuditLog:
    if isinstance(store, InMemoryParticipantStore):
        return InMemoryAuditLog(store)
    assert isinstance(store, DynamoDBParticipantStore)
    return DynamoDBAuditLog(store.table_name, store.client)


def tombstone(p: Participant, entry_id: str) -> AuditEntry:
    return AuditEntry.of(SYSTEM, "delete", T0, entry_id, p.id, arm=p.study_arm)


def test_a_deletion_in_steps_makes_the_participant_gone_at_once_and_each_step_goes_on(store: ParticipantStore) -> None:
    p, keep = enroll(store, participant(1)), enroll(store, participant(2))
    for n in range(60):
        store.put_message(message(p, n))
    store.save_flow_state(store.get_flow_state(p.id), [ResearchEvent(participant_id=p.id, kind="x", at=T0)])

    # When the first step has time for one batch
    first = store.delete_participant(p.id, audit=[tombstone(p, "first")], time_left=Countdown(1))

    # Then the participant is gone for every reader at once, though most of the history is still there
    assert (first.items_deleted, first.done) == (25, False)
    assert first.items_left > 0
    with pytest.raises(NotFound):
        store.get_participant(p.id)
    with pytest.raises(NotFound):
        store.get_flow_state(p.id)
    assert store.participant_id_for_phone(p.phone_number) is None
    assert ids(store.list_participants(status=None, limit=10, next_token=None).items) == [keep.id]
    # And each later step removes what its time allows, until nothing is left but the marker
    steps = [first]
    while steps[-1].items_left:
        steps.append(store.delete_participant(p.id, audit=[tombstone(p, "again")], time_left=Countdown(2)))
    assert all(step.items_deleted <= 50 for step in steps[1:])
    assert sum(step.items_deleted for step in steps) == first.items_deleted + first.items_left
    assert store.list_messages(p.id, limit=100, next_token=None).items == []
    assert store.list_events(p.id, limit=100, next_token=None).items == []
    assert store.finish_deletion(p.id) is True
    assert store.finish_deletion(p.id) is False  # a step running beside this one finished first
    with pytest.raises(NotFound):
        store.delete_participant(p.id)
    # The tombstone came once, with the step that marked; the other participant is untouched
    trail = audit_of(store).entries(participant_id=p.id, limit=10, next_token=None).items
    assert [e.id for e in trail] == ["first"]
    assert store.get_participant(keep.id) == keep


def test_a_step_that_crashes_mid_batch_is_carried_on_by_the_next() -> None:
    with template_resources() as resources:
        store = DynamoDBParticipantStore(resources.table_name, resources.dynamodb)
        p = enroll(store, participant(1))
        for n in range(40):
            store.put_message(message(p, n))
        crashing = DynamoDBParticipantStore(
            resources.table_name, RecordingClient(resources.dynamodb, {"batch_write_item": 2})
        )

        with pytest.raises(ConnectionError):
            crashing.delete_participant(p.id, audit=[tombstone(p, "t")])

        with pytest.raises(NotFound):
            store.get_participant(p.id)
        done = store.delete_participant(p.id, audit=[tombstone(p, "retry")])
        assert (done.items_deleted, done.items_left) == (80 - 25, 0)
        assert store.finish_deletion(p.id)
        left = resources.dynamodb.scan(TableName=resources.table_name)["Items"]
        assert {item["PK"]["S"] for item in left} == {"AUDIT"}
        assert [e.id for e in audit_of(store).entries(participant_id=p.id, limit=10, next_token=None).items] == ["t"]


def test_events_keep_their_data_types(store: ParticipantStore) -> None:
    p = enroll(store, participant(1))
    event = ResearchEvent(participant_id=p.id, kind="nudge_decision", at=T0, data={"p": 0.6, "n": 3, "ok": True})

    store.save_flow_state(store.get_flow_state(p.id), [event, event.model_copy()])

    events = store.list_events(p.id, limit=10, next_token=None).items
    assert [e.data for e in events] == [{"p": 0.6, "n": 3, "ok": True}] * 2
