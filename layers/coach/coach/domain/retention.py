"""Retention: transcript messages, research events and outbox items older than the study's RetentionDays leave
the table. Messages and events are archived first (JSON lines per participant), and the export reads the
archive too, so an export covers the whole study whatever was archived. Outbox items are bookkeeping of sends
(the transcript message of each send is the record): they are removed, not archived. Decision points,
participants and their conversation state never expire; neither does anything still waiting (a text not yet
answered, a send not yet finished).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class ArchiveKind(StrEnum):
    MESSAGES = "messages"
    EVENTS = "events"


@dataclass(frozen=True)
class ExpiredItems:
    """A participant's items old enough to go: the records to archive (items as stored, each with its `SK`),
    by kind, and the sort key of every item to remove (the records' own, and bookkeeping items)."""

    records: Mapping[ArchiveKind, Sequence[dict[str, Any]]] = field(default_factory=dict)
    keys: Sequence[str] = ()

    @property
    def empty(self) -> bool:
        return not self.keys


class RetentionPass(BaseModel):
    """Where the archive job stands: one pass over every participant a day, in as many runs as it takes."""

    cutoff: datetime | None = Field(None, description="The pass under way archives what is older than this")
    cursor: str | None = Field(None, description="Where the pass under way stopped (None: at its beginning)")
    started_at: datetime | None = Field(None, description="When the last pass started")
    finished_at: datetime | None = Field(None, description="When the last pass finished")


class RetentionRun(BaseModel):
    """What one run of the retention job did."""

    index_repaired: int = Field(0, description="Participants moved from an earlier version's index key")
    deletions_finished: int = Field(0, description="Participant deletions it completed")
    deletions_left: int = Field(0, description="Participant deletions still under way when it stopped")
    participants_checked: int = Field(0, description="Participants whose old items it looked for")
    items_archived: int = Field(0, description="Messages and events written to the archive")
    items_removed: int = Field(0, description="Items removed from the table (archived ones and bookkeeping)")
    pass_finished: bool = Field(False, description="Whether the day's pass over the participants finished")
    skipped: str | None = Field(None, description="Why it did not archive, when it did not")
