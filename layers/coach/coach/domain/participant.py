"""The participant of a study, and the rules for its phone number and timezone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from functools import cache
from zoneinfo import available_timezones

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field

from coach.domain.errors import InvalidField


class ParticipantStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class Participant(BaseModel):
    """A person enrolled in a study. `version` grows by one on every write (optimistic locking)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    phone_number: str = Field(description="E.164, e.g. +12065550100")
    name: str | None = None
    gender: str | None = None
    ethnicity: str | None = None
    background: str | None = None
    timezone: str = Field(description="IANA timezone, e.g. America/Los_Angeles")
    status: ParticipantStatus = ParticipantStatus.ACTIVE
    opted_out: bool = False
    study_arm: str | None = None
    enrolled_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int = 1

    def background_text(self) -> str:
        """What the coach is told about the person, built from the enrollment fields."""
        parts = [
            f"Name: {self.name}" if self.name else "",
            f"Gender: {self.gender}" if self.gender else "",
            f"Ethnicity: {self.ethnicity}" if self.ethnicity else "",
            f"Background: {self.background}" if self.background else "",
            f"Timezone: {self.timezone}",
        ]
        return "\n".join(p for p in parts if p)


def canonical_phone_number(raw: str, default_region: str, field: str = "phone_number") -> str:
    """Return `raw` in E.164, or raise InvalidField naming `field`.

    Numbers without a country code are read in `default_region` (an ISO 3166 code such as "US").
    """
    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidField(field, f"not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidField(field, "not a valid phone number; give it in E.164, e.g. +12065550100")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@cache
def _timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_timezone(name: str, field: str = "timezone") -> str:
    """Return `name` when it is an IANA timezone (e.g. "America/New_York"), else raise InvalidField."""
    if name not in _timezones():
        raise InvalidField(field, f"unknown IANA timezone {name[:64]!r}; e.g. America/New_York")
    return name


def mask_phone(phone_number: str) -> str:
    """The form of a phone number that logs may carry: the last four digits only."""
    return f"***{phone_number[-4:]}" if len(phone_number) > 4 else "***"
