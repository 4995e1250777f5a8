"""The habit profile the coach builds during intake and refines from feedback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_OPTIONAL: dict[str, Any] = {"optional": True}  # filled as the conversation learns it (coach.domain.tables)
# What a habit prompt needs: without them no nudge can be written, so the conversation stays in (or goes back to)
# intake to ask for them.
PROMPT_FIELDS = ("habit_domain", "preferred_time", "prompt_anchor")


class UserProfile(BaseModel):
    """What the coach knows of the person's habit. Every field is optional until intake fills it."""

    model_config = ConfigDict(extra="ignore")

    habit_domain: str | None = Field(
        None, description="The habit's area: healthy eating, physical activity, ...", json_schema_extra=_OPTIONAL
    )
    motivation: str | None = Field(
        None, description="Why they want the habit, in their words", json_schema_extra=_OPTIONAL
    )
    preferred_time: str | None = Field(
        None, description="When they want the daily nudge, local HH:MM", json_schema_extra=_OPTIONAL
    )
    prompt_anchor: str | None = Field(
        None, description="What the habit follows, e.g. after my coffee", json_schema_extra=_OPTIONAL
    )
    additional_info: str | None = Field(
        None, description="Anything else they told the coach", json_schema_extra=_OPTIONAL
    )
    last_successful_prompt: str | None = Field(
        None, description="The last nudge they reported doing", json_schema_extra=_OPTIONAL
    )
    last_barrier: str | None = Field(None, description="The last obstacle they reported", json_schema_extra=_OPTIONAL)
    last_tweak: str | None = Field(None, description="The last change they asked for", json_schema_extra=_OPTIONAL)
    success_count: int = Field(
        0, description="How many nudges they reported doing", json_schema_extra={"unit": "count"}
    )
    total_prompts: int = Field(0, description="How many nudges they were sent", json_schema_extra={"unit": "count"})
    intensity: int = Field(0, description="The intensity check's answer so far: -1 smaller, 0 as designed, +1 bigger")
    last_prompt_sent_at: datetime | None = Field(
        None, description="When the last nudge was sent, in UTC", json_schema_extra=_OPTIONAL
    )
    habit: str | None = Field(
        None,
        description="The 1-minute habit agreed at the end of intake, which every nudge asks for until it is changed "
        "on purpose (habit_changed events)",
        json_schema_extra=_OPTIONAL,
    )

    personalization_notes: str | None = Field(
        None, description="What the coach noted to personalise the prompts (the LLM's)", json_schema_extra=_OPTIONAL
    )

    def missing_for_prompt(self) -> tuple[str, ...]:
        """The fields a habit prompt needs that the profile lacks (empty: a prompt can be written)."""
        return tuple(f for f in PROMPT_FIELDS if not getattr(self, f))
