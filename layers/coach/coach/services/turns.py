"""What the conversation function and the prompt generator share: running the engine for a turn (with
the per-participant daily LLM cap) and turning its result into outbox items and transcript messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from coach.bots.engine import run_turn
from coach.bots.turn import TurnInput, TurnResult
from coach.domain.message import Direction, Message
from coach.domain.outbox import OutboxItem, OutboxKind
from coach.domain.participant import Participant
from coach.ports import LanguageModel

EventSink = Callable[[str, dict[str, object]], None]  # logs and metrics


@dataclass
class TurnRunner:
    language_model: Callable[[], LanguageModel | None] = lambda: None  # built lazily: importing openai is slow
    segment_budget: int = 2
    daily_llm_turns: int = 40
    intensity_check: bool = False
    on_event: EventSink = lambda kind, data: None

    def run(self, turn: TurnInput, participant: Participant) -> TurnResult:
        if self.intensity_check:
            turn = turn.model_copy(update={"intensity_check": True})
        flow = turn.flow
        day = turn.now.astimezone(ZoneInfo(participant.timezone)).date().isoformat()
        used = flow.llm_turns_that_day if flow.llm_day == day else 0
        capped = used >= self.daily_llm_turns
        result = run_turn(turn, llm=None if capped else self.language_model(), segment_budget=self.segment_budget)
        if result.coach == "llm":
            result.flow.llm_day, result.flow.llm_turns_that_day = day, used + 1
        elif capped and self.daily_llm_turns > 0:
            self.on_event("llm_daily_cap", {"participant_id": participant.id})
        return result


def outbox_for_turn(
    result: TurnResult, participant: Participant, turn_key: str, now: datetime
) -> tuple[list[OutboxItem], list[Message]]:
    """The turn's effects and replies as outbox items (keys derive from `turn_key`, so a recomputed or
    redelivered turn has the same ones), and the replies as transcript messages."""
    pid = participant.id
    outbox = [
        OutboxItem(
            participant_id=pid,
            key=f"{turn_key}#e{n}",
            kind=OutboxKind.EFFECT,
            created_at=now,
            effect=effect.model_dump(mode="json"),
        )
        for n, effect in enumerate(result.effects)
    ]
    messages = []
    for n, text in enumerate(result.replies):
        key = f"{turn_key}#{n}"
        outbox.append(
            OutboxItem(
                participant_id=pid, key=key, kind=OutboxKind.SMS, created_at=now, to=participant.phone_number, body=text
            )
        )
        messages.append(
            Message(
                participant_id=pid, message_id=key, direction=Direction.OUTBOUND, body=text, at=now, status="pending"
            )
        )
    return outbox, messages
