"""Transcript messages and research events: the complete record researchers export."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BODY_CHARS = 1600  # Twilio's own limit for one message; longer bodies are cut and flagged


def clip_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, never inside a character (items stored whole are bounded in
    bytes: DynamoDB bills and limits them so)."""
    encoded = text.encode()
    return text if len(encoded) <= limit else encoded[:limit].decode(errors="ignore")


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    participant_id: str = Field(description="The participant's pseudonymous id")
    message_id: str = Field(description="Twilio MessageSid for inbound; outbox key for outbound")
    direction: Direction = Field(description="inbound (from the participant) or outbound (to them)")
    body: str = Field(description="The text")
    at: datetime = Field(description="When it was received, or written to be sent, in UTC")
    twilio_sid: str | None = Field(
        None, description="Twilio's message SID (outbound: once handed to Twilio)", json_schema_extra={"optional": True}
    )
    status: str | None = Field(
        None,
        description="received, or the delivery status: queued, sent, delivered, undelivered, failed, cancelled, "
        "expired",
        json_schema_extra={"optional": True},
    )
    error_code: int | None = Field(
        None, description="Twilio's error code of a failed delivery", json_schema_extra={"optional": True}
    )
    truncated: bool = Field(False, description="Whether the stored body was cut to the longest body we keep")
    turn: str | None = Field(
        None, description="Inbound: the turn that answered it (set exactly once)", json_schema_extra={"optional": True}
    )
    coach: str | None = Field(
        None, description="Outbound: who wrote it (llm, offline, researcher)", json_schema_extra={"optional": True}
    )
    llm_model: str | None = Field(
        None, description="Outbound, written by the LLM: the model", json_schema_extra={"filled_when": "coach=llm"}
    )
    prompt_version: str | None = Field(
        None,
        description="Outbound, written by the LLM: its prompts' version",
        json_schema_extra={"filled_when": "coach=llm"},
    )


# Delivery statuses in the order Twilio moves through them; a callback never moves a message backwards.
_STATUS_RANK = {
    "pending": 0,
    "accepted": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "cancelled": 4,  # ours: never handed to Twilio
    "expired": 4,  # ours: its validity window closed before it could be handed to Twilio
    "read": 5,
}


def status_rank(status: str) -> int:
    """How far along a delivery status is; unknown statuses rank lowest, so they never overwrite."""
    return _STATUS_RANK.get(status.lower(), -1)


class ResearchEvent(BaseModel):
    """Something researchers analyse: status changes, nudge decisions, feedback classifications."""

    model_config = ConfigDict(extra="ignore")

    participant_id: str = Field(description="The participant's pseudonymous id")
    kind: str = Field(description="What happened, e.g. enrolled, consent_given, nudge_decision, feedback_classified")
    at: datetime = Field(description="When, in UTC")
    data: dict[str, Any] = Field(default_factory=dict, description="What the event says, by kind (JSON)")
