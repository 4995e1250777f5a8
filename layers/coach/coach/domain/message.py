"""Transcript messages and research events: the complete record researchers export."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_BODY_CHARS = 1600  # Twilio's own limit for one message; longer bodies are cut and flagged


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    participant_id: str
    message_id: str = Field(description="Twilio MessageSid for inbound; outbox key for outbound")
    direction: Direction
    body: str
    at: datetime
    twilio_sid: str | None = None
    status: str | None = None  # received / queued / sent / delivered / undelivered / failed
    error_code: int | None = None
    truncated: bool = False
    turn: str | None = Field(None, description="Inbound: the turn that answered it (set exactly once)")
    coach: str | None = Field(None, description="Outbound: who wrote it (llm, offline, researcher)")
    llm_model: str | None = Field(None, description="Outbound, written by the LLM: the model")
    prompt_version: str | None = Field(None, description="Outbound, written by the LLM: its prompts' version")


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

    participant_id: str
    kind: str
    at: datetime
    data: dict[str, Any] = Field(default_factory=dict)
