"""The decision-point ledger: one record per participant x decision point (every daily slot, whether or not a
text was sent), filled in as things happen, in the long format a micro-randomised trial's analysis expects
(one row per participant x decision point, with the proximal outcome; e.g. R's MRTAnalysis::wcls).

Written with the firing that decided it (same transaction), then updated by the send, Twilio's delivery
callbacks, the participant's reply and the reminder. Field descriptions are the export's data dictionary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DAILY_SLOT = "daily"
UNCLASSIFIED_FEEDBACK = "unclassified"  # a reply within the window that said none of the feedback kinds


def decision_sort_key(local_date: str, slot: str = DAILY_SLOT) -> str:
    return f"DECISION#{local_date}#{slot}"


def _unit(unit: str, **more: Any) -> dict[str, Any]:
    return {"unit": unit, **more}


def _when(condition: str) -> dict[str, Any]:
    """The column has a value exactly when `condition` holds (coach.domain.tables.condition_holds)."""
    return {"filled_when": condition}


class DecisionPoint(BaseModel):
    """One decision point of one participant."""

    model_config = ConfigDict(extra="ignore")

    decision_id: str = Field(description="The decision point's key: nudge#<participant>#<local date>")
    participant_id: str = Field(description="The participant's pseudonymous id")
    arm: str | None = Field(None, description="The study arm the participant was in at the decision point")
    slot: str = Field(DAILY_SLOT, description="Which of the day's decision points (one a day: daily)")
    scheduled_at: datetime = Field(
        description="When the decision point was due, in UTC", json_schema_extra=_unit("UTC, ISO 8601")
    )
    local_date: str = Field(description="The participant's local date of the decision point (YYYY-MM-DD)")
    local_time: str = Field(description="The participant's local time of the decision point (HH:MM)")
    timezone: str = Field(description="The IANA timezone the local date and time are read in")
    available: bool = Field(description="Whether the participant could be nudged at the decision point")
    unavailable_reasons: list[str] = Field(
        default_factory=list,
        description="Every reason the participant was unavailable (empty when available)",
        json_schema_extra=_when("not available"),
    )
    probability: float = Field(
        description="The randomisation probability of a nudge at an available decision point",
        json_schema_extra=_unit("probability 0..1"),
    )
    draw: float | None = Field(
        None,
        description="The seeded uniform draw compared with the probability (none for a missed decision point)",
        json_schema_extra=_unit("0..1", filled_when="not missed"),
    )
    decision: str = Field(description="nudge or no_nudge: what the randomisation decided")
    treated: bool = Field(False, description="Whether the nudge was handed to Twilio (the treatment actually given)")
    message_id: str | None = Field(
        None, description="The transcript message id of the nudge", json_schema_extra=_when("decision=nudge")
    )
    text: str | None = Field(None, description="The nudge's text", json_schema_extra=_when("decision=nudge"))
    coach: str | None = Field(
        None, description="Who wrote the nudge: llm or offline", json_schema_extra=_when("decision=nudge")
    )
    llm_model: str | None = Field(
        None, description="The LLM model that wrote the nudge", json_schema_extra=_when("coach=llm")
    )
    prompt_version: str | None = Field(
        None, description="The version name of the LLM's prompts", json_schema_extra=_when("coach=llm")
    )
    prompt_hash: str | None = Field(
        None,
        description="A hash of the LLM's prompt texts (sha256, first 16 hex digits)",
        json_schema_extra=_when("coach=llm"),
    )
    prompt_tokens: int | None = Field(
        None, description="LLM prompt tokens of the nudge", json_schema_extra=_unit("tokens", filled_when="coach=llm")
    )
    completion_tokens: int | None = Field(
        None,
        description="LLM completion tokens of the nudge",
        json_schema_extra=_unit("tokens", filled_when="coach=llm"),
    )
    sent_at: datetime | None = Field(
        None, description="When the nudge was handed to Twilio, in UTC", json_schema_extra=_when("treated")
    )
    twilio_sid: str | None = Field(
        None, description="Twilio's message SID of the nudge", json_schema_extra=_when("treated")
    )
    delivery_status: str | None = Field(
        None,
        description="The nudge's latest delivery status from Twilio (failed when Twilio refused it)",
        json_schema_extra=_when("treated or cancelled_reason=send_failed"),
    )
    delivery_error_code: int | None = Field(
        None,
        description="Twilio's error code when the nudge was not delivered (when Twilio gave one)",
        json_schema_extra={"optional": True},
    )
    expired: bool = Field(False, description="Whether the nudge could not go out within its validity window")
    cancelled_reason: str | None = Field(
        None,
        description="Why a nudge decided on was not sent (e.g. opted_out, not_sent_within_its_window, send_failed)",
        json_schema_extra=_when("decision=nudge and not treated"),
    )
    missed: bool = Field(False, description="Whether the decision point was found missing by the watchdog")
    missed_reason: str | None = Field(
        None, description="What the watchdog found (e.g. schedule_missing)", json_schema_extra=_when("missed")
    )
    outcome_window_minutes: int | None = Field(
        None,
        description="How long after the decision point a reply counts as its proximal outcome",
        json_schema_extra=_unit("minutes", filled_when="not missed"),
    )
    replied: bool = Field(False, description="Proximal outcome: the participant replied within the outcome window")
    replied_at: datetime | None = Field(
        None, description="When the first reply within the window came, in UTC", json_schema_extra=_when("replied")
    )
    reply_minutes: float | None = Field(
        None,
        description="Minutes from the decision point to that reply",
        json_schema_extra=_unit("minutes", filled_when="replied"),
    )
    feedback_kind: str | None = Field(
        None,
        description="What the reply said of the habit: completed, attempted, skipped, rejected, modified, "
        "or unclassified when it said none of these",
        json_schema_extra=_when("replied"),
    )
    reminder_sent: bool = Field(False, description="Whether the follow-up reminder went out")
    created_at: datetime = Field(description="When the ledger row was written, in UTC")
    updated_at: datetime = Field(description="When the ledger row last changed, in UTC")


class DecisionUpdate(BaseModel):
    """Fields of one decision point to set, when something happens to it."""

    model_config = ConfigDict(frozen=True)

    participant_id: str
    decision_id: str
    changes: dict[str, Any]


def local_date_of(decision_id: str) -> str:
    """The local date of a decision id nudge#<participant>#<local date>."""
    return decision_id.rsplit("#", 1)[-1]
