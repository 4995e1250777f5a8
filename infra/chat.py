"""`make chat`: hold a coaching conversation with the engine in the terminal, nothing else running.

The offline coach answers unless OPENAI_API_KEY / OPENAI_BASE_URL point at an LLM. The flow state lives
in memory; side effects (schedules) and, with --verbose, research events are printed instead of done.
Slash commands fire what the scheduler would: /nudge, /reminder, /reset, and /later moves the clock.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from coach.adapters.openai_llm import language_model
from coach.bots.engine import run_turn
from coach.bots.turn import TurnEvent, TurnInput, TurnResult
from coach.domain.flow import FlowState, PendingReminder
from coach.domain.participant import Participant
from coach.ports import LanguageModel
from coach.settings import coach_settings

HELP = """Type as the participant would text. Commands:
  /nudge       the daily nudge fires        /reminder   its follow-up reminder fires
  /reset       back to intake               /later N    N minutes pass (default 60)
  /profile     what the coach knows         /help       this text        /quit  leave"""


class ChatSession:
    def __init__(self, participant: Participant, llm: LanguageModel | None, *, verbose: bool, seed: int) -> None:
        self.participant = participant
        self.llm = llm
        self.verbose = verbose
        self.rng = random.Random(seed)
        self.now = participant.enrolled_at
        self.flow = FlowState.start(participant.id, participant.background_text(), self.now)

    def turn(self, texts: list[str] | None = None, event: TurnEvent | None = None) -> TurnResult:
        self.now += timedelta(minutes=1)
        turn = TurnInput(flow=self.flow, participant=self.participant, now=self.now, texts=texts or [], event=event)
        result = run_turn(turn, llm=self.llm, rng=self.rng)
        self.flow = result.flow
        return result

    def nudge(self) -> TurnResult:
        result = self.turn(event=TurnEvent.DAILY_NUDGE)
        if result.replies:  # what the prompt-generator function does after sending a nudge
            key = f"nudge#{self.participant.id}#{self.now.date().isoformat()}"
            reminder = PendingReminder(nudge_key=key, due_at=self.now + timedelta(hours=5))
            self.flow = self.flow.model_copy(update={"pending_reminder": reminder})
        return result


def show(result: TurnResult, out: Callable[[str], None], *, verbose: bool) -> None:
    for reply in result.replies:
        out(f"coach> {reply}")
    for effect in result.effects:
        out(f"   [effect] {effect.model_dump(mode='json')}")
    if verbose:
        for event in result.events:
            out(f"   [event] {event.kind} {event.data}")


def run(session: ChatSession, read: Callable[[str], str], out: Callable[[str], None]) -> int:
    coach = "an LLM" if session.llm else "the offline coach"
    out(f"SMS Habit Coach chat with {coach}. /help lists the commands.")
    show(session.turn(event=TurnEvent.ENROLLED), out, verbose=session.verbose)
    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            out("")
            return 0
        if not line:
            continue
        command, _, argument = line.partition(" ")
        if command == "/quit":
            return 0
        if command == "/help":
            out(HELP)
        elif command == "/profile":
            out(session.flow.user_profile.model_dump_json(indent=2, exclude_none=True))
            out(f"sub-state: {session.flow.sub_state.value}  tone: {session.flow.tone.active}")
        elif command == "/later":
            session.now += timedelta(minutes=int(argument) if argument.isdigit() else 60)
            out(f"   [clock] {session.now.isoformat(timespec='minutes')}")
        elif command == "/nudge":
            show(session.nudge(), out, verbose=session.verbose)
        elif command == "/reminder":
            show(session.turn(event=TurnEvent.REMINDER), out, verbose=session.verbose)
        elif command == "/reset":
            show(session.turn(event=TurnEvent.RESET), out, verbose=session.verbose)
        else:
            result = session.turn(texts=[line])
            show(result, out, verbose=session.verbose)
            if not result.replies:
                out("   (no reply)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make chat", description=__doc__)
    parser.add_argument("--name", default="Sam")
    parser.add_argument("--timezone", default="America/New_York")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", "-v", action="store_true", help="print research events too")
    args = parser.parse_args(argv)
    now = datetime.now(UTC)
    participant = Participant(
        id="chat-participant",
        phone_number="+12065550100",
        name=args.name,
        timezone=args.timezone,
        enrolled_at=now,
        created_at=now,
        updated_at=now,
    )
    session = ChatSession(participant, language_model(coach_settings()), verbose=args.verbose, seed=args.seed)
    return run(session, input, print)


if __name__ == "__main__":
    sys.exit(main())
