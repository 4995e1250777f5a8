"""The state of a participant's conversation with the coach (one item per participant)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.message import clip_utf8
from coach.domain.profile import UserProfile
from coach.domain.tone import Tone

# The flow state keeps the newest messages, bounded by count and by bytes: the item is rewritten whole every
# turn, so its size is the write's cost. The transcript items are the full record. The worst case of the whole
# item (every text at its bound, four-byte characters) is measured by `python -m tests.bench flow`.
HISTORY_STORED = 50
HISTORY_BYTES = 12_000  # UTF-8 bytes of the kept messages' texts together
HISTORY_ENTRY_BYTES = 3_200  # one message's text: 1,600 characters of two-byte text, as Twilio delivers at most
HISTORY_SENT_TO_LLM = 30  # the LLM reads the newest of the kept ones (no transcript query per turn)


class ConversationState(StrEnum):
    CONVERSATION_ACTIVE = "CONVERSATION_ACTIVE"


class SubState(StrEnum):
    INTAKE = "INTAKE"
    FEEDBACK = "FEEDBACK"


class HistoryEntry(BaseModel):
    role: Literal["user", "assistant"]
    content: str
    at: datetime


def bounded_history(entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """The newest entries within HISTORY_STORED and HISTORY_BYTES (each entry's text within HISTORY_ENTRY_BYTES);
    the newest is always kept."""
    kept: list[HistoryEntry] = []
    total = 0
    for entry in reversed(entries[-HISTORY_STORED:]):
        content = clip_utf8(entry.content, HISTORY_ENTRY_BYTES)
        size = len(content.encode())
        if kept and total + size > HISTORY_BYTES:
            break
        kept.append(entry if content == entry.content else entry.model_copy(update={"content": content}))
        total += size
    return kept[::-1]


class PendingReminder(BaseModel):
    """A follow-up reminder scheduled after a nudge; cleared when the participant replies or it fires."""

    model_config = ConfigDict(extra="ignore")

    nudge_key: str
    due_at: datetime


class PendingOutcome(BaseModel):
    """The last nudge's decision point, waiting for its proximal outcome: the first reply until `until`."""

    model_config = ConfigDict(extra="ignore")

    decision_id: str
    since: datetime  # the decision point's slot
    until: datetime


class PendingTransition(BaseModel):
    """A delayed move between intake and feedback (the LLM's `transition_state` with a delay). One at a
    time: a newer one replaces it, and its `id` tells a stale firing from the one pending."""

    model_config = ConfigDict(extra="ignore")

    id: str
    to_sub_state: SubState
    due_at: datetime


class SafetyReview(BaseModel):
    """A text that screened as a safety concern (coach.domain.safety): nudges wait until a researcher has
    reviewed it and cleared the flag. Which rule matched, never a copy of the text."""

    model_config = ConfigDict(extra="ignore")

    category: str
    rule: str
    flagged_at: datetime
    message_id: str | None = None  # the inbound text it was found in (the transcript holds the text)


class DailySchedule(BaseModel):
    """The daily nudge: local time HH:MM, read in the participant's timezone (their record says which).

    `since` is when this slot began to apply (set, moved, rezoned or resumed): a decision point is
    expected from then on, which the watchdog checks.
    """

    model_config = ConfigDict(extra="ignore")

    time: str
    since: datetime | None = None


class FlowState(BaseModel):
    """Conversation state. Every write is conditional on `version` (optimistic locking)."""

    model_config = ConfigDict(extra="ignore")

    participant_id: str
    flow_type: Literal["conversation"] = "conversation"
    current_state: ConversationState = ConversationState.CONVERSATION_ACTIVE
    sub_state: SubState = SubState.INTAKE
    participant_background: str = ""
    user_profile: UserProfile = Field(default_factory=UserProfile)
    tone: Tone = Field(default_factory=Tone)
    history: list[HistoryEntry] = Field(default_factory=list)
    last_habit_prompt: str | None = None
    pending_reminder: PendingReminder | None = None
    pending_transition: PendingTransition | None = None
    awaiting_outcome: PendingOutcome | None = None
    last_processed_inbound: str | None = None
    # Where intake stands, so a short answer ("yes", "7am") is read against the question it answers.
    consent: bool | None = None  # None until asked and answered; False: the person declined, we stay silent
    intake_question: str | None = None  # the profile field (or "consent") the coach last asked about
    intake_retries: int = 0  # vague answers to that question so far
    offered_try_now: bool = False  # the last message offered a 1-minute try right now
    daily_schedule: DailySchedule | None = None  # the daily nudge; the schedules derive from it (domain.schedules)
    # LLM calls (failed ones too) and tokens on one local day, for the participant's daily caps (then the
    # offline coach answers).
    llm_day: str | None = None
    llm_calls_that_day: int = 0
    llm_tokens_that_day: int = 0
    # The optional once-a-day intensity check: the local day it was last asked, and whether we await the answer.
    intensity_checked_on: str | None = None
    awaiting_intensity: bool = False
    safety_review: SafetyReview | None = None  # flagged: no nudges, reminders or checks until cleared
    created_at: datetime
    updated_at: datetime
    version: int = 1

    @classmethod
    def start(cls, participant_id: str, background: str, now: datetime) -> FlowState:
        """The state of a newly enrolled participant: active conversation, intake first."""
        return cls(participant_id=participant_id, participant_background=background, created_at=now, updated_at=now)

    def reset(self, now: datetime) -> FlowState:
        """Back to intake with an empty profile and history; the transcript items are not touched.

        Consent is kept (it was given once), and so is a safety flag (only a researcher's review clears it).
        The daily nudge, the pending reminder and transition go: with them go their schedules, which derive
        from this state.
        """
        return FlowState(
            participant_id=self.participant_id,
            participant_background=self.participant_background,
            consent=self.consent,
            safety_review=self.safety_review,
            created_at=self.created_at,
            updated_at=now,
            version=self.version,
        )
