"""`make chat`: a whole offline conversation through the terminal loop, with scripted typing."""

from __future__ import annotations

from collections.abc import Callable

from infra.chat import ChatSession, run
from tests.unit.bots.conversation import participant


def typing(*lines: str) -> Callable[[str], str]:
    queue = list(lines)

    def read(prompt: str) -> str:
        if not queue:
            raise EOFError
        return queue.pop(0)

    return read


def test_a_new_user_holds_a_full_offline_conversation() -> None:
    # Given the chat with the offline coach
    printed: list[str] = []
    session = ChatSession(participant(), None, verbose=True, seed=1)

    # When someone types their way through intake, a nudge, feedback and a change of plan
    code = run(
        session,
        typing(
            "yes",
            "less screen time",
            "so I can sleep better",
            "9pm",
            "after I brush my teeth",
            "no",
            "/nudge",
            "did it!",
            "/later 30",
            "/reminder",
            "can we do 8pm instead?",
            "/profile",
            "/help",
            "/reset",
            "/quit",
        ),
        printed.append,
    )

    # Then it ends cleanly, having shown the coach's side and the schedules it calls for
    output = "\n".join(printed)
    assert code == 0
    assert "coach> Hi Ada!" in output
    assert "Here's your tiny habit: After you brush your teeth, try " in output
    assert "Nice work! That's 1 time so far." in output
    assert "Done, I'll text you at 8pm from now on." in output
    assert "[schedule] nudge-p-1: cron(0 21 * * ? *) in America/New_York" in output  # after intake
    assert "[schedule] reminder-p-1: at(" in output  # the nudge's follow-up
    assert "[schedule] nudge-p-1: cron(0 20 * * ? *) in America/New_York" in output  # moved to 8pm
    assert "[schedule] nudge-p-1: removed" in output  # the reset
    assert "[event] feedback_classified" in output
    assert '"success_count": 1' in output
    assert "coach> Let's start fresh!" in output
    assert session.flow.sub_state.value == "INTAKE"


def test_end_of_input_leaves_quietly() -> None:
    printed: list[str] = []
    assert run(ChatSession(participant(), None, verbose=False, seed=1), typing("", "hello"), printed.append) == 0
    assert printed[-1] == ""
