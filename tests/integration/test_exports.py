"""Exports (issue 10): a researcher asks, the export function writes every table as CSV and JSONL with the data
dictionary and a manifest, and the files load back into exactly what is stored.

On the in-memory adapters (a study of a few participants over a few days, coached and nudged as on AWS), then
the real handlers on moto: the API, the export function from its queue, S3 and presigned URLs.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse
from zoneinfo import ZoneInfo

import pytest
from pydantic import BaseModel

from coach.domain.arms import parse_study_arms
from coach.domain.audit import Actor, AuditEntry
from coach.domain.decisions import DecisionPoint
from coach.domain.errors import ExportUnavailable, InvalidField, NotFound
from coach.domain.exports import (
    TABLE_MODELS,
    ExportJob,
    ExportKind,
    ExportRequest,
    ExportStatus,
    ParticipantRow,
    table_columns,
)
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.tables import Column, condition_holds, from_cell, nested
from coach.services.enrollment import EnrollParticipant, UpdateParticipant
from coach.services.exports import ExportService
from tests.support.api import LambdaContext, api_event, response_json
from tests.support.aws import Resources, received
from tests.support.conversation import Harness, harness
from tests.support.memory import (
    InMemoryAuditLog,
    InMemoryEnrollmentSequence,
    InMemoryExportFiles,
    InMemoryExportJobs,
    InMemoryExportQueue,
)

ALICE = Actor(name="alice", key_id="key-alice", source_ip="198.51.100.7")
ARMS = json.dumps([{"name": "daily", "nudge_probability": 1.0}, {"name": "coin", "nudge_probability": 0.5}])
INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
ZONE = ZoneInfo("America/New_York")
PHONES = ["+12065550111", "+12065550112", "+12065550113", "+12065550114"]


# -- a small study ---------------------------------------------------------------------------------------------


class Study:
    def __init__(self, h: Harness, root: Path) -> None:
        self.h = h
        self.files = InMemoryExportFiles(root / "bucket")
        self.jobs = InMemoryExportJobs()
        self.queue = InMemoryExportQueue()
        self.service = ExportService(
            jobs=self.jobs, files=self.files, queue=self.queue, enrollment=h.enrollment, new_id=self._id
        )
        self._ids = iter(range(1, 1000))
        self.people: list[Participant] = []

    def _id(self, now: datetime) -> str:
        return f"{now:%Y%m%dT%H%M%SZ}-{next(self._ids):08x}"

    def export(self, **request: Any) -> tuple[ExportJob, Path]:
        """Ask, run as the export function would, and 'download' the files; the job and their folder."""
        job = self.service.request(ExportRequest(**request), ALICE)
        assert self.queue.sent[-1] == job.id
        done = self.service.run(job.id)
        assert done.status is ExportStatus.DONE, done.error
        return done, self.files.root / "exports" / job.id


def morning(h: Harness, day: int) -> None:
    start = datetime(2026, 3, 2, tzinfo=ZONE).date()  # a Monday (the harness's clock starts before it)
    h.clock.set(datetime.combine(start + timedelta(days=day), time(7, 30), tzinfo=ZONE))


@pytest.fixture
def study(tmp_path: Path) -> Iterator[Study]:
    """Four participants in two arms, coached through intake, nudged on three mornings and answering some; one
    updated by a researcher, one paused on the last day."""
    with harness("memory", study_arms=ARMS) as h:
        h.enrollment.audit = InMemoryAuditLog(h.participants)  # type: ignore[arg-type]
        h.enrollment.arms, h.enrollment.seed = parse_study_arms(ARMS), "export-study"
        h.enrollment.sequence = InMemoryEnrollmentSequence()
        s = Study(h, tmp_path)
        for phone in PHONES:
            participant = h.enrollment.enroll(EnrollParticipant(phone_number=phone, name=f"P {phone[-2:]}"), ALICE)
            h.run_queued()
            for text in INTAKE:
                h.text(participant, text)
            s.people.append(participant)
        replies = ["did it!", "I skipped it today", "sounds good"]
        for day in range(3):
            morning(h, day)
            for participant in s.people:
                h.fire_scheduled(h.participants.get_participant(participant.id))
            h.clock.advance(minutes=30)
            for n, participant in enumerate(s.people):
                if (n + day) % 2 == 0:
                    h.text(participant, replies[(n + day) % 3])
        h.enrollment.update(s.people[0].id, UpdateParticipant(name="Renamed", timezone="America/Chicago"), ALICE)
        h.enrollment.update(s.people[3].id, UpdateParticipant(status=ParticipantStatus.PAUSED), ALICE)
        yield s


# -- loading an export back -------------------------------------------------------------------------------------


def dictionary(folder: Path) -> dict[str, dict[str, Column]]:
    """The export's dictionary as columns by table, read from dictionary.csv alone."""
    tables: dict[str, dict[str, Column]] = {}
    with (folder / "dictionary.csv").open(newline="") as source:
        for row in csv.DictReader(source):
            tables.setdefault(row["table"], {})[row["column"]] = Column(
                name=row["column"],
                type=row["type"],
                meaning=row["meaning"],
                nullable=True,  # type: ignore[arg-type]
            )
    return tables


