"""A participant talking to the engine, turn by turn, with the time moving on: the golden tests' driver."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from coach.bots.engine import run_turn
from coach.bots.turn import TurnEvent, TurnInput, TurnResult
from coach.domain.flow import FlowState, SubState
from coach.domain.message import ResearchEvent
from coach.domain.participant import Participant
from coach.domain.schedules import changed_schedules, desired_schedules
from coach.ports import LanguageModel

START = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def participant(**changes: object) -> Participant:
    fields: dict[str, object] = {
        "id": "p-1",
        "phone_number": "+12065550100",
        "name": "Ada Lovelace",
        "timezone": "America/New_York",
        "enrolled_at": START,
        "created_at": START,
        "updated_at": START,
    }
    fields.update(changes)
    return Participant.model_validate(fields)


@dataclass
class Conversation:
    """Holds the flow state between turns, as the conversation function's store would."""

    who: Participant = field(default_factory=participant)
    llm: LanguageModel | None = None
    now: datetime = START
    flow: FlowState = field(init=False)
    results: list[TurnResult] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # the schedules the last turn created, moved or removed

    def __post_init__(self) -> None:
        self.flow = FlowState.start(self.who.id, self.who.background_text(), self.now)

    @property
    def last(self) -> TurnResult:
        return self.results[-1]

    @property
    def events(self) -> list[ResearchEvent]:
        return [e for r in self.results for e in r.events]

    @property
    def daily_time(self) -> str | None:
        """The local time of the daily nudge the state calls for, if any."""
        return self.flow.daily_schedule.time if self.flow.daily_schedule else None

    def _run(self, turn: TurnInput) -> list[str]:
        result = run_turn(turn, llm=self.llm, rng=random.Random(7))
        before = desired_schedules(self.who, self.flow, self.now)
        self.changed = changed_schedules(before, desired_schedules(self.who, result.flow, self.now))
        self.results.append(result)
        self.flow = result.flow
        return result.replies

    def text(self, *texts: str, minutes_later: int = 5) -> list[str]:
        self.now += timedelta(minutes=minutes_later)
        return self._run(TurnInput(flow=self.flow, participant=self.who, now=self.now, texts=list(texts)))

    def event(self, event: TurnEvent, to_sub_state: SubState | None = None, minutes_later: int = 5) -> list[str]:
        self.now += timedelta(minutes=minutes_later)
        turn = TurnInput(flow=self.flow, participant=self.who, now=self.now, event=event, to_sub_state=to_sub_state)
        return self._run(turn)

    def through_intake(self) -> list[str]:
        """Enrollment to the first habit prompt, the plain way."""
        self.event(TurnEvent.ENROLLED)
        self.text("yes")
        self.text("physical activity")
        self.text("to feel more energetic")
        self.text("7:30am")
        self.text("after my morning coffee")
        return self.text("no")
