"""The prompt generator's use cases, fired by EventBridge Scheduler: the daily nudge (a recorded decision at
every decision point), its follow-up reminder, delayed conversation transitions, and the daily watchdog.

Each firing is one saved turn (coach.services.turns), keyed (nudge#<participant>#<local date>,
reminder#<nudge>, transition#<id>): the key is saved in the same transaction as the state and the outbox,
so a second or retried firing finds it and only finishes the outbox. A firing knows its slot (the time it
was due, from Scheduler's context attribute), so a late retry belongs to the right day and a nudge that
cannot go out within its validity window is recorded as expired instead of sent late.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator, model_validator

from coach.bots.turn import Firing, TurnEvent, TurnInput, TurnResult
from coach.domain.arms import StudyArms, arm_of, default_study_arms
from coach.domain.decisions import DecisionPoint, DecisionUpdate
from coach.domain.errors import AlreadyDone
from coach.domain.flow import FlowState, SubState
from coach.domain.message import ResearchEvent
from coach.domain.nudges import NudgeDecision, decide, last_slot, local_now, recent_slots
from coach.domain.outbox import OutboxState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.reachability import Purpose, QuietHours
from coach.domain.schedules import daily_schedule_name, desired_schedules, schedule_names
from coach.ports import Clock, ConversationStore, ParticipantStore, Scheduler, TurnReads
from coach.services.schedules import reconcile
from coach.services.turns import EventSink, Loaded, PlannedTurn, SavedTurns, TurnRunner, planned_turn

WATCHDOG_PAGE = 100
WATCHED_SLOTS = 2  # the last two closed slots: a DST day or a late watchdog skips none


class ScheduledEvent(BaseModel):
    """The input a schedule gives the prompt generator."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["daily_nudge", "reminder", "transition", "watchdog"]
    participant_id: str | None = None  # every kind but the watchdog
    nudge_key: str | None = None  # reminder: the nudge it follows up
    to_sub_state: SubState | None = None  # transition: where the conversation goes
    transition_id: str | None = None  # transition: which pending transition (a newer one replaces it)
    scheduled_time: AwareDatetime | None = None  # when the firing was due (Scheduler fills it in)

    @field_validator("scheduled_time", mode="before")
    @classmethod
    def _unfilled_is_unknown(cls, value: Any) -> Any:
        # "<aws.scheduler.scheduled-time>" reaches us unreplaced only from a hand-made event (sam local).
        return None if isinstance(value, str) and value.startswith("<") else value

    @model_validator(mode="after")
    def _participant_unless_watchdog(self) -> Self:
        if self.kind != "watchdog" and not self.participant_id:
            raise ValueError(f"a {self.kind} firing needs participant_id")
        return self

    def firing_id(self) -> str:
        """Same firing, same id: a retry of it (Lambda's asynchronous retries) knows the outbox items it saved."""
        due = self.scheduled_time.isoformat() if self.scheduled_time is not None else ""
        return f"{self.kind}#{self.participant_id}#{self.nudge_key or self.transition_id or ''}#{due}"

    def reads(self, now: datetime) -> TurnReads:
        """What the firing's turn reads with the participant and its flow state: whether it was done, and for a
        reminder its nudge. A daily nudge's key has the participant's local date, unknown before the read:
        the dates around the slot's UTC date cover every timezone."""
        pid = self.participant_id or ""
        if self.kind == "daily_nudge":
            day = (self.scheduled_time or now).astimezone(UTC).date()
            dates = [day + timedelta(days=n) for n in (-1, 0, 1)]
            return TurnReads(work_keys=[daily_nudge_key(pid, d.isoformat()) for d in dates])
        if self.kind == "reminder":
            return TurnReads(work_keys=[f"reminder#{self.nudge_key}"], outbox_keys=[f"{self.nudge_key}#0"])
        if self.kind == "transition" and self.transition_id:
            return TurnReads(work_keys=[f"transition#{self.transition_id}"])
        return TurnReads()


def daily_nudge_key(participant_id: str, local_date: str) -> str:
    """The daily nudge's key (and its decision point's id): one per participant and local date."""
    return f"nudge#{participant_id}#{local_date}"