def load_csv(folder: Path, kind: ExportKind) -> list[dict[str, Any]]:
    """Each CSV row read through the dictionary's types, nested back into the model's shape."""
    columns = dictionary(folder)[kind.value]
    with (folder / f"{kind.value}.csv").open(newline="", encoding="utf-8") as source:
        reader = csv.DictReader(source)
        assert reader.fieldnames == list(columns)
        return [nested({name: from_cell(cell, columns[name]) for name, cell in row.items()}) for row in reader]


def load_jsonl(folder: Path, kind: ExportKind) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{kind.value}.jsonl").read_text(encoding="utf-8").splitlines()]


def as_models(kind: ExportKind, rows: list[dict[str, Any]]) -> list[BaseModel]:
    model = TABLE_MODELS[kind]
    return [model.model_validate(row) for row in rows]


def stored(study: Study, kind: ExportKind, people: list[Participant] | None = None) -> list[BaseModel]:
    """What the store holds for the table, in the export's order (participant by participant)."""
    store, ids = study.h.participants, [p.id for p in (people or study.people)]
    if kind is ExportKind.AUDIT:
        entries = store.audit  # type: ignore[attr-defined]
        return [e.without_personal_data() for e in sorted(entries, key=lambda e: (e.at, e.id))]
    out: list[BaseModel] = []
    for pid in ids:
        if kind is ExportKind.DECISIONS:
            out += store.list_decisions(pid, limit=100, next_token=None).items
        elif kind is ExportKind.MESSAGES:
            out += store.list_messages(pid, limit=100, next_token=None).items
        elif kind is ExportKind.EVENTS:
            out += store.list_events(pid, limit=100, next_token=None).items
        else:
            detail = study.h.enrollment.detail(pid)
            out.append(ParticipantRow.model_validate(detail.model_dump()))
    return out


def without_identifiers(kind: ExportKind, record: BaseModel) -> dict[str, Any]:
    dumped = record.model_dump(mode="json")
    if kind is ExportKind.PARTICIPANTS:
        dumped = {k: v for k, v in dumped.items() if k not in ("phone_number", "name")}
    return dumped


# -- the round trip ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(ExportKind), ids=str)
def test_every_table_loads_back_from_csv_and_from_jsonl_as_stored(study: Study, kind: ExportKind) -> None:
    job, folder = study.export()
    expected = [without_identifiers(kind, r) for r in stored(study, kind)]
    assert expected, f"the study has no {kind.value} to export"

    assert load_jsonl(folder, kind) == expected
    from_csv = load_csv(folder, kind)
    if kind is ExportKind.PARTICIPANTS:  # the model needs the phone number: compare the cells
        assert from_csv == [_json_cells(kind, row) for row in expected]
    else:
        assert [m.model_dump(mode="json") for m in as_models(kind, from_csv)] == expected
    [table_file] = [f for f in job.files if f.name == f"{kind.value}.csv"]
    assert table_file.rows == len(expected)


