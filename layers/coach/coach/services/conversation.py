"""The conversation function's use case: one turn per piece of queued work, exactly once, then the outbox.

The turn is computed from stored state, saved in one transaction with everything it wants done, and
only then carried out (OutboxDispatcher). A lost race reloads and computes again; work found saved
already (a redelivery) only finishes the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from coach.bots.engine import run_turn
from coach.bots.turn import TurnEvent, TurnInput, TurnResult
from coach.domain.errors import AlreadyDone, Conflict, NotFound
from coach.domain.message import Direction, Message
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import Clock, ConversationStore, LanguageModel, ParticipantStore
from coach.services.outbox import OutboxDispatcher

TURN_ATTEMPTS = 8  # optimistic-locking rounds before the work goes back to the queue


@dataclass
class ConversationService:
    participants: ParticipantStore
    conversation: ConversationStore
    outbox: OutboxDispatcher
    clock: Clock
    language_model: Callable[[], LanguageModel | None] = lambda: None  # built lazily: importing openai is slow
    segment_budget: int = 2
    daily_llm_turns: int = 40
    max_texts_per_turn: int = 10
    on_event: Callable[[str, dict[str, object]], None] = lambda kind, data: None  # logs and metrics

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
        result = self._run(turn, participant)
        outbox, messages = self._outbox_of(result, participant, turn_key, now)
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
        waiting = {
            m.message_id: m for m in self.conversation.unanswered_inbound(participant_id, self.max_texts_per_turn)
        }
        waiting[own.message_id] = own
        ordered = sorted(waiting.values(), key=lambda m: (m.at, m.message_id))
        # Keep the newest ones, always with this work's own text.
        chosen = ordered[-self.max_texts_per_turn :]
        return chosen if own in chosen else [*chosen[1:], own]

    def _run(self, turn: TurnInput, participant: Participant) -> TurnResult:
        flow = turn.flow
        day = _local_day(turn.now, participant.timezone)
        used = flow.llm_turns_that_day if flow.llm_day == day else 0
        llm = self.language_model() if used < self.daily_llm_turns else None
        result = run_turn(turn, llm=llm, segment_budget=self.segment_budget)
        if result.coach == "llm":
            result.flow.llm_day, result.flow.llm_turns_that_day = day, used + 1
        elif llm is None and used >= self.daily_llm_turns and self.daily_llm_turns > 0:
            self.on_event("llm_daily_cap", {"participant_id": participant.id})
        return result

    @staticmethod
    def _outbox_of(
        result: TurnResult, participant: Participant, turn_key: str, now: datetime
    ) -> tuple[list[OutboxItem], list[Message]]:
        pid = participant.id
        outbox: list[OutboxItem] = []
        messages: list[Message] = []
        for n, effect in enumerate(result.effects):
            outbox.append(
                OutboxItem(
                    participant_id=pid,
                    key=f"{turn_key}#e{n}",
                    kind=OutboxKind.EFFECT,
                    created_at=now,
                    effect=effect.model_dump(mode="json"),
                )
            )
        for n, text in enumerate(result.replies):
            key = f"{turn_key}#{n}"
            outbox.append(
                OutboxItem(
                    participant_id=pid,
                    key=key,
                    kind=OutboxKind.SMS,
                    created_at=now,
                    to=participant.phone_number,
                    body=text,
                )
            )
            messages.append(
                Message(
                    participant_id=pid,
                    message_id=key,
                    direction=Direction.OUTBOUND,
                    body=text,
                    at=now,
                    status="pending",
                )
            )
        return outbox, messages


def _local_day(now: datetime, timezone: str) -> str:
    return now.astimezone(ZoneInfo(timezone)).date().isoformat()