@dataclass
class NudgeService:
    turns: SavedTurns
    participants: ParticipantStore
    conversation: ConversationStore
    scheduler: Scheduler
    clock: Clock
    coach: TurnRunner
    quiet_hours: QuietHours = field(default_factory=lambda: QuietHours.parse("21:00", "08:00"))
    reminder_delay: timedelta = timedelta(hours=5)
    probability: float = 1.0
    seed: str = ""
    validity: timedelta = timedelta(minutes=60)
    outcome_window: timedelta = timedelta(hours=5)  # a reply this long after a decision point is its outcome
    arms: StudyArms = field(default_factory=default_study_arms)  # an arm may change probability and reminders
    on_event: EventSink = lambda kind, data: None

    def fire(self, event: ScheduledEvent, time_left: Callable[[], float] | None = None) -> None:
        """One firing; `time_left`: seconds the LLM may still take in this invocation."""
        if event.kind == "watchdog":
            self.watch()
            return
        pid = event.participant_id or ""
        plans = {"daily_nudge": self._daily_nudge, "reminder": self._reminder, "transition": self._transition}
        plan = plans[event.kind]
        decide = partial(plan, event, time_left=time_left)
        if not self.turns.run(pid, decide, reads=event.reads(self.clock.now()), work_id=event.firing_id()):
            # A schedule outlived its participant (deleted meanwhile): remove them all, so none fires again.
            reconcile(self.scheduler, pid, {}, schedule_names(pid))
            self.on_event("participant_gone", {"participant_id": pid, "kind": event.kind})

    # -- firings ---------------------------------------------------------------------------------

    def _daily_nudge(
        self, event: ScheduledEvent, loaded: Loaded, time_left: Callable[[], float] | None = None
    ) -> PlannedTurn:
        participant, flow, now = loaded.participant, loaded.flow, loaded.now
        slot = event.scheduled_time or self._slot_of(participant, flow, now)
        arm = arm_of(self.arms, participant.study_arm)
        probability = arm.resolved_probability(self.probability) if arm is not None else self.probability
        reminder_minutes = int(self.reminder_delay.total_seconds() // 60)
        reminder_after = timedelta(
            minutes=arm.reminder_delay(reminder_minutes) if arm is not None else reminder_minutes
        )
        decision = decide(participant, flow, slot, self.quiet_hours, probability=probability, seed=self.seed)
        key = daily_nudge_key(participant.id, decision.local_date)
        self._once(loaded, key, event)
        recorded = ResearchEvent(
            participant_id=participant.id, kind="nudge_decision", at=now, data=decision.as_event_data()
        )
        row = ledger_row(participant, decision, key, now, self.outcome_window)
        if not decision.nudge:
            self.on_event("nudge_skipped", {"participant_id": participant.id, "reasons": decision.unavailable_reasons})
            return PlannedTurn(key=key, flow=flow, work_key=key, events=[recorded], decisions=[row])
        firing = Firing(
            key=key,
            slot=slot,
            valid_until=slot + self.validity,
            reminder_after=reminder_after if reminder_after > timedelta(0) else None,
            outcome_window=self.outcome_window,
        )
        result = self._run(loaded, TurnEvent.DAILY_NUDGE, firing, time_left=time_left)
        self.on_event("nudge_sent" if result.texts else "nudge_withheld", {"participant_id": participant.id})
        plan = planned_turn(
            result, loaded, key, work_key=key, events=[recorded], valid_until=firing.valid_until, decision_id=key
        )
        # What the turn says of this decision point goes into its row as written (one write of one item).
        own = [u for u in plan.decision_updates if u.decision_id == key]
        plan.decision_updates = [u for u in plan.decision_updates if u.decision_id != key]
        plan.decisions = [with_nudge(row, result, own)]
        return plan

    def _reminder(
        self, event: ScheduledEvent, loaded: Loaded, time_left: Callable[[], float] | None = None
    ) -> PlannedTurn:
        flow, now = loaded.flow, loaded.now
        nudge_key = event.nudge_key or ""
        key = f"reminder#{nudge_key}"
        self._once(loaded, key, event)
        pending = flow.pending_reminder
        due = pending.due_at if pending is not None and pending.nudge_key == nudge_key else now
        slot = event.scheduled_time or due
        firing = Firing(
            key=nudge_key,
            slot=slot,
            valid_until=slot + self.validity,
            nudge_sent=_went_out(loaded, nudge_key),
        )
        result = self._run(loaded, TurnEvent.REMINDER, firing, time_left=time_left)
        return planned_turn(result, loaded, key, work_key=key, valid_until=firing.valid_until)

    def _transition(
        self, event: ScheduledEvent, loaded: Loaded, time_left: Callable[[], float] | None = None
    ) -> PlannedTurn:
        flow, now = loaded.flow, loaded.now
        key = f"transition#{event.transition_id or now.isoformat()}"
        self._once(loaded, key, event)
        pending = flow.pending_transition
        slot = event.scheduled_time or now
        firing = Firing(key=key, slot=slot, valid_until=slot + self.validity, transition_id=event.transition_id)
        to = event.to_sub_state or (pending.to_sub_state if pending else SubState.FEEDBACK)
        result = self._run(loaded, TurnEvent.TRANSITION, firing, to, time_left=time_left)
        return planned_turn(result, loaded, key, work_key=key)

    def _run(
        self,
        loaded: Loaded,
        event: TurnEvent,
        firing: Firing,
        to: SubState | None = None,
        *,
        time_left: Callable[[], float] | None = None,
    ) -> TurnResult:
        """The engine's turn for a firing, with the study's quiet hours."""
        turn = TurnInput(
            flow=loaded.flow,
            participant=loaded.participant,
            now=loaded.now,
            event=event,
            to_sub_state=to,
            firing=firing,
            quiet_hours=self.quiet_hours,
        )
        return self.coach.run(turn, time_left)

    def _once(self, loaded: Loaded, key: str, event: ScheduledEvent) -> None:
        if self.turns.work_done(loaded, key):
            self.on_event("firing_repeated", {"participant_id": loaded.participant.id, "kind": event.kind})
            raise AlreadyDone(key)

    def _slot_of(self, participant: Participant, flow: FlowState, now: datetime) -> datetime:
        """The slot of a firing that does not say when it was due: the latest daily slot (else now)."""
        if flow.daily_schedule is None:
            return now
        return last_slot(flow.daily_schedule.time, participant.timezone, now)

    # -- the watchdog ----------------------------------------------------------------------------

    def watch(self) -> int:
        """Once a day: record `decision_missed` for every active, consented participant past intake whose
        last closed slots have no decision point, and repair their schedules. The number found."""
        now = self.clock.now()
        checked = missed = failed = 0
        token: str | None = None
        while True:
            page = self.participants.list_participants(
                status=ParticipantStatus.ACTIVE, limit=WATCHDOG_PAGE, next_token=token
            )
            for participant in page.items:
                checked += 1
                try:
                    missed += self._watch(participant.id, now)
                except Exception as exc:  # one participant's fault must not hide the others'
                    failed += 1
                    self.on_event(
                        "watchdog_check_failed", {"participant_id": participant.id, "error": type(exc).__name__}
                    )
            token = page.next_token
            if not token:
                break
        self.on_event("watchdog_ran", {"checked": checked, "missed": missed, "failed": failed})
        return missed

    def _watch(self, participant_id: str, now: datetime) -> int:
        stored = self.conversation.load_turn(participant_id)
        participant, flow = stored.participant, stored.flow
        missing = self._missing_slots(participant, flow, now)
        if not missing:
            return 0
        reason = self._why_missing(participant, flow, now)
        for slot in missing:
            local = local_now(slot, participant.timezone)
            key = daily_nudge_key(participant_id, local.date().isoformat())
            data = {
                "local_date": local.date().isoformat(),
                "local_time": local.strftime("%H:%M"),
                "timezone": participant.timezone,
                "slot": slot.isoformat(),
                "reason": reason,
            }
            missed = ResearchEvent(participant_id=participant_id, kind="decision_missed", at=now, data=data)
            # Saved under the decision point's own key: a very late firing of it now finds it done.
            record = partial(self._record_missed, key=key, missed=missed)
            self.turns.run(participant_id, record, reads=TurnReads(work_keys=[key]), work_id=f"missed#{key}")
            self.on_event("decision_missed", {"participant_id": participant_id, **data})
        changes = reconcile(self.scheduler, participant_id, desired_schedules(participant, flow, now))
        self.on_event(
            "schedules_repaired",
            {"participant_id": participant_id, "changes": [f"{c.change.value}:{c.name}:{c.why}" for c in changes]},
        )
        return len(missing)

    def _record_missed(self, loaded: Loaded, *, key: str, missed: ResearchEvent) -> PlannedTurn:
        if self.turns.work_done(loaded, key):
            raise AlreadyDone(key)  # decided meanwhile (or recorded by an earlier watchdog run)
        data = missed.data
        row = DecisionPoint(
            decision_id=key,
            participant_id=loaded.participant.id,
            arm=loaded.participant.study_arm,
            scheduled_at=datetime.fromisoformat(str(data["slot"])),
            local_date=str(data["local_date"]),
            local_time=str(data["local_time"]),
            timezone=str(data["timezone"]),
            available=False,
            unavailable_reasons=["missed"],
            probability=self.probability,
            decision="no_nudge",
            missed=True,
            missed_reason=str(data["reason"]),
            created_at=loaded.now,
            updated_at=loaded.now,
        )
        return PlannedTurn(key=f"missed#{key}", flow=loaded.flow, work_key=key, events=[missed], decisions=[row])

    def _missing_slots(self, participant: Participant, flow: FlowState, now: datetime) -> list[datetime]:
        """The participant's last closed slots (their window is over) that should have a decision and have none."""
        schedule = flow.daily_schedule
        if flow.consent is not True or flow.sub_state is SubState.INTAKE or schedule is None:
            return []
        floor = max(schedule.since or participant.enrolled_at, participant.enrolled_at)
        missing = []
        for slot in recent_slots(schedule.time, participant.timezone, now - self.validity, WATCHED_SLOTS):
            key = daily_nudge_key(participant.id, local_now(slot, participant.timezone).date().isoformat())
            if slot >= floor and not self.conversation.work_done(participant.id, key):
                missing.append(slot)
        return sorted(missing)

    def _why_missing(self, participant: Participant, flow: FlowState, now: datetime) -> str:
        name = daily_schedule_name(participant.id)
        existing = self.scheduler.get(name)
        if existing is None:
            return "schedule_missing"
        if existing.spec != desired_schedules(participant, flow, now).get(name):
            return "schedule_differs"
        if not existing.in_order:
            return "schedule_disabled_or_retargeted"
        return "firing_failed"  # the schedule is right: its firing failed (see the nudge dead-letter queue)


def _went_out(loaded: Loaded, nudge_key: str) -> bool:
    """Whether the nudge a reminder follows was handed to Twilio (a reminder of a nudge never sent is not)."""
    item = loaded.outbox.get(f"{nudge_key}#0")
    return item is not None and item.state is OutboxState.SENT


def ledger_row(
    participant: Participant, decision: NudgeDecision, key: str, now: datetime, outcome_window: timedelta
) -> DecisionPoint:
    """The decision point as the ledger records it when it is decided."""
    return DecisionPoint(
        decision_id=key,
        participant_id=participant.id,
        arm=participant.study_arm,
        scheduled_at=decision.slot,
        local_date=decision.local_date,
        local_time=decision.local_time,
        timezone=decision.timezone,
        available=decision.available,
        unavailable_reasons=list(decision.unavailable_reasons),
        probability=decision.probability,
        draw=round(decision.draw, 6),
        decision="nudge" if decision.nudge else "no_nudge",
        outcome_window_minutes=int(outcome_window.total_seconds() // 60),
        created_at=now,
        updated_at=now,
    )


def with_nudge(row: DecisionPoint, result: TurnResult, updates: list[DecisionUpdate]) -> DecisionPoint:
    """The row with the nudge the turn wrote: its text, who wrote it and at what cost (sending comes later)."""
    changes: dict[str, Any] = {}
    nudges = [t for t in result.texts if t.purpose is Purpose.NUDGE]
    if nudges:
        changes.update(message_id=f"{row.decision_id}#{result.texts.index(nudges[0])}", text=nudges[0].text)
        changes["coach"] = result.coach
    elif row.decision == "nudge":  # decided on, yet no text came: why is on the row, never a blank
        withheld = [e.data.get("reason") for e in result.events if e.kind == "message_withheld"]
        changes["cancelled_reason"] = withheld[0] if withheld and withheld[0] else "no_nudge_written"
    usage = next((e.data for e in result.events if e.kind == "llm_usage"), None)
    if usage is not None and result.coach == "llm":
        models = usage.get("models") or []
        changes.update(
            llm_model=models[-1] if models else None,
            prompt_version=usage.get("prompt_version"),
            prompt_hash=usage.get("prompt_hash"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
    for update in updates:
        changes.update(update.changes)
    return row.model_copy(update=changes)
