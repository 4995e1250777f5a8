"""The prompt generator's use cases, fired by EventBridge Scheduler: the daily nudge (a recorded decision
at every decision point), its follow-up reminder, and delayed conversation transitions.

Each firing is keyed (nudge#<participant>#<local date>, reminder#<nudge>, transition#<schedule>), and the
key is saved in the same transaction as the state and the outbox: a second firing finds it and stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.effects import ScheduleReminder
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.flow import FlowState, PendingReminder, SubState
from coach.domain.message import ResearchEvent
from coach.domain.nudges import QuietHours, decide, reminder_unavailable
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.domain.schedules import one_time_schedule_name
from coach.ports import Clock, ConversationStore, ParticipantStore, Scheduler
from coach.services.outbox import OutboxDispatcher
from coach.services.turns import EventSink, TurnRunner, outbox_for_turn

FIRE_ATTEMPTS = 8


class ScheduledEvent(BaseModel):
    """The input a schedule gives the prompt generator."""

    model_config = ConfigDict(extra="ignore")

    participant_id: str
    kind: Literal["daily_nudge", "reminder", "transition"]
    nudge_key: str | None = None  # reminder: the nudge it follows up
    to_sub_state: SubState | None = None  # transition: where the conversation goes
    schedule_name: str | None = None  # transition: which schedule fired (its key)


@dataclass
class NudgeService:
    participants: ParticipantStore
    conversation: ConversationStore
    outbox: OutboxDispatcher
    scheduler: Scheduler
    clock: Clock
    turns: TurnRunner
    quiet_hours: QuietHours = field(default_factory=lambda: QuietHours.parse("21:00", "08:00"))
    reminder_delay: timedelta = timedelta(hours=5)
    probability: float = 1.0
    seed: str = ""
    on_event: EventSink = lambda kind, data: None

    def fire(self, event: ScheduledEvent) -> None:
        pid = event.participant_id
        saved: list[OutboxItem] = []
        for attempt in range(FIRE_ATTEMPTS):
            try:
                participant = self.participants.get_participant(pid)
            except NotFound:
                self._forget_schedules_of(pid)
                return
            try:
                saved = self._fire(event, participant)
                break
            except AlreadyDone:
                self.on_event("firing_repeated", {"participant_id": pid, "kind": event.kind})
                break
            except Conflict:
                if attempt == FIRE_ATTEMPTS - 1:
                    raise
        self.outbox.flush(pid, saved)

    def _fire(self, event: ScheduledEvent, participant: Participant) -> list[OutboxItem]:
        flow = self.participants.get_flow_state(participant.id)
        now = self.clock.now()
        if event.kind == "daily_nudge":
            return self._daily_nudge(participant, flow, now)
        if event.kind == "reminder":
            return self._reminder(participant, flow, now, event.nudge_key or "")
        return self._transition(participant, flow, now, event)

    def _daily_nudge(self, participant: Participant, flow: FlowState, now: datetime) -> list[OutboxItem]:
        decision = decide(participant, flow, now, self.quiet_hours, probability=self.probability, seed=self.seed)
        key = f"nudge#{participant.id}#{decision.local_date}"
        if self.conversation.work_done(participant.id, key):
            raise AlreadyDone(key)
        recorded = ResearchEvent(
            participant_id=participant.id, kind="nudge_decision", at=now, data=decision.as_event_data()
        )
        if not decision.nudge:
            self.conversation.save_turn(flow, work_key=key, events=[recorded])
            self.on_event("nudge_skipped", {"participant_id": participant.id, "reasons": decision.unavailable_reasons})
            return []
        result = self.turns.run(
            TurnInput(flow=flow, participant=participant, now=now, event=TurnEvent.DAILY_NUDGE), participant
        )
        outbox, messages = outbox_for_turn(result, participant, key, now)
        new_flow = result.flow.model_copy(update={"version": flow.version})
        if result.replies:
            profile = new_flow.user_profile
            if profile.total_prompts == flow.user_profile.total_prompts:  # an LLM turn may not count it
                profile.total_prompts += 1
            profile.last_prompt_sent_at = now
            new_flow.sub_state = SubState.FEEDBACK
            if self.reminder_delay > timedelta(0):
                outbox.append(self._reminder_item(participant.id, key, now, new_flow))
        self.conversation.save_turn(
            new_flow, work_key=key, outbox=outbox, messages=messages, events=[recorded, *result.events]
        )
        self.on_event("nudge_sent" if result.replies else "nudge_withheld", {"participant_id": participant.id})
        return outbox

    def _reminder_item(self, participant_id: str, nudge_key: str, now: datetime, flow: FlowState) -> OutboxItem:
        due = now + self.reminder_delay
        name = one_time_schedule_name(participant_id, f"reminder#{nudge_key}")
        flow.pending_reminder = PendingReminder(nudge_key=nudge_key, due_at=due, schedule_name=name)
        effect = ScheduleReminder(at=due, nudge_key=nudge_key, schedule_name=name)
        return OutboxItem(
            participant_id=participant_id,
            key=f"{nudge_key}#reminder",
            kind=OutboxKind.EFFECT,
            created_at=now,
            effect=effect.model_dump(mode="json"),
        )

    def _reminder(self, participant: Participant, flow: FlowState, now: datetime, nudge_key: str) -> list[OutboxItem]:
        key = f"reminder#{nudge_key}"
        if self.conversation.work_done(participant.id, key):
            raise AlreadyDone(key)
        pending = flow.pending_reminder
        # Answered (or superseded by a newer nudge): nothing to remind of. Paused, opted out, or the night
        # now (a reminder is never the time they chose): not now.
        reason = "answered" if pending is None or pending.nudge_key != nudge_key else None
        reason = reason or reminder_unavailable(participant, now, self.quiet_hours)
        if reason is not None:
            skipped = ResearchEvent(
                participant_id=participant.id,
                kind="reminder_skipped",
                at=now,
                data={"nudge_key": nudge_key, "reason": reason},
            )
            if pending is not None and pending.nudge_key == nudge_key:
                flow = flow.model_copy(update={"pending_reminder": None})
            self.conversation.save_turn(flow, work_key=key, events=[skipped])
            return []
        turn = TurnInput(flow=flow, participant=participant, now=now, event=TurnEvent.REMINDER)
        return self._save(turn, participant, key, now)

    def _transition(
        self, participant: Participant, flow: FlowState, now: datetime, event: ScheduledEvent
    ) -> list[OutboxItem]:
        key = f"transition#{event.schedule_name or now.isoformat()}"
        if self.conversation.work_done(participant.id, key):
            raise AlreadyDone(key)
        to = event.to_sub_state or SubState.FEEDBACK
        turn = TurnInput(flow=flow, participant=participant, now=now, event=TurnEvent.TRANSITION, to_sub_state=to)
        return self._save(turn, participant, key, now)

    def _save(self, turn: TurnInput, participant: Participant, key: str, now: datetime) -> list[OutboxItem]:
        result = self.turns.run(turn, participant)
        outbox, messages = outbox_for_turn(result, participant, key, now)
        new_flow = result.flow.model_copy(update={"version": turn.flow.version})
        self.conversation.save_turn(new_flow, work_key=key, outbox=outbox, messages=messages, events=result.events)
        return outbox

    def _forget_schedules_of(self, participant_id: str) -> None:
        """A schedule outlived its participant (deleted meanwhile): remove it, so it stops firing."""
        self.scheduler.delete_daily(participant_id)
        self.on_event("participant_gone", {"participant_id": participant_id})
