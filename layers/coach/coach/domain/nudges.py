"""The daily decision point: may this participant be nudged now, and (in a micro-randomised study) is
this one of the days they are? Pure rules; the prompt generator records every decision."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from coach.domain.flow import FlowState
from coach.domain.participant import Participant
from coach.domain.reachability import Purpose, QuietHours, unreachable_reasons


@dataclass(frozen=True)
class NudgeDecision:
    """One decision point, as researchers analyse it (micro-randomised trials record every one)."""

    local_date: str
    local_time: str
    timezone: str
    slot: datetime  # UTC: when the decision point was due
    available: bool
    unavailable_reasons: tuple[str, ...]
    probability: float
    draw: float
    nudge: bool

    def as_event_data(self) -> dict[str, object]:
        return {
            "local_date": self.local_date,
            "local_time": self.local_time,
            "timezone": self.timezone,
            "slot": self.slot.isoformat(),
            "available": self.available,
            "unavailable_reasons": list(self.unavailable_reasons),
            "probability": self.probability,
            "draw": round(self.draw, 6),
            "decision": "nudge" if self.nudge else "no_nudge",
        }


def local_now(now: datetime, timezone: str) -> datetime:
    return now.astimezone(ZoneInfo(timezone))


def slot_on(local_date: date, hhmm: str, timezone: str) -> datetime:
    """The moment a daily time falls on a local date (a time skipped by a DST change reads as after it)."""
    return datetime.combine(local_date, time.fromisoformat(hhmm), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def last_slot(hhmm: str, timezone: str, moment: datetime) -> datetime:
    """The latest daily slot at or before `moment`: which decision point a firing without its scheduled time
    belongs to."""
    local = local_now(moment, timezone)
    today = slot_on(local.date(), hhmm, timezone)
    return today if today <= moment else slot_on(local.date() - timedelta(days=1), hhmm, timezone)


def next_slot(hhmm: str, timezone: str, moment: datetime) -> datetime:
    """The first daily slot after `moment`."""
    local = local_now(moment, timezone)
    today = slot_on(local.date(), hhmm, timezone)
    return today if today > moment else slot_on(local.date() + timedelta(days=1), hhmm, timezone)


def recent_slots(hhmm: str, timezone: str, before: datetime, count: int) -> list[datetime]:
    """The `count` latest daily slots at or before `before`, newest first."""
    newest = last_slot(hhmm, timezone, before)
    local_day = local_now(newest, timezone).date()
    return [slot_on(local_day - timedelta(days=n), hhmm, timezone) for n in range(count)]


def unavailable_reasons(participant: Participant, flow: FlowState, slot: datetime, quiet: QuietHours) -> list[str]:
    """Why this participant may not be nudged at this slot; empty when they may. The reachability rule,
    and a profile that can carry a habit prompt."""
    local = local_now(slot, participant.timezone)
    reasons = list(unreachable_reasons(participant, flow, Purpose.NUDGE, local=local.time(), quiet=quiet))
    profile = flow.user_profile
    if not (profile.prompt_anchor and profile.preferred_time) and "intake_incomplete" not in reasons:
        reasons.append("intake_incomplete")
    return reasons


def decide(
    participant: Participant,
    flow: FlowState,
    slot: datetime,
    quiet: QuietHours,
    *,
    probability: float = 1.0,
    seed: str = "",
) -> NudgeDecision:
    """The decision for the slot's local day. Randomisation is seeded by (seed, participant, local date):
    the same decision point always gets the same draw, however often or late the schedule fires."""
    local = local_now(slot, participant.timezone)
    reasons = unavailable_reasons(participant, flow, slot, quiet)
    draw = random.Random(f"{seed}|{participant.id}|{local.date().isoformat()}").random()
    return NudgeDecision(
        local_date=local.date().isoformat(),
        local_time=local.strftime("%H:%M"),
        timezone=participant.timezone,
        slot=slot.astimezone(UTC),
        available=not reasons,
        unavailable_reasons=tuple(reasons),
        probability=probability,
        draw=draw,
        nudge=not reasons and draw < probability,
    )