def _json_cells(kind: ExportKind, row: dict[str, Any]) -> dict[str, Any]:
    """What a CSV round trip gives for a JSON row: nested, with the dictionary's columns only."""
    names = [c.name for c in table_columns(kind, include_identifiers=False)]
    flat: dict[str, Any] = {}
    for name in names:
        value: Any = row
        for part in name.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        flat[name] = value
    return nested(flat)


def test_the_decision_rows_are_one_per_participant_and_morning_with_their_arm(study: Study) -> None:
    _, folder = study.export(kinds=["decisions", "participants"])
    decisions = as_models(ExportKind.DECISIONS, load_csv(folder, ExportKind.DECISIONS))
    arms = {row["id"]: row["study_arm"] for row in load_csv(folder, ExportKind.PARTICIPANTS)}

    assert sorted((d.participant_id, d.local_date) for d in decisions if isinstance(d, DecisionPoint)) == sorted(
        (p.id, f"2026-03-0{2 + day}") for p in study.people for day in range(3)
    )
    for d in decisions:
        assert isinstance(d, DecisionPoint)
        assert d.arm == arms[d.participant_id]
        assert d.probability == {"daily": 1.0, "coin": 0.5}[d.arm]
    assert set(arms.values()) == {"daily", "coin"}


def test_the_dictionary_describes_every_column_of_every_file(study: Study) -> None:
    _, folder = study.export()
    with (folder / "dictionary.csv").open(newline="") as source:
        rows = list(csv.DictReader(source))
    described = json.loads((folder / "dictionary.json").read_text())["tables"]

    for kind in ExportKind:
        with (folder / f"{kind.value}.csv").open(newline="") as table:
            header = next(csv.reader(table))
        mine = [r for r in rows if r["table"] == kind.value]
        assert [r["column"] for r in mine] == header
        assert [c["column"] for c in described[kind.value]["columns"]] == header
        for row in mine:
            assert row["type"] in ("string", "integer", "number", "boolean", "datetime", "date", "list", "json")
            assert row["meaning"], row
            assert row["filled"], row
    by_name = {(r["table"], r["column"]): r for r in rows}
    assert by_name[("decisions", "reply_minutes")]["unit"] == "minutes"
    assert by_name[("decisions", "scheduled_at")]["unit"] == "UTC, ISO 8601"
    assert by_name[("decisions", "sent_at")]["filled"] == "treated"
    assert by_name[("participants", "status")]["values"] == "active;paused;completed;withdrawn"


def test_the_manifest_names_the_filters_and_each_files_checksum(study: Study) -> None:
    job, folder = study.export(arm="coin")
    manifest = json.loads((folder / "manifest.json").read_text())

    assert manifest["export_id"] == job.id
    assert manifest["requested_by"] == "alice"
    assert manifest["filters"]["arm"] == "coin"
    assert manifest["participants"] == job.participants == 2
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == {f.name for f in job.files} - {"manifest.json"}
    for name, described in listed.items():
        data = (folder / name).read_bytes()
        assert described["sha256"] == hashlib.sha256(data).hexdigest()
        assert described["bytes"] == len(data)


# -- who and what is in it -----------------------------------------------------------------------------------


def test_phone_numbers_and_names_are_left_out_unless_asked_for(study: Study) -> None:
    _, folder = study.export()
    everything = "\n".join(p.read_text(encoding="utf-8") for p in folder.iterdir())
    for phone in PHONES:
        assert phone not in everything
    assert "Renamed" not in everything
    assert "P 12" not in everything
    assert "phone_number" not in next(csv.reader((folder / "participants.csv").open()))

    _, identified = study.export(include_identifiers=True, kinds=["participants", "audit"])
    rows = load_csv(identified, ExportKind.PARTICIPANTS)
    assert sorted(r["phone_number"] for r in rows) == sorted(PHONES)
    audit = [AuditEntry.model_validate(r) for r in load_jsonl(identified, ExportKind.AUDIT)]
    renamed = next(e for e in audit if e.action == "update" and "name" in e.changes)
    assert (renamed.changes["name"].before, renamed.changes["name"].after) == ("P 11", "Renamed")


