"""The habit profile the coach builds during intake and refines from feedback."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class UserProfile(BaseModel):
    """What the coach knows of the person's habit. Every field is optional until intake fills it."""

    model_config = ConfigDict(extra="ignore")

    habit_domain: str | None = None  # healthy eating, physical activity, mental well-being, ...
    motivation: str | None = None
    preferred_time: str | None = None  # "HH:MM" local time once parsed
    prompt_anchor: str | None = None  # "after my coffee"
    additional_info: str | None = None
    last_successful_prompt: str | None = None
    last_barrier: str | None = None
    last_tweak: str | None = None
    success_count: int = 0
    total_prompts: int = 0
    intensity: int = 0  # the intensity check's answer so far: -1 smaller, 0 as designed, +1 bigger
    last_prompt_sent_at: datetime | None = None
