"""One turn of the conversation: what comes in, what goes out, and the working state in between."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from coach.domain.flow import DailySchedule, FlowState, PendingTransition, SubState
from coach.domain.message import ResearchEvent, clip_utf8
from coach.domain.participant import Participant
from coach.domain.profile import UserProfile
from coach.domain.reachability import Purpose, QuietHours
from coach.domain.study_texts import DEFAULT_CONSENT_TEXTS, DEFAULT_CRISIS_TEXT, ConsentTexts
from coach.domain.times import parse_time

PROFILE_TEXT_FIELDS = ("habit_domain", "motivation", "preferred_time", "prompt_anchor", "additional_info")
PROFILE_FEEDBACK_FIELDS = ("last_barrier", "last_tweak", "last_successful_prompt")
MAX_PROFILE_VALUE_CHARS = 300
MAX_PROFILE_VALUE_BYTES = 600  # and UTF-8 bytes: the flow item stays bounded (coach.domain.flow)


class TurnEvent(StrEnum):
    """Something other than a text that starts a turn."""

    ENROLLED = "enrolled"  # greet and ask for consent
    RESET = "reset"  # a researcher put the conversation back to intake
    DAILY_NUDGE = "daily_nudge"  # the daily schedule fired
    REMINDER = "reminder"  # the follow-up of a nudge nobody answered
    TRANSITION = "transition"  # a delayed `transition_state` fell due
    ONE_OFF = "one_off"  # a researcher's message to the participant


class Firing(BaseModel):
    """What a schedule's firing tells the turn: the decision point it is for, and until when a text for it
    may still go out (its validity window)."""

    model_config = ConfigDict(frozen=True)

    key: str  # DAILY_NUDGE: nudge#<participant>#<local date>; REMINDER: the key of the nudge it follows
    slot: AwareDatetime  # when it was due
    valid_until: AwareDatetime
    reminder_after: timedelta | None = None  # DAILY_NUDGE: follow up this long after the slot unless answered
    outcome_window: timedelta | None = None  # DAILY_NUDGE: a reply this long after the slot is its proximal outcome
    nudge_sent: bool = True  # REMINDER: whether the nudge it follows went out at all
    transition_id: str | None = None  # TRANSITION: which pending transition fired


class TurnInput(BaseModel):
    """The texts a participant sent since the last turn (several quick ones form one turn), or an event."""

    model_config = ConfigDict(frozen=True)

    flow: FlowState
    participant: Participant
    now: AwareDatetime
    texts: list[str] = Field(default_factory=list)
    # When each of `texts` arrived, in the same order (else all at `now`): a proximal outcome is timed by
    # the reply's arrival, not by when a queue got round to its turn.
    received_at: list[AwareDatetime] = Field(default_factory=list)
    answering: str | None = None  # the id of the newest text answered: the flow records it as processed
    event: TurnEvent | None = None
    to_sub_state: SubState | None = None  # for TRANSITION: where the scheduled transition goes
    message: str | None = None  # for ONE_OFF: the researcher's text
    override_quiet_hours: bool = False  # for ONE_OFF: the researcher chose to send in quiet hours
    firing: Firing | None = None  # DAILY_NUDGE, REMINDER, TRANSITION fired by a schedule
    quiet_hours: QuietHours | None = None  # when texts we start ourselves must wait (the reachability rule)
    crisis_text: str = DEFAULT_CRISIS_TEXT  # the reply to a text that screens as a safety concern (CRISIS_TEXT)
    consent_texts: ConsentTexts = DEFAULT_CONSENT_TEXTS  # the greeting and its consent explanation (GREETING_TEXT, ...)
    intensity_check: bool = False  # the study asks "a bit more, the same, or less?" once a day after a success
    daily_llm_calls: int | None = None  # LLM calls per participant per local day (failed ones too); then offline
    daily_llm_tokens: int | None = None  # LLM tokens per participant per local day; then offline
    llm_off_reason: str | None = None  # the caller's reason not to use the LLM at all (the study's budget is spent)

    @model_validator(mode="after")
    def _texts_or_event(self) -> Self:
        if bool(self.texts) == (self.event is not None):
            raise ValueError("a turn has inbound texts or an event, not both and not neither")
        if self.received_at and len(self.received_at) != len(self.texts):
            raise ValueError("received_at has one time per text")
        if self.event is TurnEvent.TRANSITION and self.to_sub_state is None:
            raise ValueError("a transition turn needs to_sub_state")
        if self.event is TurnEvent.ONE_OFF and not self.message:
            raise ValueError("a one-off turn needs the message")
        return self


class Outgoing(BaseModel):
    """One text to send, and what it is for (the outbox asks the reachability rule again before sending)."""

    model_config = ConfigDict(frozen=True)

    text: str
    purpose: Purpose


class TurnResult(BaseModel):
    """The complete new state (to save as it is, conditional on the old version) and the SMS to send.

    The schedules the participant should have derive from the state (coach.domain.schedules): nothing
    else is asked of the caller."""

    flow: FlowState
    texts: list[Outgoing] = Field(default_factory=list)  # already shaped for SMS, in sending order
    events: list[ResearchEvent] = Field(default_factory=list)
    # who wrote it ("safety": the crisis text, coach.domain.safety); "none" when nothing was sent
    coach: Literal["llm", "offline", "researcher", "safety", "none"] = "none"

    @property
    def replies(self) -> list[str]:
        return [t.text for t in self.texts]


@dataclass
class TurnContext:
    """The working copy a turn mutates. Bots and tools change it; the engine turns it into a TurnResult."""

    flow: FlowState
    participant: Participant
    now: datetime
    rng: random.Random
    events: list[ResearchEvent] = field(default_factory=list)
    segment_budget: int = 2  # SMS segments a text may take (the engine's run_turn says)

    @property
    def profile(self) -> UserProfile:
        return self.flow.user_profile

    def clone(self) -> TurnContext:
        """A copy to try something on (the LLM): adopt it on success, drop it on failure."""
        return TurnContext(
            flow=self.flow.model_copy(deep=True),
            participant=self.participant,
            now=self.now,
            rng=random.Random(self.rng.random()),
            events=list(self.events),
            segment_budget=self.segment_budget,
        )

    def record(self, kind: str, /, **data: Any) -> None:
        self.events.append(ResearchEvent(participant_id=self.flow.participant_id, kind=kind, at=self.now, data=data))

    def move_to(self, sub_state: SubState) -> None:
        if self.flow.sub_state is not sub_state:
            self.record("sub_state_changed", from_state=self.flow.sub_state.value, to_state=sub_state.value)
            self.flow.sub_state = sub_state

    def enter_feedback(self, how: str) -> tuple[str, ...]:
        """Move to FEEDBACK when the profile can carry a habit prompt, with the daily nudge at the chosen time
        (a move without it would never nudge, silently); else stay and return what is missing (refused on
        record). `how`: what asked for the move (the LLM's tool, a delayed transition)."""
        if missing := self.profile.missing_for_prompt():
            self.record("transition_refused", to_state=SubState.FEEDBACK.value, how=how, missing=list(missing))
            return missing
        self.move_to(SubState.FEEDBACK)
        if self.flow.daily_schedule is None and self.profile.preferred_time:
            self.schedule_daily(self.profile.preferred_time)
        return ()

    def schedule_daily(self, hhmm: str) -> DailySchedule:
        """The daily nudge at HH:MM in the participant's timezone (its schedule follows from the state)."""
        current = self.flow.daily_schedule
        if current is None or current.time != hhmm:
            self.flow.daily_schedule = DailySchedule(time=hhmm, since=self.now)
            self.record("daily_schedule_set", time=hhmm, timezone=self.participant.timezone)
        return self.flow.daily_schedule or DailySchedule(time=hhmm, since=self.now)

    def delete_schedule(self) -> None:
        if self.flow.daily_schedule is not None:
            self.flow.daily_schedule = None
            self.record("daily_schedule_removed")

    def schedule_transition(self, to_sub_state: SubState, delay: timedelta) -> PendingTransition:
        """A delayed move; it replaces any pending one (one per participant)."""
        replaced = self.flow.pending_transition
        pending = PendingTransition(
            id=f"{self.rng.getrandbits(48):012x}", to_sub_state=to_sub_state, due_at=self.now + delay
        )
        self.flow.pending_transition = pending
        self.record(
            "transition_scheduled",
            transition_id=pending.id,
            to_state=to_sub_state.value,
            due_at=pending.due_at.isoformat(),
            replaced=replaced.id if replaced else None,
        )
        return pending

    def update_profile(self, changes: Mapping[str, str | None]) -> list[str]:
        """Merge field by field: only non-empty values that differ. Returns the names of the fields changed.

        Raises ValueError for a preferred_time that names no time. A new preferred time moves an existing
        daily schedule along with it.
        """
        changed = []
        for name, raw in changes.items():
            if name not in PROFILE_TEXT_FIELDS + PROFILE_FEEDBACK_FIELDS or raw is None:
                continue
            value = clip_utf8(" ".join(str(raw).split())[:MAX_PROFILE_VALUE_CHARS], MAX_PROFILE_VALUE_BYTES)
            if not value:
                continue
            if name == "preferred_time":
                parsed = parse_time(value)
                if parsed is None:
                    raise ValueError(f"preferred_time: {value[:40]!r} names no time of day; e.g. 07:30 or 'evenings'")
                value = parsed
            if getattr(self.profile, name) != value:
                setattr(self.profile, name, value)
                changed.append(name)
        if "preferred_time" in changed and self.flow.daily_schedule is not None and self.profile.preferred_time:
            self.schedule_daily(self.profile.preferred_time)
        return changed


def profile_changes(before: UserProfile, after: UserProfile) -> dict[str, dict[str, Any]]:
    """What a turn changed in the profile, for the `profile_changed` research event."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    return {k: {"from": old[k], "to": new[k]} for k in new if old.get(k) != new[k]}
