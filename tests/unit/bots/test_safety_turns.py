"""A text that screens as a safety concern, through the engine: before every bot, offline or LLM.

Given a participant anywhere in the conversation, when they write that they want to hurt themselves, then the
reply is the crisis text and nothing else, the state is flagged for review (nudges, reminders and checks wait
for a researcher), the event names the rule and not the text; an opted-out participant is flagged but gets
nothing; the flag survives a reset; the intake goes on where it was.
"""

from __future__ import annotations

from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.chat import ChatMessage, ModelReply, ToolSpec
from coach.domain.flow import SubState
from coach.domain.study_texts import DEFAULT_CRISIS_TEXT
from tests.unit.bots.conversation import Conversation, participant

CRISIS = "honestly i want to kill myself"


class FailingIfAsked:
    """An LLM that must not be asked: the screen answers before any bot."""

    def __init__(self) -> None:
        self.asked = 0

    def complete(self, messages: list[ChatMessage], tools: list[ToolSpec], **options: object) -> ModelReply:
        self.asked += 1
        raise AssertionError("the LLM was asked to answer a crisis text")


def test_a_crisis_text_mid_intake_gets_the_crisis_text_only_and_flags_the_participant() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    question = chat.flow.intake_question

    replies = chat.text(CRISIS)

    assert replies == [DEFAULT_CRISIS_TEXT]
    assert chat.last.coach == "safety"
    review = chat.flow.safety_review
    assert review is not None
    assert review.category == "crisis"
    assert review.rule
    [flag] = [e for e in chat.last.events if e.kind == "safety_flag"]
    assert flag.data == {"category": "crisis", "rule": review.rule, "sub_state": "INTAKE"}
    assert CRISIS not in str(flag.data)  # the rule, never a copy of the text
    assert (chat.flow.sub_state, chat.flow.intake_question) == (SubState.INTAKE, question)  # intake waits there


def test_while_flagged_no_nudge_reminder_or_transition_goes_out_and_each_says_why() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.text(CRISIS)

    assert chat.event(TurnEvent.DAILY_NUDGE) == []
    [withheld] = [e for e in chat.last.events if e.kind == "message_withheld"]
    assert withheld.data["reasons"] == ["needs_review"]


def test_the_configured_crisis_text_is_the_reply_and_the_llm_is_never_asked() -> None:
    chat = Conversation()
    chat.through_intake()
    llm = FailingIfAsked()
    chat.llm = llm  # an LLM from now on, which must not be asked
    text = "I am going to end it all tonight"
    turn = TurnInput(flow=chat.flow, participant=chat.who, now=chat.now, texts=[text], crisis_text="Call 988.")

    replies = chat._run(turn)

    assert replies == ["Call 988."]
    assert llm.asked == 0


def test_an_opted_out_participant_is_flagged_but_sent_nothing() -> None:
    chat = Conversation(who=participant(opted_out=True))
    chat.through_intake()

    assert chat.text(CRISIS) == []
    assert chat.flow.safety_review is not None
    kinds = [e.kind for e in chat.last.events]
    assert "safety_flag" in kinds
    assert "reply_withheld" in kinds


def test_ordinary_texts_after_the_flag_are_coached_and_the_flag_stays_until_a_researcher_clears_it() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.text(CRISIS)

    replies = chat.text("did it!")

    assert replies
    assert replies[0] != DEFAULT_CRISIS_TEXT
    assert chat.flow.safety_review is not None


def test_a_reset_keeps_the_flag() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.text(CRISIS)

    chat.event(TurnEvent.RESET)

    assert chat.flow.sub_state is SubState.INTAKE
    assert chat.flow.safety_review is not None
    assert chat.flow.reset(chat.now).safety_review == chat.flow.safety_review


def test_an_everyday_text_is_not_flagged() -> None:
    chat = Conversation()
    chat.through_intake()

    chat.text("this workout is killing me lol, but done")

    assert chat.flow.safety_review is None
    assert not [e for e in chat.last.events if e.kind == "safety_flag"]
