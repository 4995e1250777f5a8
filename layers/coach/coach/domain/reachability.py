"""The one rule for "may we text this person now, for this purpose?".

The engine asks it before it writes a text, the prompt generator before a decision point, the outbox
right before a send (a participant may have opted out, been paused or withdrawn since the text was
decided). An answer of no is the list of every reason, recorded by whoever asked.

| purpose         | who starts it      | paused | needs consent | needs the feedback phase | quiet hours      |
|-----------------|--------------------|--------|---------------|--------------------------|------------------|
| reply           | the participant    | yes    | not declined  | no                       | no               |
| greeting        | enrollment, reset  | yes    | not declined  | no                       | no               |
| nudge           | the daily schedule | no     | given         | yes                      | unless chosen    |
| reminder        | the nudge          | no     | given         | yes                      | yes              |
| intensity_check | a reply's success  | no     | given         | yes                      | no (in a reply)  |
| transition      | a delayed move     | no     | given         | no                       | yes              |
| one_off         | a researcher       | yes    | not declined  | no                       | yes, unless told |

Nobody gets anything once deleted, opted out, withdrawn, completed or after declining consent. While a
safety flag awaits a researcher's review (`needs_review`), only texts a person answers or a researcher writes
go out: reply, greeting, one-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from enum import StrEnum

from coach.domain.flow import FlowState, SubState
from coach.domain.participant import Participant, ParticipantStatus

QUIET_HOURS_TOLERANCE_MINUTES = 30  # a slot this close to the chosen time counts as "at that time"


class Purpose(StrEnum):
    REPLY = "reply"
    GREETING = "greeting"
    NUDGE = "nudge"
    REMINDER = "reminder"
    INTENSITY_CHECK = "intensity_check"
    TRANSITION = "transition"
    ONE_OFF = "one_off"


_WHILE_PAUSED = frozenset({Purpose.REPLY, Purpose.GREETING, Purpose.ONE_OFF})
_NEED_CONSENT = frozenset({Purpose.NUDGE, Purpose.REMINDER, Purpose.INTENSITY_CHECK, Purpose.TRANSITION})
_NEED_FEEDBACK_PHASE = frozenset({Purpose.NUDGE, Purpose.REMINDER, Purpose.INTENSITY_CHECK})
_QUIET = frozenset({Purpose.NUDGE, Purpose.REMINDER, Purpose.TRANSITION, Purpose.ONE_OFF})
_NEVER = (ParticipantStatus.WITHDRAWN, ParticipantStatus.COMPLETED)
_WHILE_IN_REVIEW = _WHILE_PAUSED  # what a flagged participant may still get: nothing the system starts itself


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


def at_chosen_time(preferred: str | None, local: time) -> bool:
    """Whether `local` is the participant's own chosen time (within the tolerance, across midnight)."""
    if not preferred:
        return False
    chosen = time.fromisoformat(preferred)
    minutes = (local.hour * 60 + local.minute) - (chosen.hour * 60 + chosen.minute)
    return min(abs(minutes), 24 * 60 - abs(minutes)) <= QUIET_HOURS_TOLERANCE_MINUTES


def unreachable_reasons(
    participant: Participant | None,
    flow: FlowState | None,
    purpose: Purpose,
    *,
    local: time | None = None,
    quiet: QuietHours | None = None,
) -> tuple[str, ...]:
    """Why this participant may not get a text for `purpose` (every reason, in a fixed order); empty when
    they may. `local` is the participant's local time of the text (the slot, for a nudge); with `quiet`,
    quiet hours count for the purposes they apply to. A deleted participant (None) is only "deleted"."""
    if participant is None:
        return ("deleted",)
    reasons: list[str] = []
    if participant.status in _NEVER:
        reasons.append(participant.status.value)
    elif participant.status is ParticipantStatus.PAUSED and purpose not in _WHILE_PAUSED:
        reasons.append("paused")
    if participant.opted_out:
        reasons.append("opted_out")
    if flow is not None:
        if flow.consent is False:
            reasons.append("consent_declined")
        elif flow.consent is None and purpose in _NEED_CONSENT:
            reasons.append("no_consent")
        if flow.sub_state is SubState.INTAKE and purpose in _NEED_FEEDBACK_PHASE:
            reasons.append("intake_incomplete")
        if flow.safety_review is not None and purpose not in _WHILE_IN_REVIEW:
            reasons.append("needs_review")
    if local is not None and quiet is not None and purpose in _QUIET and quiet.contains(local):
        chosen = flow.user_profile.preferred_time if flow is not None else None
        if not (purpose is Purpose.NUDGE and at_chosen_time(chosen, local)):
            reasons.append("quiet_hours")
    return tuple(reasons)
