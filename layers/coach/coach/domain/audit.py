"""The audit trail: every researcher action, who did it (their API key's name), when and from where.

Append-only through the API. A change's entry has each field's value before and after; deleting a participant
erases the personal values in their entries and appends a tombstone that holds no personal data, so the trail
shows what happened to whom (by pseudonymous id) without keeping who they were.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PERSONAL_FIELDS = frozenset({"phone_number", "name", "gender", "ethnicity", "background"})
ERASED = "[erased]"

Action = Literal["create", "update", "reset", "delete", "export", "message", "bulk_enroll", "clear_flag", "erase"]


class Actor(BaseModel):
    """Who asked: the researcher's name (their API key's), the key's id and the caller's address."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="The name of the researcher's API key (or the system's part, e.g. auto-enroll)")
    key_id: str | None = Field(None, description="The API key's id")
    source_ip: str | None = Field(None, description="Where the request came from")


SYSTEM = Actor(name="system")


class FieldChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    before: Any = None
    after: Any = None


class AuditEntry(BaseModel):
    """One researcher action."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="The entry's id")
    at: datetime = Field(description="When, in UTC")
    researcher: str = Field(description="Who: the name of their API key")
    key_id: str | None = Field(None, description="The API key's id")
    source_ip: str | None = Field(None, description="The caller's address")
    action: Action = Field(description="What they did")
    participant_id: str | None = Field(
        None,
        description="To whom (pseudonymous id); none for study-wide actions (export, bulk_enroll)",
        json_schema_extra={"filled_when": "not action=export|bulk_enroll"},
    )
    changes: dict[str, FieldChange] = Field(default_factory=dict, description="Each field's value before and after")
    details: dict[str, Any] = Field(default_factory=dict, description="What else the action said (filters, counts)")

    @classmethod
    def of(
        cls,
        actor: Actor,
        action: Action,
        at: datetime,
        entry_id: str,
        participant_id: str | None = None,
        changes: dict[str, FieldChange] | None = None,
        **details: Any,
    ) -> AuditEntry:
        return cls(
            id=entry_id,
            at=at,
            researcher=actor.name,
            key_id=actor.key_id,
            source_ip=actor.source_ip,
            action=action,
            participant_id=participant_id,
            changes=changes or {},
            details=details,
        )

    def without_personal_data(self) -> AuditEntry:
        """The entry with every personal value erased (what stays once the participant is deleted)."""
        changes = {
            name: FieldChange(
                before=ERASED if change.before is not None else None, after=ERASED if change.after is not None else None
            )
            if name in PERSONAL_FIELDS
            else change
            for name, change in self.changes.items()
        }
        return self.model_copy(update={"changes": changes})

    @property
    def has_personal_data(self) -> bool:
        return any(
            name in PERSONAL_FIELDS
            and ERASED not in (change.before, change.after)
            and (change.before is not None or change.after is not None)
            for name, change in self.changes.items()
        )


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, FieldChange]:
    """The fields whose value differs, with both values (JSON-ready)."""
    return {
        name: FieldChange(before=before.get(name), after=after.get(name))
        for name in sorted(before.keys() | after.keys())
        if before.get(name) != after.get(name)
    }
