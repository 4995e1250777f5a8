"""The conversation function's use case: one turn per piece of queued work, exactly once, then the outbox.

The turn is one saved turn (coach.services.turns): computed from stored state, saved in one transaction
with everything it wants done, and only then carried out. Work found saved already (a redelivery) only
finishes the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.errors import AlreadyDone
from coach.domain.message import Message
from coach.domain.reachability import QuietHours
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import ConversationStore, TurnReads
from coach.services.turns import EventSink, Loaded, PlannedTurn, SavedTurns, TurnRunner, planned_turn


@dataclass
class ConversationService:
    turns: SavedTurns
    conversation: ConversationStore
    coach: TurnRunner
    max_texts_per_turn: int = 10
    quiet_hours: QuietHours | None = None  # for a researcher's one-off message
    on_event: EventSink = lambda kind, data: None

    def handle(self, work: ConversationWork, time_left: Callable[[], float] | None = None) -> None:
        """Run the turn this work asks for unless it was saved before, then finish the participant's outbox.

        `time_left`: seconds the LLM may still take in this invocation (the rest saves and sends)."""
        pid = work.participant_id
        # Read with the participant and its flow: the text this work answers, or whether the work was done.
        if work.kind is WorkKind.INBOUND:
            reads = TurnReads(inbound_id=work.message_id or "", inbound_at=work.message_at)
        else:
            reads = TurnReads(work_keys=[work.deduplication_id()])
        decide = partial(self._plan, work, time_left=time_left)
        if not self.turns.run(pid, decide, reads=reads, work_id=work.deduplication_id()):
            self.on_event("participant_gone", {"participant_id": pid, "work": work.kind.value})

    def _plan(self, work: ConversationWork, loaded: Loaded, time_left: Callable[[], float] | None) -> PlannedTurn:
        pid = loaded.participant.id
        if work.kind is WorkKind.INBOUND:
            answered = self._texts_to_answer(pid, loaded.inbound)
            if not answered:
                raise AlreadyDone(f"text {work.message_id} was answered already")
            newest = answered[-1].message_id
            turn = TurnInput(
                flow=loaded.flow,
                participant=loaded.participant,
                now=loaded.now,
                texts=[m.body for m in answered],
                received_at=[m.at for m in answered],
                answering=newest,
            )
            result = self.coach.run(turn, time_left)
            plan = planned_turn(result, loaded, newest, answered=answered)
        else:
            work_key = work.deduplication_id()
            if self.turns.work_done(loaded, work_key):
                raise AlreadyDone(f"work {work_key} was done already")
            event = {WorkKind.ENROLLED: TurnEvent.ENROLLED, WorkKind.RESET: TurnEvent.RESET}.get(
                work.kind, TurnEvent.ONE_OFF
            )
            turn = TurnInput(
                flow=loaded.flow,
                participant=loaded.participant,
                now=loaded.now,
                event=event,
                message=work.text,
                override_quiet_hours=work.override_quiet_hours,
                quiet_hours=self.quiet_hours,
            )
            result = self.coach.run(turn, time_left)
            plan = planned_turn(result, loaded, work_key, work_key=work_key)
        return plan

    def _texts_to_answer(self, participant_id: str, own: Message | None) -> list[Message]:
        """This work's text (as loaded) and every other text still waiting, oldest first: quick texts form one
        turn."""
        if own is None or own.turn is not None:
            return []
        waiting = self.conversation.unanswered_inbound(participant_id, self.max_texts_per_turn)
        # The oldest waiting texts first, and always this work's own: this turn consumes its work, so leaving
        # it out would leave it unanswered. Newer texts wait for their own work.
        others = [m for m in waiting if m.message_id != own.message_id][: self.max_texts_per_turn - 1]
        return sorted([*others, own], key=lambda m: (m.at, m.message_id))
