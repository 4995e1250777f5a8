"""The participant of a study, and the rules for its phone number and timezone."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.errors import InvalidField
from coach.domain.message import clip_utf8
from coach.domain.timezones import canonical_timezone

BACKGROUND_BYTES = 4_000  # what the coach is told of the person, in UTF-8 bytes


class ParticipantStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    WITHDRAWN = "withdrawn"


class Participant(BaseModel):
    """A person enrolled in a study. `version` grows by one on every write (optimistic locking)."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="The participant's pseudonymous id")
    phone_number: str = Field(description="Their phone number, E.164, e.g. +12065550100")
    name: str | None = Field(None, description="Their name, as enrolled", json_schema_extra={"optional": True})
    gender: str | None = Field(None, description="Their gender, as enrolled", json_schema_extra={"optional": True})
    ethnicity: str | None = Field(
        None, description="Their ethnicity, as enrolled", json_schema_extra={"optional": True}
    )
    background: str | None = Field(
        None, description="What the researcher told the coach about them", json_schema_extra={"optional": True}
    )
    timezone: str = Field(description="Their IANA timezone, e.g. America/Los_Angeles")
    status: ParticipantStatus = Field(ParticipantStatus.ACTIVE, description="Where they are in the study")
    opted_out: bool = Field(False, description="Whether they texted STOP (nothing is sent to them until START)")
    study_arm: str | None = Field(None, description="The study arm they were allocated to")
    enrolled_at: datetime = Field(description="When they were enrolled, in UTC")
    created_at: datetime = Field(description="When the record was created, in UTC")
    updated_at: datetime = Field(description="When the record last changed, in UTC")
    version: int = Field(1, description="The record's version: one more on every change")

    def background_text(self) -> str:
        """What the coach is told about the person, built from the enrollment fields."""
        parts = [
            f"Name: {self.name}" if self.name else "",
            f"Gender: {self.gender}" if self.gender else "",
            f"Ethnicity: {self.ethnicity}" if self.ethnicity else "",
            f"Background: {self.background}" if self.background else "",
            f"Timezone: {self.timezone}",
        ]
        # Bounded in bytes too: the flow state keeps a copy (coach.domain.flow bounds that item).
        return clip_utf8("\n".join(p for p in parts if p), BACKGROUND_BYTES)


def canonical_phone_number(raw: str, default_region: str, field: str = "phone_number") -> str:
    """Return `raw` in E.164, or raise InvalidField naming `field`.

    Numbers without a country code are read in `default_region` (an ISO 3166 code such as "US").
    """
    import phonenumbers  # 75 ms of a cold start, which the webhook's senders mostly do without (sender_phone_number)

    try:
        parsed = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidField(field, f"not a phone number ({exc._msg})") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidField(field, "not a valid phone number; give it in E.164, e.g. +12065550100")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def sender_phone_number(raw: str, default_region: str, field: str) -> str:
    """A number Twilio reports (a text's From, a callback's To) as the key our records use.

    Twilio gives phone numbers in E.164 already, as carriers route them: that is the canonical form, looked up
    as it is (a number not enrolled is simply not found). Anything else (a short code, an alphanumeric sender)
    goes through canonical_phone_number, which refuses what is not a phone number."""
    if _E164.fullmatch(raw):
        return raw
    return canonical_phone_number(raw, default_region, field)


def valid_timezone(name: str, field: str = "timezone") -> str:
    """Return `name` when it is a canonical IANA zone of a region (e.g. "America/New_York"), else raise InvalidField.

    The message names the zone to give instead; coach.domain.timezones holds the rule.
    """
    return canonical_timezone(name, field)


def mask_phone(phone_number: str) -> str:
    """The form of a phone number that logs may carry: the last four digits only."""
    return f"***{phone_number[-4:]}" if len(phone_number) > 4 else "***"
