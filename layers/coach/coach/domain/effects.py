"""What a saved turn asks to be carried out besides its texts, as data in the outbox.

The engine itself does no I/O and asks for no schedules: they derive from the flow state it returns
(coach.domain.schedules). A turn whose new state calls for other schedules than the old one saves a
ReconcileSchedules item with its texts, in the same transaction, so a crash cannot lose the change.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class ReconcileSchedules(BaseModel):
    """Make the named schedules of the participant match its stored state (None: all, read first)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["reconcile_schedules"] = "reconcile_schedules"
    names: list[str] | None = None


OutboxEffect = Annotated[ReconcileSchedules, Field(discriminator="kind")]
