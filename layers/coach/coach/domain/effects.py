"""What a conversation turn asks its caller to do afterwards, as data: the engine itself does no I/O.

The caller (the conversation and prompt-generator functions) saves the flow state, stores the research
events and carries these out, in the order given.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.flow import SubState


class ScheduleDaily(BaseModel):
    """Create or move the participant's daily nudge schedule (one per participant)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_daily"] = "schedule_daily"
    time: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local time HH:MM")
    timezone: str = Field(description="IANA timezone the time is read in")


class DeleteSchedule(BaseModel):
    """Remove the participant's daily nudge schedule."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["delete_schedule"] = "delete_schedule"


class ScheduleTransition(BaseModel):
    """Move the conversation to `to_sub_state` after `delay_minutes`: the caller fires a `transition` turn."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_transition"] = "schedule_transition"
    delay_minutes: int = Field(ge=1, le=7 * 24 * 60)
    to_sub_state: SubState


class CancelReminder(BaseModel):
    """The participant replied, so the follow-up reminder of the last nudge must not go out."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["cancel_reminder"] = "cancel_reminder"
    nudge_key: str
    schedule_name: str | None = None


Effect = Annotated[ScheduleDaily | DeleteSchedule | ScheduleTransition | CancelReminder, Field(discriminator="kind")]


class ScheduleReminder(BaseModel):
    """A one-time schedule for the follow-up of a nudge; a reply before it fires cancels it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["schedule_reminder"] = "schedule_reminder"
    at: datetime
    nudge_key: str
    schedule_name: str


OutboxEffect = Annotated[
    ScheduleDaily | DeleteSchedule | ScheduleTransition | CancelReminder | ScheduleReminder,
    Field(discriminator="kind"),
]
