"""Exports (issue 10): what a researcher asks for, the job that writes it to S3, and the tables it writes.

Each table is CSV and JSONL from one pydantic model, with the data dictionary generated from the same model
(coach.domain.tables). Participants' phone numbers and names are left out unless asked for explicitly (and
then the audit trail's personal values stay too); everything else is keyed by the pseudonymous id.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from coach.domain.audit import AuditEntry
from coach.domain.decisions import DecisionPoint
from coach.domain.flow import SubState
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.profile import UserProfile
from coach.domain.tables import Column, columns_of

IDENTIFYING_FIELDS = frozenset({"phone_number", "name"})
MAX_PARTICIPANT_IDS = 500


class ExportKind(StrEnum):
    DECISIONS = "decisions"
    MESSAGES = "messages"
    EVENTS = "events"
    PARTICIPANTS = "participants"
    AUDIT = "audit"


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ParticipantIdText = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class ExportRequest(BaseModel):
    """Body of POST /conversation/exports: which tables, for whom, over which time. Every filter is optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kinds: list[ExportKind] = Field(
        default_factory=lambda: list(ExportKind), min_length=1, description="Which tables; all five when absent"
    )
    participant_ids: list[ParticipantIdText] | None = Field(
        None, max_length=MAX_PARTICIPANT_IDS, description="Only these participants (a per-participant export)"
    )
    arm: str | None = Field(None, max_length=64, description="Only participants of this study arm")
    status: ParticipantStatus | None = Field(None, description="Only participants with this status")
    since: datetime | None = Field(None, description="Only rows at or after this time (ISO 8601 with its offset)")
    until: datetime | None = Field(None, description="Only rows before this time (ISO 8601 with its offset)")
    include_identifiers: bool = Field(
        False, description="Include phone numbers and names (participants table, audit trail); left out by default"
    )

    @field_validator("since", "until")
    @classmethod
    def _with_offset(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"give the UTC offset too, e.g. {value:%Y-%m-%dT%H:%M:%S}Z")
        since = info.data.get("since")
        if info.field_name == "until" and value is not None and since is not None and value <= since:
            raise ValueError("must be after since")
        return value

    @field_validator("kinds")
    @classmethod
    def _each_once(cls, value: list[ExportKind]) -> list[ExportKind]:
        repeated = sorted({k.value for k in value if value.count(k) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return value

    @property
    def selects_participants(self) -> bool:
        return self.participant_ids is not None or self.arm is not None or self.status is not None

    def in_window(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)


class ExportFile(BaseModel):
    """One file the export wrote."""

    name: str = Field(description="The file's name, e.g. decisions.csv")
    table: str | None = Field(None, description="The table it holds (none for the dictionary and manifest)")
    format: str = Field(description="csv, jsonl or json")
    rows: int | None = Field(None, description="Data rows in it")
    bytes: int = Field(description="Its size")
    sha256: str = Field(description="Its SHA-256, hex")


class ExportJob(BaseModel):
    """An export: asked for, then run by the export function, which writes its files to S3."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="The export's id")
    status: ExportStatus
    request: ExportRequest
    requested_by: str = Field(description="The researcher who asked (their API key's name)")
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = Field(0, description="Runs so far (a failed run is retried)")
    error: str | None = Field(None, description="Why the last run failed")
    participants: int | None = Field(None, description="Participants in the export")
    files: list[ExportFile] = Field(default_factory=list)
    version: int = 1


class ExportDownload(ExportFile):
    url: str = Field(description="Where to download it until expires_at (a presigned S3 URL)")
    expires_at: datetime


class ExportView(ExportJob):
    """GET /conversation/exports/{id}: the job, and once done, a time-limited URL per file."""

    downloads: list[ExportDownload] = Field(default_factory=list)


# -- the tables ------------------------------------------------------------------------------------------------


class ParticipantRow(Participant):
    """A participant as exported: the record and where their conversation stands."""

    sub_state: SubState = Field(description="INTAKE (the habit is being set up) or FEEDBACK (nudged daily)")
    consent: bool | None = Field(
        None, description="Their answer to the consent question", json_schema_extra={"optional": True}
    )
    daily_time: str | None = Field(
        None,
        description="The daily nudge's local time (HH:MM), once intake set it",
        json_schema_extra={"filled_when": "sub_state=FEEDBACK"},
    )
    habit_profile: UserProfile = Field(description="What the coach knows of their habit")


TABLE_MODELS: dict[ExportKind, type[BaseModel]] = {
    ExportKind.DECISIONS: DecisionPoint,
    ExportKind.MESSAGES: Message,
    ExportKind.EVENTS: ResearchEvent,
    ExportKind.PARTICIPANTS: ParticipantRow,
    ExportKind.AUDIT: AuditEntry,
}

TABLE_MEANINGS: dict[ExportKind, str] = {
    ExportKind.DECISIONS: "One row per participant x decision point (long format), with its proximal outcome",
    ExportKind.MESSAGES: "Every text, to and from participants (the transcript)",
    ExportKind.EVENTS: "Research events: status changes, nudge decisions, feedback classifications, ...",
    ExportKind.PARTICIPANTS: "One row per participant, identified by pseudonymous id",
    ExportKind.AUDIT: "Every researcher action: who, when, from where, what changed",
}


def table_columns(kind: ExportKind, *, include_identifiers: bool) -> list[Column]:
    exclude = frozenset() if include_identifiers or kind is not ExportKind.PARTICIPANTS else IDENTIFYING_FIELDS
    return columns_of(TABLE_MODELS[kind], exclude=exclude)


def dictionary_rows(kinds: list[ExportKind], *, include_identifiers: bool) -> list[dict[str, Any]]:
    """The data dictionary: one row per table x column."""
    return [
        {"table": kind.value, **column.describe()}
        for kind in kinds
        for column in table_columns(kind, include_identifiers=include_identifiers)
    ]
