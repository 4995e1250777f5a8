"""Retention (coach.domain.retention): a month of a small study with RetentionDays 7, in memory, then on
DynamoDB and S3 (moto) with the real adapters and the real retention function; what is old leaves the table,
the export still has every message and event, a participant deleted after archiving leaves no file behind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from coach.adapters.dynamodb_audit import DynamoDBAuditLog
from coach.adapters.dynamodb_retention import DynamoDBRetentionStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.s3_archive import S3ParticipantArchive
from coach.domain.audit import Actor
from coach.domain.errors import NotFound
from coach.domain.exports import ExportKind, ExportRequest, ExportStatus
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant
from coach.domain.retention import ArchiveKind, ExpiredItems, RetentionPass, RetentionRun
from coach.ports import AuditLog, ParticipantArchive, RetentionStore
from coach.services.deletion import ParticipantDeletion
from coach.services.exports import ExportService
from coach.services.retention import RetentionService
from tests.support.api import LambdaContext
from tests.support.aws import EXPORT_BUCKET, Resources
from tests.support.budget import Countdown
from tests.support.conversation import Harness, harness
from tests.support.memory import (
    InMemoryAuditLog,
    InMemoryExportFiles,
    InMemoryExportJobs,
    InMemoryExportQueue,
    InMemoryParticipantStore,
)
from tests.support.memory_retention import InMemoryParticipantArchive, InMemoryRetentionStore

ALICE = Actor(name="alice", key_id="key-alice", source_ip="198.51.100.7")
INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
ZONE = ZoneInfo("America/New_York")
PLENTY = 100_000  # looks at the time left: a run that never runs out


@dataclass
class Study:
    h: Harness
    archive: ParticipantArchive
    retention_store: RetentionStore
    audit: AuditLog
    exports: ExportService
    files: InMemoryExportFiles
    people: list[Participant]

    def retention(self, days: int = 7) -> RetentionService:
        store = self.h.participants
        return RetentionService(
            participants=store,
            store=self.retention_store,
            archive=self.archive,
            deletion=ParticipantDeletion(store, self.audit, self.archive),
            clock=self.h.clock,
            days=days,
        )

    def everything(self) -> tuple[dict[str, Message], list[ResearchEvent]]:
        """What the table holds now, of every participant."""
        store = self.h.participants
        messages: dict[str, Message] = {}
        events: list[ResearchEvent] = []
        for p in self.people:
            messages.update((m.message_id, m) for m in store.list_messages(p.id, limit=10_000, next_token=None).items)
            events += store.list_events(p.id, limit=10_000, next_token=None).items
        return messages, events

    def export(self) -> dict[ExportKind, list[dict[str, Any]]]:
        job = self.exports.request(ExportRequest(kinds=[ExportKind.MESSAGES, ExportKind.EVENTS]), ALICE)
        done = self.exports.run(job.id)
        assert done.status is ExportStatus.DONE, done.error
        folder = self.files.root / "exports" / job.id
        return {
            kind: [json.loads(line) for line in (folder / f"{kind.value}.jsonl").read_text().splitlines()]
            for kind in (ExportKind.MESSAGES, ExportKind.EVENTS)
        }


def event_identity(event: dict[str, Any]) -> Hashable:
    return (
        event["participant_id"],
        event["kind"],
        datetime.fromisoformat(event["at"]),
        json.dumps(event["data"], sort_keys=True),
    )


def study_of(h: Harness, root: Path, archive: ParticipantArchive, store: RetentionStore, audit: AuditLog) -> Study:
    h.enrollment.audit, h.enrollment.archive = audit, archive
    files = InMemoryExportFiles(root)
    exports = ExportService(
        jobs=InMemoryExportJobs(), files=files, queue=InMemoryExportQueue(), enrollment=h.enrollment, archive=archive
    )
    people = []
    for phone in ("+12065550111", "+12065550112"):
        participant = h.enroll(phone)
        for text in INTAKE:
            h.text(participant, text)
        people.append(participant)
    return Study(h, archive, store, audit, exports, files, people)


@pytest.fixture
def memory_study(tmp_path: Path) -> Iterator[Study]:
    with harness("memory") as h:
        assert isinstance(h.participants, InMemoryParticipantStore)
        store = h.participants
        yield study_of(
            h, tmp_path, InMemoryParticipantArchive(), InMemoryRetentionStore(store), InMemoryAuditLog(store)
        )


class StopsBeforeRemoving:
    """A retention store whose removal fails once, on a given day: the run dies between archive and table."""

    def __init__(self, store: RetentionStore) -> None:
        self.store = store
        self.fail_next = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def remove_items(self, participant_id: str, keys: Any) -> None:
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("the run died before removing what it archived (simulated)")
        self.store.remove_items(participant_id, keys)


def live_a_day(study: Study, day: int) -> None:
    """A morning nudge for everyone, a reply from one of them, as the study goes."""
    h = study.h
    start = datetime(2026, 6, 8, tzinfo=ZONE).date()
    h.clock.set(datetime.combine(start + timedelta(days=day), time(7, 30), tzinfo=ZONE))
    for participant in study.people:
        h.fire_scheduled(h.participants.get_participant(participant.id))
    h.clock.advance(minutes=20)
    h.text(study.people[day % 2], ["did it!", "I skipped it today", "done, that was easy"][day % 3])
    h.clock.advance(hours=4)  # past noon: the day's retention run


def test_a_month_with_retention_7_keeps_a_week_in_the_table_and_every_text_and_event_in_the_export(
    memory_study: Study,
) -> None:
    study = memory_study
    failing = StopsBeforeRemoving(study.retention_store)
    study.retention_store = failing
    seen_messages: dict[str, Message] = {}
    seen_events: Counter[Hashable] = Counter()
    runs: list[RetentionRun] = []

    # Given a month of the study, the retention job running daily; on days 15 and 29 a run dies before the table
    for day in range(30):
        live_a_day(study, day)
        messages, events = study.everything()  # all the table ever held: nothing leaves it but by this job
        seen_messages.update(messages)
        seen_events |= Counter(event_identity(e.model_dump(mode="json")) for e in events)  # each event once
        failing.fail_next = day in (15, 29)  # the last: the export finds items in both places
        try:
            runs.append(study.retention().run(Countdown(PLENTY)))
        except ConnectionError:
            continue

    # Then the table keeps about a week of texts and events; the older ones are in the archive
    now = study.h.clock.now()
    messages, events = study.everything()
    assert min(m.at for m in messages.values()) >= now - timedelta(days=8)
    assert min(e.at for e in events) >= now - timedelta(days=8)
    assert sum(r.items_archived for r in runs) > 0
    assert all(r.pass_finished for r in runs[7:])
    for p in study.people:
        assert study.archive.records(p.id, ArchiveKind.MESSAGES)
        decisions = study.h.participants.list_decisions(p.id, limit=100, next_token=None).items
        assert len(decisions) == 30  # decision points never expire
    # And the export has every message and event of the month, each once
    exported = study.export()
    assert sorted(m["message_id"] for m in exported[ExportKind.MESSAGES]) == sorted(seen_messages)
    assert Counter(event_identity(e) for e in exported[ExportKind.EVENTS]) == seen_events

    # When a participant is deleted after all that archiving
    gone = study.people[0]
    assert study.h.enrollment.delete(gone.id, ALICE).done

    # Then nothing of theirs is left in the archive either, and the export no longer has them
    assert list(study.archive.records(gone.id, ArchiveKind.MESSAGES)) == []
    assert list(study.archive.records(gone.id, ArchiveKind.EVENTS)) == []
    after = study.export()
    assert {m["participant_id"] for m in after[ExportKind.MESSAGES]} == {study.people[1].id}
    assert {e["participant_id"] for e in after[ExportKind.EVENTS]} == {study.people[1].id}


def test_retention_0_keeps_everything_and_still_finishes_deletions(memory_study: Study) -> None:
    study = memory_study
    for day in range(10):
        live_a_day(study, day)
    before = study.everything()
    gone = study.people[0]
    assert not study.h.enrollment.delete(gone.id, ALICE, Countdown(1)).done  # a DELETE that answered 202

    run = study.retention(days=0).run(Countdown(PLENTY))

    assert (run.skipped, run.items_archived, run.deletions_finished) == ("retention_off", 0, 1)
    with pytest.raises(NotFound):
        study.h.enrollment.delete(gone.id, ALICE)  # finished: nothing left to find
    kept = study.h.participants.list_messages(study.people[1].id, limit=10_000, next_token=None).items
    assert {m.message_id for m in kept} == {m.message_id for m in before[0].values() if m.participant_id != gone.id}


def test_a_pass_out_of_time_stops_and_the_next_run_carries_on_with_the_same_cutoff(memory_study: Study) -> None:
    study = memory_study
    for day in range(10):
        live_a_day(study, day)
    service = study.retention(days=3)
    service.page = 1  # the time is looked at before each page: here, before each participant

    # When the first run has time for one page only
    first = service.run(Looks([1000.0, 0.0]))
    paused = study.retention_store.retention_pass()
    study.h.clock.advance(hours=1)
    second = service.run(Looks([1000.0, 1000.0]))

    # Then it stopped after the first participant, and the next run did the second with the same cutoff
    assert (first.participants_checked, first.pass_finished) == (1, False)
    assert (second.participants_checked, second.pass_finished) == (1, True)
    finished = study.retention_store.retention_pass()
    assert paused.cursor is not None
    assert finished.cursor is None
    assert finished.cutoff == paused.cutoff
    assert paused.finished_at is None
    assert finished.finished_at == study.h.clock.now()
    for p in study.people:
        stored = study.h.participants.list_messages(p.id, limit=1000, next_token=None).items
        assert paused.cutoff is not None
        assert min(m.at for m in stored) >= paused.cutoff


class Looks:
    """A `time_left()` answering the given seconds, one per look."""

    def __init__(self, answers: list[float]) -> None:
        self.answers = list(answers)

    def __call__(self) -> float:
        return self.answers.pop(0)


def test_a_participant_deleted_while_being_archived_leaves_no_file_behind(memory_study: Study) -> None:
    study = memory_study
    for day in range(10):
        live_a_day(study, day)
    gone, kept = study.people

    class DeletesMeanwhile:
        """The participant's DELETE lands while the job reads their old items."""

        def __init__(self, store: RetentionStore) -> None:
            self.store = store

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        def expired_items(self, participant_id: str, before: datetime) -> ExpiredItems:
            found = self.store.expired_items(participant_id, before)
            if participant_id == gone.id:
                assert study.h.enrollment.delete(gone.id, ALICE).done
            return found

    study.retention_store = DeletesMeanwhile(study.retention_store)

    run = study.retention(days=3).run(Countdown(PLENTY))

    assert run.participants_checked == 2
    assert list(study.archive.records(gone.id, ArchiveKind.MESSAGES)) == []
    assert list(study.archive.records(kept.id, ArchiveKind.MESSAGES))