def test_the_audit_export_keeps_an_updates_before_and_after_and_the_export_itself(study: Study) -> None:
    _, folder = study.export(kinds=["audit"])
    audit = [AuditEntry.model_validate(r) for r in load_jsonl(folder, ExportKind.AUDIT)]

    moved = next(e for e in audit if e.action == "update" and "timezone" in e.changes)
    assert (moved.changes["timezone"].before, moved.changes["timezone"].after) == (
        "America/New_York",
        "America/Chicago",
    )
    assert moved.changes["name"].after == "[erased]"  # a personal value, without identifiers
    [asked] = [e for e in audit if e.action == "export"]
    assert (asked.researcher, asked.key_id, asked.source_ip) == ("alice", "key-alice", "198.51.100.7")
    assert asked.details["kinds"] == ["audit"]


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"arm": "daily"}, lambda s: [p for p in s.people if p.study_arm == "daily"]),
        ({"status": "paused"}, lambda s: [s.people[3]]),
        ({"status": "active", "arm": "coin"}, lambda s: [p for p in s.people[:3] if p.study_arm == "coin"]),
        ({"participant_ids": "second"}, lambda s: [s.people[1]]),
    ],
    ids=["arm", "status", "status-and-arm", "one-participant"],
)
def test_filters_choose_the_participants(study: Study, request_: dict[str, Any], expected: Any) -> None:
    if request_.get("participant_ids") == "second":
        request_ = {"participant_ids": [study.people[1].id]}
    job, folder = study.export(**request_)
    chosen = expected(study)

    assert chosen, "the filter should select someone"
    assert [r["id"] for r in load_csv(folder, ExportKind.PARTICIPANTS)] == [p.id for p in chosen]
    for kind in (ExportKind.DECISIONS, ExportKind.MESSAGES, ExportKind.EVENTS):
        assert {r["participant_id"] for r in load_jsonl(folder, kind)} == {p.id for p in chosen}
    audited = {r["participant_id"] for r in load_jsonl(folder, ExportKind.AUDIT)}
    assert audited == {p.id for p in chosen}  # a participant export has only their entries
    assert job.participants == len(chosen)


def test_a_time_window_keeps_the_rows_within_it(study: Study) -> None:
    since = datetime.combine(datetime(2026, 3, 3).date(), time(0, 0), tzinfo=ZONE)
    until = since + timedelta(days=1)
    _, folder = study.export(since=since.isoformat(), until=until.isoformat())

    decisions = load_jsonl(folder, ExportKind.DECISIONS)
    assert {d["local_date"] for d in decisions} == {"2026-03-03"}
    assert len(decisions) == len(study.people)
    for kind, at in ((ExportKind.MESSAGES, "at"), (ExportKind.EVENTS, "at"), (ExportKind.AUDIT, "at")):
        times = [datetime.fromisoformat(r[at]) for r in load_jsonl(folder, kind)]
        assert all(since <= t < until for t in times), kind
    assert load_jsonl(folder, ExportKind.MESSAGES)  # the nudges and replies of that day
    assert len(load_jsonl(folder, ExportKind.PARTICIPANTS)) == len(study.people)  # not windowed


# -- asking and failing ------------------------------------------------------------------------------------------


def test_asking_for_a_participant_who_is_not_enrolled_names_them_and_records_nothing(study: Study) -> None:
    with pytest.raises(InvalidField) as refused:
        study.service.request(ExportRequest(participant_ids=[study.people[0].id, "nobody-here"]), ALICE)

    assert refused.value.field == "participant_ids"
    assert "nobody-here" in refused.value.message
    assert study.jobs.jobs == {}
    assert study.queue.sent == []


