"""`make chat`: hold a coaching conversation with the engine in the terminal, nothing else running.

The offline coach answers unless OPENAI_API_KEY / OPENAI_BASE_URL point at an LLM. The flow state lives
in memory; the schedules it calls for and, with --verbose, research events are printed instead of made.
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
from coach.bots.turn import Firing, TurnEvent, TurnInput, TurnResult
from coach.domain.flow import FlowState
from coach.domain.participant import Participant
from coach.domain.schedules import ScheduleSpec, changed_schedules, desired_schedules
from coach.ports import LanguageModel
from coach.settings import coach_settings

REMINDER_AFTER = timedelta(hours=5)
VALIDITY = timedelta(hours=1)

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
        self.schedule_changes: dict[str, ScheduleSpec | None] = {}  # what the last turn changed: name -> new

    def turn(
        self, texts: list[str] | None = None, event: TurnEvent | None = None, firing: Firing | None = None
    ) -> TurnResult:
        self.now += timedelta(minutes=1)
        turn = TurnInput(
            flow=self.flow, participant=self.participant, now=self.now, texts=texts or [], event=event, firing=firing
        )
        result = run_turn(turn, llm=self.llm, rng=self.rng)
        before = desired_schedules(self.participant, self.flow, self.now)
        after = desired_schedules(self.participant, result.flow, self.now)
        self.schedule_changes = {name: after.get(name) for name in changed_schedules(before, after)}
        self.flow = result.flow
        return result

    def nudge(self) -> TurnResult:
        """The daily nudge fires now, as the prompt generator would fire it (with a reminder in 5 hours)."""
        key = f"nudge#{self.participant.id}#{self.now.date().isoformat()}"
        slot = self.now + timedelta(minutes=1)
        return self.turn(
            event=TurnEvent.DAILY_NUDGE,
            firing=Firing(key=key, slot=slot, valid_until=slot + VALIDITY, reminder_after=REMINDER_AFTER),
        )

    def reminder(self) -> TurnResult:
        """The pending reminder fires now (whenever it is due: the chat's clock is yours)."""
        pending = self.flow.pending_reminder
        slot = self.now + timedelta(minutes=1)
        key = pending.nudge_key if pending is not None else ""
        return self.turn(event=TurnEvent.REMINDER, firing=Firing(key=key, slot=slot, valid_until=slot + VALIDITY))


def show(session: ChatSession, result: TurnResult, out: Callable[[str], None], *, verbose: bool) -> None:
    for reply in result.replies:
        out(f"coach> {reply}")
    for name, spec in session.schedule_changes.items():
        shown = f"{spec.expression} in {spec.timezone}" if spec is not None else "removed"
        out(f"   [schedule] {name}: {shown}")
    if verbose:
        for event in result.events:
            out(f"   [event] {event.kind} {event.data}")


def run(session: ChatSession, read: Callable[[str], str], out: Callable[[str], None]) -> int:
    coach = "an LLM" if session.llm else "the offline coach"
    out(f"SMS Habit Coach chat with {coach}. /help lists the commands.")
    show(session, session.turn(event=TurnEvent.ENROLLED), out, verbose=session.verbose)
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
            show(session, session.nudge(), out, verbose=session.verbose)
        elif command == "/reminder":
            show(session, session.reminder(), out, verbose=session.verbose)
        elif command == "/reset":
            show(session, session.turn(event=TurnEvent.RESET), out, verbose=session.verbose)
        else:
            result = session.turn(texts=[line])
            show(session, result, out, verbose=session.verbose)
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