def test_waiting_texts_and_open_sends_stay_whatever_their_age(memory_study: Study) -> None:
    study = memory_study
    h, p = study.h, study.people[0]
    h.receive(p, "a text whose turn has not run yet")  # recorded by the webhook; its turn is still queued
    h.clock.advance(days=30)

    study.retention(days=7).run(Countdown(PLENTY))

    waiting = h.conversation.unanswered_inbound(p.id, 10)
    assert [m.body for m in waiting] == ["a text whose turn has not run yet"]


def test_one_pass_a_day_however_often_the_job_runs(memory_study: Study) -> None:
    study = memory_study
    for day in range(9):
        live_a_day(study, day)
    service = study.retention(days=7)

    first = service.run(Countdown(PLENTY))
    study.h.clock.advance(hours=1)
    again = service.run(Countdown(PLENTY))
    study.h.clock.advance(hours=23)
    next_day = service.run(Countdown(PLENTY))

    assert (first.pass_finished, again.skipped, next_day.pass_finished) == (True, "pass_done_today", True)
    assert again.participants_checked == 0


# -- DynamoDB and S3 ----------------------------------------------------------------------------------------------


@pytest.fixture
def moto_study(tmp_path: Path) -> Iterator[Study]:
    with harness("dynamodb") as h:
        store = h.participants
        assert isinstance(store, DynamoDBParticipantStore)
        archive = S3ParticipantArchive(EXPORT_BUCKET, boto3.client("s3"))
        retention_store = DynamoDBRetentionStore(store.table_name, store.client)
        yield study_of(h, tmp_path, archive, retention_store, DynamoDBAuditLog(store.table_name, store.client))


