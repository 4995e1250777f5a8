"""The schedules a participant should have, derived from its record and flow state, never stored apart.

A participant has at most three schedules, each with a name derived from its id (so they are found again
without listing, within EventBridge Scheduler's 64 characters): the daily nudge (a cron in the
participant's own timezone), the pending reminder of the last nudge and the pending delayed transition
(one-time `at()` schedules). `desired_schedules` says which should exist and how; a reconciler makes the
real ones match (coach.services.schedules), after every change of the record or the flow state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from coach.domain.flow import FlowState
from coach.domain.participant import Participant, ParticipantStatus

# EventBridge Scheduler replaces this in a target's input with the time the firing was due, so the
# prompt generator knows which slot a (late, retried) firing belongs to.
SCHEDULED_TIME = "<aws.scheduler.scheduled-time>"
# Participants with these statuses keep their schedules: a paused or opted-out participant's decision
# points are still recorded (as unavailable), and resuming needs nothing.
SCHEDULED_STATUSES = (ParticipantStatus.ACTIVE, ParticipantStatus.PAUSED)


@dataclass(frozen=True)
class ScheduleSpec:
    """What a schedule does, in the terms we choose; the adapter adds the target, role and retries."""

    name: str
    expression: str  # cron(...) or at(...)
    timezone: str  # the zone the expression is read in
    payload: Mapping[str, Any] = field(default_factory=dict)  # the prompt generator's event
    one_time: bool = False  # deleted by Scheduler after it fired

    @property
    def kind(self) -> str:
        return str(self.payload.get("kind", ""))


def daily_schedule_name(participant_id: str) -> str:
    return f"nudge-{participant_id}"[:64]


def reminder_schedule_name(participant_id: str) -> str:
    return f"reminder-{participant_id}"[:64]


def transition_schedule_name(participant_id: str) -> str:
    return f"transition-{participant_id}"[:64]


def schedule_names(participant_id: str) -> tuple[str, ...]:
    """Every schedule a participant can have: what a reconciler looks at, and what a delete removes."""
    return (
        daily_schedule_name(participant_id),
        reminder_schedule_name(participant_id),
        transition_schedule_name(participant_id),
    )


def daily_cron(hhmm: str) -> str:
    """AWS's six-field cron for every day at HH:MM (read in the schedule's own timezone)."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    return f"cron({minute} {hour} * * ? *)"


def at_expression(moment: datetime) -> str:
    """A one-time schedule's expression, in UTC, to the second."""
    return f"at({moment.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


def _once_due(due: datetime, now: datetime) -> datetime:
    """When a one-time schedule should fire: when it is due, or, if that has passed (it was deleted, or the
    participant was withdrawn meanwhile), at the next whole minute: never a time already gone."""
    if due > now:
        return due
    return (now + timedelta(minutes=1)).replace(second=0, microsecond=0)


def desired_schedules(
    participant: Participant | None, flow: FlowState | None, now: datetime
) -> dict[str, ScheduleSpec]:
    """The schedules the participant should have now, by name; a name of `schedule_names` missing here
    should not exist. None for a deleted participant: none at all."""
    if participant is None or flow is None or participant.status not in SCHEDULED_STATUSES:
        return {}
    pid = participant.id
    desired: list[ScheduleSpec] = []
    if flow.daily_schedule is not None:
        desired.append(
            ScheduleSpec(
                name=daily_schedule_name(pid),
                expression=daily_cron(flow.daily_schedule.time),
                timezone=participant.timezone,
                payload={"participant_id": pid, "kind": "daily_nudge", "scheduled_time": SCHEDULED_TIME},
            )
        )
    if (reminder := flow.pending_reminder) is not None:
        desired.append(
            ScheduleSpec(
                name=reminder_schedule_name(pid),
                expression=at_expression(_once_due(reminder.due_at, now)),
                timezone="UTC",
                payload={
                    "participant_id": pid,
                    "kind": "reminder",
                    "nudge_key": reminder.nudge_key,
                    "scheduled_time": SCHEDULED_TIME,
                },
                one_time=True,
            )
        )
    if (transition := flow.pending_transition) is not None:
        desired.append(
            ScheduleSpec(
                name=transition_schedule_name(pid),
                expression=at_expression(_once_due(transition.due_at, now)),
                timezone="UTC",
                payload={
                    "participant_id": pid,
                    "kind": "transition",
                    "transition_id": transition.id,
                    "to_sub_state": transition.to_sub_state.value,
                    "scheduled_time": SCHEDULED_TIME,
                },
                one_time=True,
            )
        )
    return {spec.name: spec for spec in desired}


def changed_schedules(before: Mapping[str, ScheduleSpec], after: Mapping[str, ScheduleSpec]) -> list[str]:
    """The names whose schedule a change of state creates, moves or removes, in a stable order."""
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
