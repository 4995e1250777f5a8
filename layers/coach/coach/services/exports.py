"""Exports (issue 10): a researcher asks, the export function writes the tables to S3, the API hands out
time-limited URLs.

An export is a job, not a response: API Gateway caps a response at 10 MB and 29 s, a study's data does not fit.
`request` records the job (and the researcher's action on the audit trail) and queues it; `run` (the export
function, from the queue) reads the selected participants' items page by page, writes each table as CSV and
JSONL into a temporary folder as it reads, adds the data dictionary and a manifest, uploads them and marks
the job done. A failed run is retried by the queue; the last allowed attempt marks the job failed with why.

Time windows apply to the rows that have a time: decision points by their scheduled time, messages, research
events and audit entries by theirs. The participants table lists every selected participant.

Messages and events that retention moved out of the table (coach.domain.retention) are read from the archive
first, then the table's: each once, even when a retention run stopped between archiving an item and removing
it from the table.
"""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
import tempfile
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from pydantic import BaseModel

from coach.domain.audit import Actor, AuditEntry
from coach.domain.errors import Conflict, ExportUnavailable, InvalidField, NotFound
from coach.domain.exports import (
    IDENTIFYING_FIELDS,
    TABLE_MEANINGS,
    ExportDownload,
    ExportFile,
    ExportJob,
    ExportKind,
    ExportRequest,
    ExportStatus,
    ExportView,
    ParticipantRow,
    dictionary_rows,
    table_columns,
)
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant
from coach.domain.retention import ArchiveKind
from coach.domain.tables import Column, flat_values, to_cell
from coach.ports import AuditLog, ExportFiles, ExportJobs, ExportQueue, Page, ParticipantArchive
from coach.services.enrollment import EnrollmentService

PAGE = 100
KEY_PREFIX = "exports"
MANIFEST = "manifest.json"
DICTIONARY_COLUMNS = ["table", "column", "type", "unit", "meaning", "values", "filled"]

T = TypeVar("T")