def test_a_queue_that_refuses_leaves_the_job_failed_with_why(study: Study) -> None:
    class Down:
        def send(self, export_id: str) -> None:
            raise ConnectionError("sqs is down")

    study.service.queue = Down()
    with pytest.raises(ExportUnavailable):
        study.service.request(ExportRequest(), ALICE)

    [job] = study.jobs.jobs.values()
    assert job.status is ExportStatus.FAILED
    assert job.error == "ConnectionError: sqs is down"


class FlakyFiles:
    """S3 that refuses the first `failures` uploads."""

    def __init__(self, inner: InMemoryExportFiles, failures: int) -> None:
        self.inner, self.failures = inner, failures

    def put(self, key: str, path: Path, content_type: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise TimeoutError("s3 timed out")
        self.inner.put(key, path, content_type)

    def url(self, key: str, seconds: int) -> str:
        return self.inner.url(key, seconds)


def test_a_failed_attempt_is_retried_and_the_next_one_writes_everything(study: Study) -> None:
    study.service.files = FlakyFiles(study.files, failures=1)
    job = study.service.request(ExportRequest(kinds=[ExportKind.DECISIONS]), ALICE)

    with pytest.raises(TimeoutError):
        study.service.run(job.id)
    between = study.jobs.get(job.id)
    assert (between.status, between.attempts, between.error) == (ExportStatus.QUEUED, 1, "TimeoutError: s3 timed out")

    done = study.service.run(job.id)  # the queue brings the message back
    assert (done.status, done.attempts, done.error) == (ExportStatus.DONE, 2, None)
    folder = study.files.root / "exports" / job.id
    assert {f.name for f in done.files} == {p.name for p in folder.iterdir()}


def test_an_export_failing_every_attempt_ends_failed_and_a_redelivery_changes_nothing(study: Study) -> None:
    study.service.files = FlakyFiles(study.files, failures=100)
    job = study.service.request(ExportRequest(), ALICE)
    for _ in range(study.service.max_attempts - 1):
        with pytest.raises(TimeoutError):
            study.service.run(job.id)

    failed = study.service.run(job.id)  # the last attempt records the failure instead of raising
    assert (failed.status, failed.attempts) == (ExportStatus.FAILED, study.service.max_attempts)
    assert failed.error == "TimeoutError: s3 timed out"
    assert study.service.run(job.id) == failed
    assert study.service.get(job.id).downloads == []


def test_an_attempt_that_died_mid_export_counts_and_the_last_one_is_recorded_failed(study: Study) -> None:
    job = study.service.request(ExportRequest(), ALICE)
    # Three runs that each marked the job running and then vanished (Lambda timed out)
    stale = study.jobs.get(job.id)
    study.jobs.save(stale.model_copy(update={"status": ExportStatus.RUNNING, "attempts": 3}))

    ended = study.service.run(job.id)

    assert ended.status is ExportStatus.FAILED
    assert "did not finish" in (ended.error or "")


def test_a_redelivered_message_for_a_finished_export_does_not_write_it_again(study: Study) -> None:
    job, folder = study.export(kinds=["participants"])
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    assert study.service.run(job.id) == job
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_finished_export_lists_a_download_per_file_until_its_urls_expire(study: Study) -> None:
    job, _ = study.export(kinds=["events"])
    view = study.service.get(job.id)

    assert [d.name for d in view.downloads] == [f.name for f in job.files]
    for download in view.downloads:
        assert Path(urlparse(download.url).path).read_bytes()  # file:// URLs in memory
        assert download.expires_at == study.h.clock.now() + timedelta(seconds=3600)
    with pytest.raises(NotFound):
        study.service.get("20260101T000000Z-00000000")


def test_exports_list_newest_first(study: Study) -> None:
    first, _ = study.export(kinds=["events"])
    study.h.clock.advance(minutes=1)
    second, _ = study.export(kinds=["events"])

    page = study.service.recent(limit=1, next_token=None)
    assert [j.id for j in page.items] == [second.id]
    rest = study.service.recent(limit=10, next_token=page.next_token)
    assert [j.id for j in rest.items] == [first.id]


def test_a_participant_deleted_after_the_request_is_left_out(study: Study) -> None:
    gone = study.people[2]
    job = study.service.request(ExportRequest(participant_ids=[p.id for p in study.people]), ALICE)
    study.h.enrollment.delete(gone.id, ALICE)

    done = study.service.run(job.id)

    assert done.status is ExportStatus.DONE
    assert done.participants == len(study.people) - 1
    rows = load_jsonl(study.files.root / "exports" / job.id, ExportKind.PARTICIPANTS)
    assert gone.id not in {r["id"] for r in rows}


# -- the real handlers on moto ----------------------------------------------------------------------------------


@pytest.fixture
def api(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    monkeypatch.setenv("EXPORT_BUCKET", aws.export_bucket)
    monkeypatch.setenv("EXPORT_QUEUE_URL", aws.export_queue_url)
    monkeypatch.setenv("EXPORT_URL_SECONDS", "900")
    return aws


def call(event: dict[str, Any]) -> dict[str, Any]:
    from functions.enrollment.app import lambda_handler

    response: dict[str, Any] = lambda_handler(event, LambdaContext())
    return response


def run_export_function(aws: Resources) -> dict[str, Any]:
    """What Lambda's SQS poller does: hand the export queue's messages to the export function."""
    from functions.export.app import lambda_handler

    arn = aws.sqs.get_queue_attributes(QueueUrl=aws.export_queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {**m["Attributes"], "ApproximateReceiveCount": m["Attributes"]["ApproximateReceiveCount"]},
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": arn,
            "awsRegion": "us-east-1",
        }
        for m in received(aws.sqs, aws.export_queue_url)
    ]
    assert records, "nothing was queued for the export function"
    response: dict[str, Any] = lambda_handler({"Records": records}, LambdaContext())
    return response


def test_through_the_api_an_export_is_queued_written_to_s3_and_downloadable(api: Resources) -> None:
    import boto3

    enrolled = call(api_event("POST", "/conversation/participants", body={"phone_number": "+12065550121"}))
    assert enrolled["statusCode"] == 201, enrolled["body"]
    pid = response_json(enrolled)["id"]

    asked = call(api_event("POST", "/conversation/exports", body={"kinds": ["participants", "events", "audit"]}))
    assert asked["statusCode"] == 202, asked["body"]
    job = response_json(asked)
    assert job["status"] == "queued"
    pending = response_json(call(api_event("GET", f"/conversation/exports/{job['id']}")))
    assert (pending["status"], pending["downloads"]) == ("queued", [])

    assert run_export_function(api) == {"batchItemFailures": []}

    view = response_json(call(api_event("GET", f"/conversation/exports/{job['id']}")))
    assert (view["status"], view["participants"]) == ("done", 1)
    s3 = boto3.client("s3")
    for download in view["downloads"]:
        url = urlparse(download["url"])
        assert url.path.endswith(f"/exports/{job['id']}/{download['name']}")
        assert parse_qs(url.query)["X-Amz-Expires"] == ["900"]
        body = s3.get_object(Bucket=api.export_bucket, Key=f"exports/{job['id']}/{download['name']}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == download["sha256"]
    participants = s3.get_object(Bucket=api.export_bucket, Key=f"exports/{job['id']}/participants.csv")
    text = participants["Body"].read().decode()
    assert pid in text
    assert "+12065550121" not in text
    assert participants["ContentType"].startswith("text/csv")

    listed = response_json(call(api_event("GET", "/conversation/exports")))
    assert [j["id"] for j in listed["items"]] == [job["id"]]
    audit = response_json(call(api_event("GET", "/conversation/audit")))["items"]
    assert [e["action"] for e in audit] == ["create", "export"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kinds": ["decisions", "phones"]}, "kinds"),
        ({"kinds": []}, "kinds"),
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"kinds": ["events", "events"]}, "kinds"),
        ({"participant_ids": ["x"] * 501}, "participant_ids"),
        ({"participant_ids": ["not an id!"]}, "participant_ids"),
        ({"status": "asleep"}, "status"),
        ({"everything": True}, "everything"),
    ],
    ids=[
        "unknown-table",
        "no-tables",
        "naive-time",
        "until-before-since",
        "twice",
        "too-many",
        "bad-id",
        "status",
        "extra",
    ],
)
def test_a_bad_export_request_is_422_saying_what_to_fix(api: Resources, body: dict[str, Any], field: str) -> None:
    answer = call(api_event("POST", "/conversation/exports", body=body))

    assert answer["statusCode"] == 422, answer["body"]
    details = response_json(answer)["details"]
    assert any(field in d["field"] for d in details), details
    assert not any(d["message"].startswith("Value error") for d in details), details
    assert received(api.sqs, api.export_queue_url) == []


