"""The conversation function's use case: one turn per piece of queued work, exactly once, then the outbox.

The turn is computed from stored state, saved in one transaction with everything it wants done, and
only then carried out (OutboxDispatcher). A lost race reloads and computes again; work found saved
already (a redelivery) only finishes the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.message import Message
from coach.domain.outbox import OutboxItem
from coach.domain.participant import Participant
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import Clock, ConversationStore, ParticipantStore
from coach.services.outbox import OutboxDispatcher
from coach.services.turns import EventSink, TurnRunner, outbox_for_turn

TURN_ATTEMPTS = 8  # optimistic-locking rounds before the work goes back to the queue


@dataclass
class ConversationService:
    participants: ParticipantStore
    conversation: ConversationStore
    outbox: OutboxDispatcher
    clock: Clock
    turns: TurnRunner
    max_texts_per_turn: int = 10
    on_event: EventSink = lambda kind, data: None

    def handle(self, work: ConversationWork) -> None:
        """Run the turn this work asks for unless it was saved before, then finish the participant's outbox."""
        pid = work.participant_id
        saved: list[OutboxItem] = []
        for attempt in range(TURN_ATTEMPTS):
            try:
                participant = self.participants.get_participant(pid)
            except NotFound:
                self.on_event("participant_gone", {"participant_id": pid, "work": work.kind.value})
                return  # deleted: nothing to answer, and no reason to retry
            try:
                saved = self._turn(work, participant)
                break
            except AlreadyDone:
                break
            except Conflict:
                if attempt == TURN_ATTEMPTS - 1:
                    raise
                self.on_event("turn_conflict", {"participant_id": pid, "attempt": attempt + 1})
        self.outbox.flush(pid, saved)

    def _turn(self, work: ConversationWork, participant: Participant) -> list[OutboxItem]:
        pid = participant.id
        flow = self.participants.get_flow_state(pid)
        now = self.clock.now()
        answered: list[Message] = []
        work_key: str | None = None
        if work.kind is WorkKind.INBOUND:
            answered = self._texts_to_answer(pid, work.message_id or "")
            if not answered:
                raise AlreadyDone(f"text {work.message_id} was answered already")
            turn_key = answered[-1].message_id
            turn = TurnInput(flow=flow, participant=participant, now=now, texts=[m.body for m in answered])
        else:
            work_key = work.deduplication_id()
            if self.conversation.work_done(pid, work_key):
                raise AlreadyDone(f"work {work_key} was done already")
            turn_key = work_key
            event = TurnEvent.ENROLLED if work.kind is WorkKind.ENROLLED else TurnEvent.RESET
            turn = TurnInput(flow=flow, participant=participant, now=now, event=event)
        result = self.turns.run(turn, participant)
        outbox, messages = outbox_for_turn(result, participant, turn_key, now)
        new_flow = result.flow.model_copy(update={"version": flow.version})
        if answered:
            new_flow = new_flow.model_copy(update={"last_processed_inbound": answered[-1].message_id})
        self.conversation.save_turn(
            new_flow, answered=answered, work_key=work_key, outbox=outbox, messages=messages, events=result.events
        )
        self.on_event("turn_saved", {"participant_id": pid, "coach": result.coach, "replies": len(result.replies)})
        return outbox

    def _texts_to_answer(self, participant_id: str, message_id: str) -> list[Message]:
        """This work's text and every other text still waiting, oldest first: quick texts form one turn."""
        own = self.conversation.inbound_message(participant_id, message_id)
        if own is None or own.turn is not None:
            return []
        waiting = self.conversation.unanswered_inbound(participant_id, self.max_texts_per_turn)
        # The oldest waiting texts first, and always this work's own: this turn consumes its work, so leaving
        # it out would leave it unanswered. Newer texts wait for their own work.
        others = [m for m in waiting if m.message_id != own.message_id][: self.max_texts_per_turn - 1]
        return sorted([*others, own], key=lambda m: (m.at, m.message_id))