def new_export_id(now: datetime) -> str:
    """Begins with its UTC time, so ids sort newest last (and the table reads them newest first)."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def pages(read: Callable[[str | None], Page[T]]) -> Iterator[T]:
    """Every item of a paged read, one page in memory at a time."""
    token: str | None = None
    while True:
        page = read(token)
        yield from page.items
        token = page.next_token
        if not token:
            return


@dataclass
class _Table:
    """One table being written: its CSV and JSONL files, row by row."""

    kind: ExportKind
    columns: list[Column]
    csv_path: Path
    jsonl_path: Path
    csv_file: IO[str]
    jsonl_file: IO[str]
    writer: Any = None  # csv.DictWriter
    rows: int = 0
    identifiers: bool = False

    def write(self, record: BaseModel) -> None:
        dumped = record.model_dump(mode="json")  # once, for both files
        flat = flat_values(dumped, self.columns)
        self.writer.writerow({name: to_cell(value) for name, value in flat.items()})
        if self.kind is ExportKind.PARTICIPANTS and not self.identifiers:
            dumped = {k: v for k, v in dumped.items() if k not in IDENTIFYING_FIELDS}
        self.jsonl_file.write(json.dumps(dumped, ensure_ascii=False, sort_keys=True) + "\n")
        self.rows += 1


@dataclass
class ExportService:
    jobs: ExportJobs
    files: ExportFiles
    queue: ExportQueue
    enrollment: EnrollmentService
    url_seconds: int = 3600
    max_attempts: int = 3
    new_id: Callable[[datetime], str] = new_export_id
    on_event: Callable[[str, dict[str, object]], None] = field(default=lambda kind, data: None)
    archive: ParticipantArchive | None = None  # what retention moved out of the table

    @property
    def clock(self) -> Any:
        return self.enrollment.clock

    # -- the API ---------------------------------------------------------------------------------------------

    def request(self, request: ExportRequest, actor: Actor) -> ExportJob:
        """Record the job and the researcher's action, then hand it to the export function. A participant id
        that is not enrolled is a 422 naming it; a queue that cannot take the job leaves it failed (503)."""
        missing = [pid for pid in request.participant_ids or [] if not self._exists(pid)]
        if missing:
            raise InvalidField("participant_ids", f"not enrolled: {', '.join(missing[:10])}")
        now = self.clock.now()
        job = ExportJob(
            id=self.new_id(now),
            status=ExportStatus.QUEUED,
            request=request,
            requested_by=actor.name,
            requested_at=now,
        )
        self.jobs.create(job)
        self.enrollment.record(actor, "export", None, export_id=job.id, **request.model_dump(mode="json"))
        try:
            self.queue.send(job.id)
        except Exception as exc:
            self.jobs.save(job.model_copy(update={"status": ExportStatus.FAILED, "error": _reason(exc)}))
            self.on_event("export_not_queued", {"export_id": job.id, "error_type": type(exc).__name__})
            raise ExportUnavailable(f"the export {job.id} could not be queued; ask again") from exc
        return job

    def get(self, export_id: str) -> ExportView:
        job = self.jobs.get(export_id)
        view = ExportView(**job.model_dump())
        if job.status is not ExportStatus.DONE:
            return view
        expires = self.clock.now() + timedelta(seconds=self.url_seconds)
        view.downloads = [
            ExportDownload(
                **f.model_dump(), url=self.files.url(_key(job.id, f.name), self.url_seconds), expires_at=expires
            )
            for f in job.files
        ]
        return view

    def recent(self, *, limit: int, next_token: str | None) -> Page[ExportJob]:
        """Newest first."""
        return self.jobs.list(limit=limit, next_token=next_token)

    def _exists(self, participant_id: str) -> bool:
        try:
            self.enrollment.get(participant_id)
        except NotFound:
            return False
        return True

    # -- the export function ---------------------------------------------------------------------------------

    def run(self, export_id: str) -> ExportJob:
        """Write the export's files. Raises when this attempt failed and another is allowed (the queue brings
        the message back); the last allowed attempt records the job failed instead. A finished job (a
        redelivered message) is left as it is."""
        job = self.jobs.get(export_id)
        if job.status in (ExportStatus.DONE, ExportStatus.FAILED):
            self.on_event("export_already_finished", {"export_id": job.id, "status": job.status.value})
            return job
        if job.attempts >= self.max_attempts:
            # The last attempt never recorded its end: the function timed out or crashed while writing.
            error = f"gave up after {job.attempts} attempts; the last did not finish (timed out or crashed)"
            self.on_event("export_failed", {"export_id": job.id, "attempt": job.attempts, "error_type": "Stopped"})
            return self._save(job.model_copy(update={"status": ExportStatus.FAILED, "error": error}))
        job = self.jobs.save(
            job.model_copy(
                update={
                    "status": ExportStatus.RUNNING,
                    "started_at": self.clock.now(),
                    "attempts": job.attempts + 1,
                    "error": None,
                }
            )
        )
        try:
            participants, files = self._write(job)
        except Exception as exc:
            final = job.attempts >= self.max_attempts
            failed = job.model_copy(
                update={"status": ExportStatus.FAILED if final else ExportStatus.QUEUED, "error": _reason(exc)}
            )
            saved = self._save(failed)
            self.on_event(
                "export_failed" if final else "export_attempt_failed",
                {"export_id": job.id, "attempt": job.attempts, "error_type": type(exc).__name__},
            )
            if final:
                return saved
            raise
        done = job.model_copy(
            update={
                "status": ExportStatus.DONE,
                "finished_at": self.clock.now(),
                "participants": participants,
                "files": files,
            }
        )
        saved = self._save(done)
        self.on_event("export_done", {"export_id": job.id, "participants": participants, "files": len(files)})
        return saved

    def _save(self, job: ExportJob) -> ExportJob:
        try:
            return self.jobs.save(job)
        except Conflict:
            # Another run of the same message finished first; its outcome stands.
            return self.jobs.get(job.id)

    def _write(self, job: ExportJob) -> tuple[int, list[ExportFile]]:
        request = job.request
        with tempfile.TemporaryDirectory(prefix=f"export-{job.id}-") as folder:
            root = Path(folder)
            with ExitStack() as stack:
                tables = {kind: self._open(stack, root, kind, request) for kind in request.kinds}
                selected = self._participants(request)
                ids: set[str] = set()
                for participant in selected:
                    ids.add(participant.id)
                    self._participant_rows(participant, request, tables)
                if ExportKind.AUDIT in tables:
                    self._audit_rows(request, ids, tables[ExportKind.AUDIT])
            files = [
                self._file(path, table=kind.value, rows=t.rows)
                for kind, t in tables.items()
                for path in (t.csv_path, t.jsonl_path)
            ]
            files += self._dictionary(root, request)
            files.append(self._manifest(root, job, len(ids), files))
            for f in files:
                self.files.put(_key(job.id, f.name), root / f.name, _content_type(f.format))
        return len(ids), files

    def _open(self, stack: ExitStack, root: Path, kind: ExportKind, request: ExportRequest) -> _Table:
        columns = table_columns(kind, include_identifiers=request.include_identifiers)
        csv_path, jsonl_path = root / f"{kind.value}.csv", root / f"{kind.value}.jsonl"
        csv_file = stack.enter_context(csv_path.open("w", newline="", encoding="utf-8"))
        jsonl_file = stack.enter_context(jsonl_path.open("w", encoding="utf-8"))
        table = _Table(
            kind, columns, csv_path, jsonl_path, csv_file, jsonl_file, identifiers=request.include_identifiers
        )
        table.writer = csv.DictWriter(csv_file, fieldnames=[c.name for c in columns])
        table.writer.writeheader()
        return table

    def _participants(self, request: ExportRequest) -> Iterator[Participant]:
        store = self.enrollment.store
        if request.participant_ids is not None:
            candidates: Iterator[Participant] = (
                p for p in (self._maybe(pid) for pid in dict.fromkeys(request.participant_ids)) if p is not None
            )
        else:
            candidates = pages(lambda t: store.list_participants(status=request.status, limit=PAGE, next_token=t))
        for participant in candidates:
            if request.status is not None and participant.status != request.status:
                continue
            if request.arm is not None and participant.study_arm != request.arm:
                continue
            yield participant

    def _maybe(self, participant_id: str) -> Participant | None:
        try:
            return self.enrollment.get(participant_id)
        except NotFound:  # deleted since the export was asked for
            return None

    def _participant_rows(
        self, participant: Participant, request: ExportRequest, tables: dict[ExportKind, _Table]
    ) -> None:
        store, pid = self.enrollment.store, participant.id
        if ExportKind.PARTICIPANTS in tables:
            detail = self.enrollment.detail(pid)
            tables[ExportKind.PARTICIPANTS].write(ParticipantRow.model_validate(detail.model_dump()))
        if ExportKind.DECISIONS in tables:
            for decision in pages(lambda t: store.list_decisions(pid, limit=PAGE, next_token=t)):
                if request.in_window(decision.scheduled_at):
                    tables[ExportKind.DECISIONS].write(decision)
        if ExportKind.MESSAGES in tables:
            messages = self._archived_then_stored(
                (Message.model_validate(r) for r in self._archived(pid, ArchiveKind.MESSAGES)),
                pages(lambda t: store.list_messages(pid, limit=PAGE, next_token=t)),
                lambda m: m.message_id,
            )
            for message in messages:
                if request.in_window(message.at):
                    tables[ExportKind.MESSAGES].write(message)
        if ExportKind.EVENTS in tables:
            events = self._archived_then_stored(
                (ResearchEvent.model_validate(r) for r in self._archived(pid, ArchiveKind.EVENTS)),
                pages(lambda t: store.list_events(pid, limit=PAGE, next_token=t)),
                _event_identity,
            )
            for event in events:
                if request.in_window(event.at):
                    tables[ExportKind.EVENTS].write(event)

    def _archived(self, participant_id: str, kind: ArchiveKind) -> Iterator[dict[str, Any]]:
        return iter(()) if self.archive is None else self.archive.records(participant_id, kind)

    @staticmethod
    def _archived_then_stored(
        archived: Iterable[T], stored: Iterable[T], identity: Callable[[T], Hashable]
    ) -> Iterator[T]:
        """The archived rows (the older ones), then the table's but those archived already: a run of the retention
        job that stopped after archiving left them in both places. Only their identities are kept in memory."""
        copies: Counter[Hashable] = Counter()
        for row in archived:
            copies[identity(row)] += 1
            yield row
        for row in stored:
            if copies[identity(row)] > 0:
                copies[identity(row)] -= 1
                continue
            yield row

    def _audit_rows(self, request: ExportRequest, ids: set[str], table: _Table) -> None:
        """The selected participants' entries; with no participant filter, the whole trail (study-wide actions
        too). Personal values are erased unless identifiers were asked for."""
        if self.enrollment.audit is None:
            return
        audit = self.enrollment.audit
        entries: Iterator[AuditEntry]
        if request.selects_participants:
            entries = (e for pid in sorted(ids) for e in _audit_of(audit, pid))
        else:
            entries = _audit_of(audit, None)
        for entry in entries:
            if request.in_window(entry.at):
                table.write(entry if request.include_identifiers else entry.without_personal_data())

    def _dictionary(self, root: Path, request: ExportRequest) -> list[ExportFile]:
        rows = dictionary_rows(list(request.kinds), include_identifiers=request.include_identifiers)
        with (root / "dictionary.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=DICTIONARY_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        tables = {
            kind.value: {
                "meaning": TABLE_MEANINGS[kind],
                "files": [f"{kind.value}.csv", f"{kind.value}.jsonl"],
                "columns": [r for r in rows if r["table"] == kind.value],
            }
            for kind in request.kinds
        }
        (root / "dictionary.json").write_text(json.dumps({"tables": tables}, indent=2) + "\n", encoding="utf-8")
        return [self._file(root / "dictionary.csv", rows=len(rows)), self._file(root / "dictionary.json")]

    def _manifest(self, root: Path, job: ExportJob, participants: int, files: list[ExportFile]) -> ExportFile:
        manifest = {
            "export_id": job.id,
            "requested_by": job.requested_by,
            "requested_at": job.requested_at.isoformat(),
            "generated_at": self.clock.now().isoformat(),
            "filters": job.request.model_dump(mode="json"),
            "participants": participants,
            "cells": "empty = missing; booleans true/false; times ISO 8601 UTC; lists joined with ';'; mappings JSON",
            "files": [f.model_dump(mode="json") for f in files],
        }
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return self._file(root / MANIFEST)

    @staticmethod
    def _file(path: Path, *, table: str | None = None, rows: int | None = None) -> ExportFile:
        digest = hashlib.sha256()
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 16), b""):
                digest.update(chunk)
        return ExportFile(
            name=path.name,
            table=table,
            format=path.suffix.lstrip("."),
            rows=rows,
            bytes=path.stat().st_size,
            sha256=digest.hexdigest(),
        )


def _event_identity(event: ResearchEvent) -> Hashable:
    """What tells an event from another (the store's list does not give its key): the same event archived and
    still in the table is equal in all of it."""
    return (event.kind, event.at, json.dumps(event.data, sort_keys=True, default=str))


def _audit_of(audit: AuditLog, participant_id: str | None) -> Iterator[AuditEntry]:
    return pages(lambda t: audit.entries(participant_id=participant_id, limit=PAGE, next_token=t))


def _key(export_id: str, name: str) -> str:
    return f"{KEY_PREFIX}/{export_id}/{name}"


def _content_type(file_format: str) -> str:
    return {
        "csv": "text/csv; charset=utf-8",
        "jsonl": "application/x-ndjson",
        "json": "application/json",
    }.get(file_format, "application/octet-stream")


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
