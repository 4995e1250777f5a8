"""One saved turn, the unit of work of every path that changes a participant's conversation: load the
participant and its flow state, decide (run the engine), build the outbox, save it all in one
transaction, then carry out the outbox. The conversation function and the prompt generator both use it.

A lost race (Conflict) loads again and decides again; work found saved already (AlreadyDone) only
finishes the outbox. The load is one consistent read (the participant, its flow state and whatever the
decision needs: the text it answers, whether its work was done); the save is one transaction, conditional
on both versions, whose texts are written as being sent; the sends are closed in one more write.

Whatever the turn changed in the schedules the state calls for travels in the outbox as one
ReconcileSchedules item, so the Scheduler follows the saved state even after a crash; each
safety flag the turn raised travels as an AlertResearchers item, so the research team hears of it even then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from coach.bots.engine import run_turn
from coach.bots.turn import TurnInput, TurnResult
from coach.domain.arms import StudyArms, arm_of, default_study_arms
from coach.domain.decisions import UNCLASSIFIED_FEEDBACK, DecisionPoint, DecisionUpdate
from coach.domain.effects import AlertResearchers, ReconcileSchedules
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.flow import FlowState
from coach.domain.message import Direction, Message, ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.domain.reachability import Purpose
from coach.domain.schedules import changed_schedules, desired_schedules
from coach.domain.study_texts import DEFAULT_CONSENT_TEXTS, DEFAULT_CRISIS_TEXT, ConsentTexts
from coach.ports import Clock, ConversationStore, LanguageModel, LlmBudget, ParticipantStore, TurnReads
from coach.services.outbox import OutboxDispatcher, Saved

EventSink = Callable[[str, dict[str, object]], None]  # logs and metrics
MetricSink = Callable[[str, float], None]  # a metric and its value
TURN_ATTEMPTS = 8  # optimistic-locking rounds before the work goes back to its queue or retry policy
# Texts that belong to a decision point: they go out within its validity window or not at all.
_TIMED_PURPOSES = (Purpose.NUDGE, Purpose.REMINDER)


@dataclass(frozen=True)
class Loaded:
    """What a turn is decided on: the participant and its flow state as stored, the time, and what else the
    TurnReads asked for (the text the work answers, which of its work keys are done, outbox items)."""

    participant: Participant
    flow: FlowState
    now: datetime
    inbound: Message | None = None
    work_done: frozenset[str] = frozenset()
    outbox: Mapping[str, OutboxItem] = field(default_factory=dict)
    reads: TurnReads = field(default_factory=TurnReads)


@dataclass
class PlannedTurn:
    """What one decision saves, in one transaction. `flow` is the complete new state, at the loaded version."""

    key: str  # derives the outbox keys: a recomputed or redelivered turn has the same ones
    flow: FlowState
    answered: Sequence[Message] = ()
    work_key: str | None = None
    outbox: list[OutboxItem] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    events: list[ResearchEvent] = field(default_factory=list)
    coach: str = "none"  # who wrote the texts: llm, offline or none
    decisions: list[DecisionPoint] = field(default_factory=list)  # decision points this turn decided
    decision_updates: list[DecisionUpdate] = field(default_factory=list)  # what happened to earlier ones


@dataclass
class TurnRunner:
    """Runs the engine for a turn with this function's LLM and the study's settings: the participant's daily
    LLM calls and tokens, the study's daily token budget, and the time the invocation has left."""

    language_model: Callable[[], LanguageModel | None] = lambda: None  # built lazily: importing openai is slow
    segment_budget: int = 2
    daily_llm_calls: int = 40
    daily_llm_tokens: int | None = None
    study_daily_tokens: int | None = None  # None or 0: no study-wide budget
    budget: LlmBudget | None = None
    intensity_check: bool = False
    crisis_text: str = DEFAULT_CRISIS_TEXT
    consent_texts: ConsentTexts = DEFAULT_CONSENT_TEXTS
    arms: StudyArms = field(default_factory=default_study_arms)
    on_event: EventSink = lambda kind, data: None
    on_metric: MetricSink = lambda name, value: None

    def run(self, turn: TurnInput, time_left: Callable[[], float] | None = None) -> TurnResult:
        llm = self.language_model()
        day = turn.now.astimezone(UTC).date().isoformat()
        arm = arm_of(self.arms, turn.participant.study_arm)
        off = "arm_offline_coach" if llm is not None and arm is not None and not arm.coach_is_llm(True) else None
        intensity = arm.intensity_check_on(self.intensity_check) if arm is not None else self.intensity_check
        budget, cap = self.budget, self.study_daily_tokens
        if off is None and llm is not None and budget is not None and cap and budget.spent(day) >= cap:
            off = "study_daily_token_budget"
            self.on_event("llm_study_budget_spent", {"participant_id": turn.participant.id, "day": day})
        turn = turn.model_copy(
            update={
                "intensity_check": intensity,
                "daily_llm_calls": self.daily_llm_calls,
                "daily_llm_tokens": self.daily_llm_tokens,
                "llm_off_reason": off,
                "crisis_text": self.crisis_text,
                "consent_texts": self.consent_texts,
            }
        )
        result = run_turn(turn, llm=llm, segment_budget=self.segment_budget, time_left=time_left)
        self._report(turn, result, day)
        return result

    def _report(self, turn: TurnInput, result: TurnResult, day: str) -> None:
        """Metrics of what the LLM cost and why it was not used, and the study's budget spent."""
        for event in result.events:
            if event.kind == "llm_usage":
                tokens = int(event.data["prompt_tokens"]) + int(event.data["completion_tokens"])
                self.on_metric("LlmCalls", float(event.data["calls"]))
                self.on_metric("LlmTokens", float(tokens))
                if self.budget is not None and tokens:
                    self.budget.add(day, tokens)
            elif event.kind == "llm_fallback":
                self.on_metric(f"LlmFallback_{event.data.get('kind', 'unavailable')}", 1.0)
            elif event.kind == "llm_daily_cap":
                self.on_event("llm_daily_cap", {"participant_id": turn.participant.id})
            elif event.kind == "safety_flag":  # in the log at once (the alert follows through the outbox)
                data = {"participant_id": turn.participant.id, **event.data}
                self.on_event("safety_flag", data)