def test_on_dynamodb_and_s3_old_items_move_to_the_archive_and_the_export_reads_them_back(moto_study: Study) -> None:
    study = moto_study
    failing = StopsBeforeRemoving(study.retention_store)
    study.retention_store = failing
    seen_messages: dict[str, Message] = {}
    seen_events: Counter[Hashable] = Counter()
    for day in range(8):
        live_a_day(study, day)
        messages, events = study.everything()
        seen_messages.update(messages)
        seen_events |= Counter(event_identity(e.model_dump(mode="json")) for e in events)  # each event once
        failing.fail_next = day in (5, 7)
        try:
            study.retention(days=3).run(Countdown(PLENTY))
        except ConnectionError:
            continue

    store = study.h.participants
    assert isinstance(store, DynamoDBParticipantStore)
    items = store.client.scan(TableName=store.table_name)["Items"]
    cutoff = study.h.clock.now() - timedelta(days=5)
    old = [i for i in items if i["SK"]["S"].startswith(("MSG#", "EVT#")) and i["SK"]["S"][4:] < f"{cutoff:%Y-%m-%dT}"]
    assert old == []
    assert not [i for i in items if i["SK"]["S"].startswith("MSGID#") and i["sk"]["S"][4:] < f"{cutoff:%Y-%m-%dT}"]
    s3 = boto3.client("s3")
    names = [o["Key"] for o in s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix="archive/").get("Contents", [])]
    assert {n.split("/")[1] for n in names} == {p.id for p in study.people}
    exported = study.export()
    assert sorted(m["message_id"] for m in exported[ExportKind.MESSAGES]) == sorted(seen_messages)
    assert Counter(event_identity(e) for e in exported[ExportKind.EVENTS]) == seen_events

    gone = study.people[0]
    assert study.h.enrollment.delete(gone.id, ALICE).done
    left = s3.list_objects_v2(Bucket=EXPORT_BUCKET, Prefix=f"archive/{gone.id}/").get("KeyCount", 0)
    assert left == 0


