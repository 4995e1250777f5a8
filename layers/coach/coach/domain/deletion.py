"""Deleting a participant, in steps that each fit in a request.

The first step makes the participant gone for every reader at once (no texts, no nudges, not listed, 404):
their record, phone index and conversation state go together, with the audit trail's tombstone. What their
history holds (transcript, events, decision points, the archive) goes in batches, as much as the time of the
request allows; the next DELETE, or the retention job within the hour, carries on where it stopped.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Deletion(BaseModel):
    """Where a participant's deletion stands."""

    participant_id: str = Field(description="The participant's pseudonymous id")
    done: bool = Field(False, description="Nothing of the participant is left (the audit trail's entries aside)")
    items_deleted: int = Field(0, ge=0, description="Items this request removed")
    items_left: int = Field(0, ge=0, description="Items of the table still to remove: texts, events, decision points")
    archive_left: bool = Field(False, description="Whether archived files of the participant are still to remove")