def planned_turn(
    result: TurnResult,
    loaded: Loaded,
    key: str,
    *,
    answered: Sequence[Message] = (),
    work_key: str | None = None,
    events: Sequence[ResearchEvent] = (),
    valid_until: datetime | None = None,
    decision_id: str | None = None,
) -> PlannedTurn:
    """The engine's result as a turn to save: its texts as outbox items and transcript messages (keys derive
    from `key`; who wrote them on record), `valid_until` and `decision_id` on those of a decision point, and
    what the turn's events tell the ledger of earlier decision points (a reply, a reminder, an expiry)."""
    pid = loaded.participant.id
    usage = next((e.data for e in result.events if e.kind == "llm_usage"), None)
    written_by: dict[str, Any] = {"coach": result.coach}
    if result.coach == "llm" and usage is not None:
        models = usage.get("models") or []
        written_by.update(llm_model=models[-1] if models else None, prompt_version=usage.get("prompt_version"))
    outbox: list[OutboxItem] = []
    messages: list[Message] = []
    for n, text in enumerate(result.texts):
        item_key = f"{key}#{n}"
        timed = text.purpose in _TIMED_PURPOSES
        outbox.append(
            OutboxItem(
                participant_id=pid,
                key=item_key,
                kind=OutboxKind.SMS,
                created_at=loaded.now,
                to=loaded.participant.phone_number,
                body=text.text,
                purpose=text.purpose,
                valid_until=valid_until if timed else None,
                decision_id=decision_id if text.purpose is Purpose.NUDGE else None,
            )
        )
        messages.append(
            Message(
                participant_id=pid,
                message_id=item_key,
                direction=Direction.OUTBOUND,
                body=text.text,
                at=loaded.now,
                status="pending",
                **written_by,
            )
        )
    return PlannedTurn(
        key=key,
        flow=result.flow,
        answered=answered,
        work_key=work_key,
        outbox=outbox,
        messages=messages,
        events=[*events, *result.events],
        coach=result.coach,
        decision_updates=ledger_updates(pid, result.events),
    )


def ledger_updates(participant_id: str, events: Sequence[ResearchEvent]) -> list[DecisionUpdate]:
    """What a turn's events tell the decision-point ledger: the proximal outcome of a reply (and what it said of
    the habit), a reminder sent, a nudge expired."""
    updates: list[DecisionUpdate] = []
    feedback = next((e.data.get("kind") for e in events if e.kind == "feedback_classified"), None)
    for event in events:
        data = event.data
        if event.kind == "proximal_outcome":
            changes: dict[str, Any] = {
                "replied": True,
                "replied_at": data["replied_at"],
                "reply_minutes": data["minutes"],
            }
            changes["feedback_kind"] = feedback or UNCLASSIFIED_FEEDBACK
            updates.append(
                DecisionUpdate(participant_id=participant_id, decision_id=data["decision_id"], changes=changes)
            )
        elif event.kind == "reminder_sent":
            updates.append(
                DecisionUpdate(
                    participant_id=participant_id, decision_id=data["nudge_key"], changes={"reminder_sent": True}
                )
            )
        elif event.kind == "nudge_expired" and data.get("purpose") == Purpose.NUDGE.value and data.get("key"):
            changes = {"expired": True, "cancelled_reason": data.get("reason")}
            updates.append(DecisionUpdate(participant_id=participant_id, decision_id=data["key"], changes=changes))
    return updates