def test_the_retention_function_finishes_a_deletion_and_archives_from_its_schedule(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coach.bootstrap import enrollment_service, forget_built_services
    from functions.retention.app import lambda_handler

    monkeypatch.setenv("RETENTION_DAYS", "7")
    monkeypatch.setenv("EXPORT_BUCKET", EXPORT_BUCKET)
    forget_built_services()
    store = enrollment_service().store
    old = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # long before the system clock's now
    from coach.services.enrollment import EnrollParticipant

    kept = enrollment_service().enroll(EnrollParticipant(phone_number="+12065550121"))
    gone = enrollment_service().enroll(EnrollParticipant(phone_number="+12065550122"))
    for n in range(3):
        from coach.domain.message import Direction

        store.put_message(
            Message(
                participant_id=kept.id,
                message_id=f"SMold{n:029d}",
                direction=Direction.OUTBOUND,
                body=f"old {n}",
                at=old + timedelta(minutes=n),
            )
        )
    assert not enrollment_service().delete(gone.id, time_left=Countdown(0)).done  # a 202 nobody repeated

    run = lambda_handler({"kind": "retention", "scheduled_time": "2026-12-01T10:00:00Z"}, FifteenMinutes())

    assert (run["deletions_finished"], run["pass_finished"]) == (1, True)
    assert run["items_archived"] >= 3
    with pytest.raises(NotFound):
        enrollment_service().delete(gone.id)
    assert store.list_messages(kept.id, limit=10, next_token=None).items == []
    archived = list(S3ParticipantArchive(EXPORT_BUCKET, boto3.client("s3")).records(kept.id, ArchiveKind.MESSAGES))
    assert [r["body"] for r in archived] == ["old 0", "old 1", "old 2"]
    state = DynamoDBRetentionStore(aws.table_name, boto3.client("dynamodb")).retention_pass()
    assert isinstance(state, RetentionPass)
    assert state.finished_at is not None


class FifteenMinutes(LambdaContext):
    """A fresh invocation of the retention function (its Timeout)."""

    function_name = "RetentionFunction"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 900_000
