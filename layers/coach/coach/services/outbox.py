"""Carry out what turns and nudges saved in the outbox: send SMS, change schedules, mark each done.

Every item was saved in the same transaction as the state that produced it, so here we only finish
work. Each step is conditional on the item's state, so two runners never both send an item; an item
found `sending` (an attempt began, then the runner died) is first looked up at Twilio, so a message
that got through is not sent again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pydantic import TypeAdapter

from coach.domain.effects import (
    CancelReminder,
    DeleteSchedule,
    OutboxEffect,
    ScheduleDaily,
    ScheduleReminder,
    ScheduleTransition,
)
from coach.domain.errors import Conflict, DeliveryRejected, NotFound
from coach.domain.message import ResearchEvent
from coach.domain.outbox import OutboxItem, OutboxKind, OutboxState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.schedules import transition_schedule_name
from coach.ports import Clock, ConversationStore, ParticipantStore, Scheduler, SentSms, SmsSender
from coach.services.opt_out import set_opted_out

_EFFECT: TypeAdapter[OutboxEffect] = TypeAdapter(OutboxEffect)
# Twilio's clock and ours differ a little; look a bit before the attempt for what it may have sent.
_CLOCK_SKEW = timedelta(minutes=2)
_SILENT_STATUSES = (ParticipantStatus.WITHDRAWN, ParticipantStatus.COMPLETED)


def may_text(participant: Participant | None) -> str | None:
    """Why this participant must get no SMS now, or None. Paused participants still get replies."""
    if participant is None:
        return "deleted"
    if participant.opted_out:
        return "opted_out"
    if participant.status in _SILENT_STATUSES:
        return participant.status.value
    return None


@dataclass
class OutboxDispatcher:
    participants: ParticipantStore
    conversation: ConversationStore
    sender: SmsSender
    scheduler: Scheduler
    clock: Clock

    def flush(self, participant_id: str, just_saved: Sequence[OutboxItem] = ()) -> None:
        """Finish every open item of the participant, oldest first.

        `just_saved` names items this runner has just written: the index that finds open items may lag a
        moment behind a write. Raises DeliveryUnavailable (or a scheduler error) for the caller to retry.
        """
        keys = {item.key: item for item in [*self.conversation.open_outbox(participant_id), *just_saved]}
        for item in sorted(keys.values(), key=lambda i: (i.created_at, i.key)):
            fresh = self.conversation.get_outbox_item(participant_id, item.key)
            if fresh is None or not fresh.open:
                continue
            try:
                if fresh.kind is OutboxKind.SMS:
                    self._send(fresh)
                else:
                    self._carry_out(fresh)
            except Conflict:
                continue  # another runner moved this item meanwhile: it is theirs to finish

    def _send(self, item: OutboxItem) -> None:
        participant = self._participant(item.participant_id)
        if (reason := may_text(participant)) is not None:
            self._finish(item, OutboxState.CANCELLED, events=[self._event(item, "message_cancelled", reason=reason)])
            return
        assert participant is not None
        assert item.body is not None
        to = participant.phone_number  # the number now: a researcher may have corrected it
        if item.state is OutboxState.SENDING and item.attempted_at is not None:
            earlier = self.sender.find_sent(to, item.body, item.attempted_at - _CLOCK_SKEW)
            if earlier is not None:
                self._finish(item, OutboxState.SENT, sent=earlier)
                return
        started = self.conversation.begin_attempt(item, self.clock.now())
        try:
            sent = self.sender.send(to, item.body)
        except DeliveryRejected as exc:
            self._rejected(started, participant, exc)
            return
        self._finish(started, OutboxState.SENT, sent=sent)

    def _rejected(self, item: OutboxItem, participant: Participant, exc: DeliveryRejected) -> None:
        event = self._event(item, "delivery_failed", error_code=exc.code)
        self._finish(item, OutboxState.FAILED, error_code=exc.code, events=[event])
        if exc.code == DeliveryRejected.OPTED_OUT:
            data = {"error_code": exc.code, "outbox_key": item.key}
            set_opted_out(self.participants, participant.id, True, self.clock, data, known=participant)

    def _carry_out(self, item: OutboxItem) -> None:
        effect = _EFFECT.validate_python(item.effect or {})
        pid = item.participant_id
        if isinstance(effect, ScheduleDaily):
            self.scheduler.put_daily(pid, effect.time, effect.timezone)
        elif isinstance(effect, DeleteSchedule):
            self.scheduler.delete_daily(pid)
        elif isinstance(effect, ScheduleTransition):
            name = transition_schedule_name(pid, item.key)
            # The name travels with the firing: it keys the transition, so a repeated firing runs it once.
            payload = {
                "participant_id": pid,
                "kind": "transition",
                "to_sub_state": effect.to_sub_state.value,
                "schedule_name": name,
            }
            self.scheduler.put_once(name, item.created_at + timedelta(minutes=effect.delay_minutes), payload)
        elif isinstance(effect, ScheduleReminder):
            payload = {"participant_id": pid, "kind": "reminder", "nudge_key": effect.nudge_key}
            self.scheduler.put_once(effect.schedule_name, effect.at, payload)
        elif isinstance(effect, CancelReminder) and effect.schedule_name:
            self.scheduler.delete_once(effect.schedule_name)
        self._finish(item, OutboxState.SENT)

    def _finish(
        self,
        item: OutboxItem,
        state: OutboxState,
        *,
        sent: SentSms | None = None,
        error_code: int | None = None,
        events: Sequence[ResearchEvent] = (),
    ) -> None:
        self.conversation.finish_outbox_item(
            item, state, self.clock.now(), sent=sent, error_code=error_code, events=events
        )

    def _participant(self, participant_id: str) -> Participant | None:
        try:
            return self.participants.get_participant(participant_id)
        except NotFound:
            return None

    def _event(self, item: OutboxItem, kind: str, **data: object) -> ResearchEvent:
        return ResearchEvent(
            participant_id=item.participant_id, kind=kind, at=self.clock.now(), data={"outbox_key": item.key, **data}
        )