@dataclass
class SavedTurns:
    """The unit of work: `run(participant_id, decide)` loads, lets `decide` plan the turn, saves it and
    finishes the outbox. `decide` may raise AlreadyDone (nothing to save) or Conflict (decide again)."""

    participants: ParticipantStore
    conversation: ConversationStore
    outbox: OutboxDispatcher
    clock: Clock
    on_event: EventSink = lambda kind, data: None

    def run(
        self,
        participant_id: str,
        decide: Callable[[Loaded], PlannedTurn],
        *,
        reads: TurnReads | None = None,
        work_id: str | None = None,
    ) -> bool:
        """False when the participant does not exist (deleted meanwhile): nothing to do, nothing to retry.

        `reads`: what `decide` needs besides the participant and its flow state, read with them. `work_id`:
        the queued work or firing this run is for (its outbox items are this run's to recover)."""
        reads = reads or TurnReads()
        saved: Saved | None = None
        repeated = False
        open_keys: frozenset[str] = frozenset()
        for attempt in range(TURN_ATTEMPTS):
            try:
                stored = self.conversation.load_turn(participant_id, reads)
            except NotFound:
                return False
            open_keys = stored.open_outbox
            loaded = Loaded(
                stored.participant,
                stored.flow,
                self.clock.now(),
                inbound=stored.inbound,
                work_done=stored.work_done,
                outbox=stored.outbox,
                reads=reads,
            )
            try:
                plan = decide(loaded)
                saved = self._save(loaded, plan, work_id)
                texts = sum(1 for item in plan.outbox if item.kind is OutboxKind.SMS)
                self.on_event("turn_saved", {"participant_id": participant_id, "coach": plan.coach, "texts": texts})
                break
            except AlreadyDone:
                repeated = True
                break
            except Conflict:
                if attempt == TURN_ATTEMPTS - 1:
                    raise
                self.on_event("turn_conflict", {"participant_id": participant_id, "attempt": attempt + 1})
        # What this turn saved, and whatever earlier work left open (a crash, a Twilio outage): whoever runs
        # next for the participant finishes it.
        self.outbox.flush(participant_id, saved, open_keys=open_keys, look_for_open=repeated, work_id=work_id)
        return True

    def work_done(self, loaded: Loaded, work_key: str) -> bool:
        """Whether this piece of work was done: from the load when it read the key (else one more read)."""
        if work_key in loaded.reads.work_keys:
            return work_key in loaded.work_done
        return self.conversation.work_done(loaded.participant.id, work_key)

    def _save(self, loaded: Loaded, plan: PlannedTurn, work_id: str | None) -> Saved:
        if plan.flow.version != loaded.flow.version:
            raise ValueError("a planned turn must carry the loaded flow version")  # a bug, not a race
        # Each text is saved as being sent, its first attempt beginning now: no write of its own before the send.
        outbox = [
            item.begin_attempt(loaded.now).model_copy(update={"work_id": work_id})
            if item.kind is OutboxKind.SMS
            else item.model_copy(update={"work_id": work_id})
            for item in plan.outbox
        ]
        before = desired_schedules(loaded.participant, loaded.flow, loaded.now)
        after = desired_schedules(loaded.participant, plan.flow, loaded.now)
        effects: list[tuple[str, ReconcileSchedules | AlertResearchers]] = []
        if names := changed_schedules(before, after):
            effects.append(("schedules", ReconcileSchedules(names=names)))
        for n, flag in enumerate(e for e in plan.events if e.kind == "safety_flag"):
            alert = AlertResearchers(category=flag.data["category"], rule=flag.data["rule"], flagged_at=flag.at)
            effects.append((f"alert{n}", alert))
        outbox += [
            OutboxItem(
                participant_id=loaded.participant.id,
                key=f"{plan.key}#{suffix}",
                kind=OutboxKind.EFFECT,
                created_at=loaded.now,
                effect=effect.model_dump(mode="json"),
                work_id=work_id,
            )
            for suffix, effect in effects
        ]
        stored = self.conversation.save_turn(
            plan.flow,
            participant=loaded.participant,
            answered=plan.answered,
            work_key=plan.work_key,
            outbox=outbox,
            messages=plan.messages,
            events=plan.events,
            decisions=plan.decisions,
            decision_updates=plan.decision_updates,
        )
        return Saved(loaded.participant, stored.flow, list(stored.outbox))
