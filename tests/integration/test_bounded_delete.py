"""Deleting a participant with a long history (coach.domain.deletion), on DynamoDB (moto, S3 for the archive)
and in memory: gone for every reader from the first step, then removed in bounded steps through a crash, a
retry and two deletes at once, with one tombstone on the audit trail and nothing left anywhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import boto3
import pytest

from coach.adapters.dynamodb_audit import DynamoDBAuditLog
from coach.adapters.dynamodb_items import participant_pk, sortable_time, to_attributes
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.s3_archive import S3ParticipantArchive
from coach.domain.audit import Actor
from coach.domain.deletion import Deletion
from coach.domain.errors import NotFound
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.participant import Participant
from coach.domain.retention import ArchiveKind
from coach.ports import AuditLog, ParticipantArchive
from tests.support.aws import EXPORT_BUCKET
from tests.support.budget import Countdown, CrashAfter
from tests.support.conversation import Harness, harness
from tests.support.memory import InMemoryAuditLog, InMemoryParticipantStore
from tests.support.memory_retention import InMemoryParticipantArchive

ALICE = Actor(name="alice", key_id="key-alice", source_ip="198.51.100.7")
INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
HISTORY = 3000


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as h:
        audit: AuditLog
        archive: ParticipantArchive
        if isinstance(h.participants, DynamoDBParticipantStore):
            audit = DynamoDBAuditLog(h.participants.table_name, h.participants.client)
            archive = S3ParticipantArchive(EXPORT_BUCKET, boto3.client("s3"))
        else:
            assert isinstance(h.participants, InMemoryParticipantStore)
            audit, archive = InMemoryAuditLog(h.participants), InMemoryParticipantArchive()
        h.enrollment.audit, h.enrollment.archive = audit, archive
        yield h


def seed_history(h: Harness, p: Participant, count: int) -> None:
    """`count` transcript messages and events of earlier days, written as fast as each store takes them."""
    start = h.clock.now() - timedelta(days=400)
    messages = [
        Message(
            participant_id=p.id,
            message_id=f"SMold{n:029d}",
            direction=Direction.INBOUND,
            body=f"old text {n}",
            at=start + timedelta(hours=n),
            status="received",
            turn="old",
        )
        for n in range(count // 2)
    ]
    events = [
        ResearchEvent(participant_id=p.id, kind="old", at=start + timedelta(hours=n), data={"n": n})
        for n in range(count - count // 2)
    ]
    store = h.participants
    if isinstance(store, InMemoryParticipantStore):
        store.messages.setdefault(p.id, {}).update({m.message_id: m for m in messages})
        store.events.setdefault(p.id, []).extend(events)
        return
    assert isinstance(store, DynamoDBParticipantStore)
    pk = participant_pk(p.id)
    items = [to_attributes(m, PK=pk, SK=f"MSG#{sortable_time(m.at)}#{m.message_id}") for m in messages]
    items += [to_attributes(e, PK=pk, SK=f"EVT#{sortable_time(e.at)}#old#{n:08x}") for n, e in enumerate(events)]
    for offset in range(0, len(items), 25):
        store.client.batch_write_item(
            RequestItems={store.table_name: [{"PutRequest": {"Item": i}} for i in items[offset : offset + 25]]}
        )


def test_a_long_history_goes_in_bounded_steps_through_a_crash_a_retry_and_two_deletes_at_once(h: Harness) -> None:
    # Given a participant nudged daily, with 3,000 items of history and archived texts, and another participant
    p = h.enroll("+12065550100")
    for text in INTAKE:
        h.text(p, text)
    assert h.schedules(p)
    other = h.enroll("+12065550199")
    seed_history(h, p, HISTORY)
    archive, audit = h.enrollment.archive, h.enrollment.audit
    assert archive is not None
    assert audit is not None
    archive.put(p.id, ArchiveKind.MESSAGES, "20250101T000000Z-a", [{"SK": "MSG#2025", "body": "archived"}])

    # When the first DELETE has time for 40 batches of 25
    first = h.enrollment.delete(p.id, ALICE, Countdown(40))

    # Then a thousand items went, the rest is said to be left, and the participant is gone for every reader
    assert (first.done, first.items_deleted) == (False, 1000)
    assert first.items_left > HISTORY - 1000
    with pytest.raises(NotFound):
        h.enrollment.detail(p.id)  # GET: 404
    assert h.participants.participant_id_for_phone(p.phone_number) is None  # the webhook knows the number no more
    assert [x.id for x in h.enrollment.list(status=None, limit=10, next_token=None).items] == [other.id]
    assert h.scheduler.of(p.id) == {}
    sent = len(h.sms.sent)
    h.fire(p)  # a firing already on its way
    assert len(h.sms.sent) == sent

    # When the next step dies in the middle of its batches
    with pytest.raises(ConnectionError):
        h.enrollment.delete(p.id, ALICE, CrashAfter(10))

    # Then the participant stays gone, and the retry carries on from what the crash left
    with pytest.raises(NotFound):
        h.enrollment.get(p.id)
    retry = h.enrollment.delete(p.id, ALICE, Countdown(20))
    assert not retry.done
    assert retry.items_deleted == 500
    assert retry.items_left == first.items_left - 10 * 25 - 500

    # When two deletes run at once, each with the time to finish
    outcomes: list[Deletion | NotFound] = []

    def delete() -> None:
        try:
            outcomes.append(h.enrollment.delete(p.id, ALICE))
        except NotFound as exc:  # the other one finished first
            outcomes.append(exc)

    runners = [threading.Thread(target=delete) for _ in range(2)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()

    # Then they end it together: done (or, for the later one, nothing left to find)
    assert any(isinstance(o, Deletion) and o.done for o in outcomes)
    assert all(isinstance(o, NotFound) or (o.done and o.items_left == 0) for o in outcomes)
    with pytest.raises(NotFound):
        h.enrollment.delete(p.id, ALICE)
    # And nothing of the participant is left, the audit trail holds one tombstone, the other is untouched
    assert h.participants.list_messages(p.id, limit=10, next_token=None).items == []
    assert h.participants.list_events(p.id, limit=10, next_token=None).items == []
    assert h.participants.list_decisions(p.id, limit=10, next_token=None).items == []
    assert list(archive.records(p.id, ArchiveKind.MESSAGES)) == []
    trail = audit.entries(participant_id=p.id, limit=100, next_token=None).items
    assert [e.action for e in trail].count("delete") == 1
    assert (trail[-1].action, trail[-1].researcher) == ("delete", "alice")
    assert not any(e.has_personal_data for e in trail)
    assert h.enrollment.get(other.id).id == other.id
    store = h.participants
    if isinstance(store, DynamoDBParticipantStore):
        items = store.client.scan(TableName=store.table_name)["Items"]
        theirs = [i for i in items if p.id in i["PK"]["S"] or p.id in i.get("GSI1PK", {}).get("S", "")]
        assert {i["PK"]["S"] for i in theirs} == {"AUDIT"}  # the trail's entries, which no delete removes
    else:
        assert isinstance(store, InMemoryParticipantStore)
        assert p.id not in store.deletions | store.messages.keys() | store.events.keys() | store.flows.keys()


def test_a_deletion_nobody_repeats_is_left_with_its_marker_for_the_retention_job(h: Harness) -> None:
    p = h.enroll("+12065550100")
    seed_history(h, p, 200)

    step = h.enrollment.delete(p.id, ALICE, Countdown(2))

    assert not step.done
    store = h.participants
    if isinstance(store, DynamoDBParticipantStore):
        marker = store.client.get_item(
            TableName=store.table_name, Key={"PK": {"S": participant_pk(p.id)}, "SK": {"S": "DELETION"}}
        )
        assert marker["Item"]["GSI1PK"] == {"S": "DELETIONS"}
    else:
        assert isinstance(store, InMemoryParticipantStore)
        assert p.id in store.deletions
