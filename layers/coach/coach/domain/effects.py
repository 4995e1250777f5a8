"""What a saved turn asks to be carried out besides its texts, as data in the outbox.

The engine itself does no I/O and asks for no schedules: they derive from the flow state it returns
(coach.domain.schedules). A turn whose new state calls for other schedules than the old one saves a
ReconcileSchedules item with its texts, in the same transaction, so a crash cannot lose the change. A turn
that flagged a safety concern saves an AlertResearchers item the same way: the alert cannot be lost either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ReconcileSchedules(BaseModel):
    """Make the named schedules of the participant match its stored state (None: all, read first)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["reconcile_schedules"] = "reconcile_schedules"
    names: list[str] | None = None


class AlertResearchers(BaseModel):
    """Tell the research team that a participant's text screened as a safety concern (coach.domain.safety):
    which participant, which category and rule, when. Never the text or the phone number: the alert may go
    to e-mail; the researcher reads the transcript through the API."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["alert_researchers"] = "alert_researchers"
    category: str
    rule: str
    flagged_at: datetime


OutboxEffect = Annotated[ReconcileSchedules | AlertResearchers, Field(discriminator="kind")]
