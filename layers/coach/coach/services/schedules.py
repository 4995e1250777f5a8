"""Make a participant's real schedules match the ones its record and flow state call for.

`reconcile` is idempotent: run it twice and the second run changes nothing. With `names` it touches only
those (a saved turn knows which of its schedules changed, and writes or deletes them without reading);
without, it reads each of the participant's schedules and fixes what differs (the API, the watchdog).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from coach.domain.errors import NotFound
from coach.domain.flow import FlowState
from coach.domain.participant import Participant
from coach.domain.schedules import ScheduleSpec, desired_schedules, schedule_names
from coach.ports import ParticipantStore, Scheduler


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True)
class ScheduleChange:
    name: str
    change: Change
    why: str  # missing, differs, disabled_or_retargeted, not_desired, changed_by_turn


def reconcile(
    scheduler: Scheduler,
    participant_id: str,
    desired: Mapping[str, ScheduleSpec],
    names: Iterable[str] | None = None,
) -> list[ScheduleChange]:
    """Create, update or delete the participant's schedules so they are `desired`; what was changed."""
    changes: list[ScheduleChange] = []
    if names is not None:
        for name in names:
            if (spec := desired.get(name)) is not None:
                scheduler.put(spec)
                changes.append(ScheduleChange(name, Change.UPDATED, "changed_by_turn"))
            else:
                scheduler.delete(name)
                changes.append(ScheduleChange(name, Change.DELETED, "changed_by_turn"))
        return changes
    for name in schedule_names(participant_id):
        existing = scheduler.get(name)
        spec = desired.get(name)
        if spec is None:
            if existing is not None:
                scheduler.delete(name)
                changes.append(ScheduleChange(name, Change.DELETED, "not_desired"))
        elif existing is None:
            scheduler.put(spec, exists=False)
            changes.append(ScheduleChange(name, Change.CREATED, "missing"))
        elif existing.spec != spec or not existing.in_order:
            scheduler.put(spec, exists=True)
            why = "differs" if existing.spec != spec else "disabled_or_retargeted"
            changes.append(ScheduleChange(name, Change.UPDATED, why))
    return changes


def stored_state(participants: ParticipantStore, participant_id: str) -> tuple[Participant | None, FlowState | None]:
    """The participant and its flow state as stored now; (None, None) once deleted."""
    try:
        return participants.get_participant(participant_id), participants.get_flow_state(participant_id)
    except NotFound:
        return None, None


def reconcile_stored(
    participants: ParticipantStore,
    scheduler: Scheduler,
    participant_id: str,
    now: datetime,
    names: Iterable[str] | None = None,
) -> list[ScheduleChange]:
    """Reconcile against the state stored now (the newest: an older change's reconcile cannot undo a
    newer one)."""
    participant, flow = stored_state(participants, participant_id)
    return reconcile(scheduler, participant_id, desired_schedules(participant, flow, now), names)
