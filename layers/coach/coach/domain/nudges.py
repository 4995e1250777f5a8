"""The daily decision point: may this participant be nudged now, and (in a micro-randomised study) is
this one of the days they are? Pure rules; the prompt generator records every decision."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo

from coach.domain.flow import FlowState, SubState
from coach.domain.participant import Participant, ParticipantStatus

QUIET_HOURS_TOLERANCE_MINUTES = 30  # a firing this close to the chosen time counts as "at that time"


@dataclass(frozen=True)
class QuietHours:
    start: time  # e.g. 21:00
    end: time  # e.g. 08:00 (the next morning when end < start)

    def contains(self, moment: time) -> bool:
        if self.start <= self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end

    @classmethod
    def parse(cls, start: str, end: str) -> QuietHours:
        return cls(time.fromisoformat(start), time.fromisoformat(end))


@dataclass(frozen=True)
class NudgeDecision:
    """One decision point, as researchers analyse it (micro-randomised trials record every one)."""

    local_date: str
    local_time: str
    available: bool
    unavailable_reasons: tuple[str, ...]
    probability: float
    nudge: bool

    def as_event_data(self) -> dict[str, object]:
        return {
            "local_date": self.local_date,
            "local_time": self.local_time,
            "available": self.available,
            "unavailable_reasons": list(self.unavailable_reasons),
            "probability": self.probability,
            "decision": "nudge" if self.nudge else "no_nudge",
        }


def local_now(now: datetime, timezone: str) -> datetime:
    return now.astimezone(ZoneInfo(timezone))


def unavailable_reasons(participant: Participant, flow: FlowState, local: datetime, quiet: QuietHours) -> list[str]:
    """Why this participant may not be nudged at `local` (their local time); empty when they may."""
    reasons = []
    if participant.status is not ParticipantStatus.ACTIVE:
        reasons.append(participant.status.value)
    if participant.opted_out:
        reasons.append("opted_out")
    if flow.consent is not True:
        reasons.append("no_consent")
    profile = flow.user_profile
    if flow.sub_state is SubState.INTAKE or not (profile.prompt_anchor and profile.preferred_time):
        reasons.append("intake_incomplete")
    if quiet.contains(local.time()) and not _chosen_time(profile.preferred_time, local):
        reasons.append("quiet_hours")
    return reasons


def reminder_unavailable(participant: Participant, now: datetime, quiet: QuietHours) -> str | None:
    """Why a nudge's follow-up may not go out now, or None: only active, opted-in participants, out of
    quiet hours (a reminder is never at a time the person chose)."""
    if participant.status is not ParticipantStatus.ACTIVE:
        return participant.status.value
    if participant.opted_out:
        return "opted_out"
    if quiet.contains(local_now(now, participant.timezone).time()):
        return "quiet_hours"
    return None


def _chosen_time(preferred: str | None, local: datetime) -> bool:
    if not preferred:
        return False
    chosen = time.fromisoformat(preferred)
    minutes = (local.hour * 60 + local.minute) - (chosen.hour * 60 + chosen.minute)
    return min(abs(minutes), 24 * 60 - abs(minutes)) <= QUIET_HOURS_TOLERANCE_MINUTES


def decide(
    participant: Participant,
    flow: FlowState,
    now: datetime,
    quiet: QuietHours,
    *,
    probability: float = 1.0,
    seed: str = "",
) -> NudgeDecision:
    """The decision for the participant's local day. Randomisation is seeded by (seed, participant, local
    date): the same decision point always gets the same draw, however often the schedule fires."""
    local = local_now(now, participant.timezone)
    reasons = unavailable_reasons(participant, flow, local, quiet)
    draw = random.Random(f"{seed}|{participant.id}|{local.date().isoformat()}").random()
    return NudgeDecision(
        local_date=local.date().isoformat(),
        local_time=local.strftime("%H:%M"),
        available=not reasons,
        unavailable_reasons=tuple(reasons),
        probability=probability,
        nudge=not reasons and draw < probability,
    )