def test_an_unknown_export_is_404_and_a_unenrolled_participant_422(api: Resources) -> None:
    missing = call(api_event("GET", "/conversation/exports/20260101T000000Z-deadbeef"))
    assert missing["statusCode"] == 404

    answer = call(api_event("POST", "/conversation/exports", body={"participant_ids": ["ghost"]}))
    assert answer["statusCode"] == 422
    assert "ghost" in response_json(answer)["details"][0]["message"]


def test_an_export_attempt_that_fails_comes_back_soon_and_is_reported_failed(
    api: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    from coach.adapters.s3_exports import S3ExportFiles

    asked = response_json(call(api_event("POST", "/conversation/exports", body={"kinds": ["events"]})))

    def refuse(self: S3ExportFiles, key: str, path: Path, content_type: str) -> None:
        raise TimeoutError("s3 timed out")

    monkeypatch.setattr(S3ExportFiles, "put", refuse)
    [failure] = run_export_function(api)["batchItemFailures"]
    assert failure["itemIdentifier"]
    view = response_json(call(api_event("GET", f"/conversation/exports/{asked['id']}")))
    assert (view["status"], view["attempts"], view["error"]) == ("queued", 1, "TimeoutError: s3 timed out")
    # The record is back after a minute, not the queue's 16: its visibility was shortened.
    attributes = api.sqs.get_queue_attributes(
        QueueUrl=api.export_queue_url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


@pytest.mark.parametrize("kind", list(ExportKind), ids=str)
def test_each_cell_is_filled_exactly_when_the_dictionary_says(study: Study, kind: ExportKind) -> None:
    _, folder = study.export(include_identifiers=True)
    with (folder / "dictionary.csv").open(newline="") as source:
        filled = {r["column"]: r["filled"] for r in csv.DictReader(source) if r["table"] == kind.value}
    with (folder / f"{kind.value}.csv").open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    types = {c.name: c.type for c in table_columns(kind, include_identifiers=True)}

    assert rows
    for row in rows:
        for column, rule in filled.items():
            if rule == "optional" or types[column] in ("list", "json"):  # an empty list is a value
                continue
            expected = rule == "always" or condition_holds(rule, row)
            assert (row[column] != "") == expected, (kind.value, column, rule, row)


def test_export_jobs_on_dynamodb_change_only_from_the_version_read(api: Resources) -> None:
    from coach.adapters.dynamodb_exports import DynamoDBExportJobs
    from coach.domain.errors import Conflict

    jobs = DynamoDBExportJobs(api.table_name)
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for n in range(3):
        jobs.create(
            ExportJob(
                id=f"20261201T09000{n}Z-0000000{n}",
                status=ExportStatus.QUEUED,
                request=ExportRequest(),
                requested_by="alice",
                requested_at=now,
            )
        )
    job = jobs.get("20261201T090001Z-00000001")
    running = jobs.save(job.model_copy(update={"status": ExportStatus.RUNNING}))
    with pytest.raises(Conflict):
        jobs.save(job.model_copy(update={"status": ExportStatus.DONE}))  # read before the other write
    assert (jobs.get(job.id).status, running.version) == (ExportStatus.RUNNING, 2)
    first = jobs.list(limit=2, next_token=None)
    rest = jobs.list(limit=2, next_token=first.next_token)
    assert [j.id[-1] for j in [*first.items, *rest.items]] == ["2", "1", "0"]
    with pytest.raises(NotFound):
        jobs.get("20261201T090009Z-00000009")
