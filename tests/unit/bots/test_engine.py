"""The orchestrator around the modules: input rules, events, history, silence, side effects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from coach.bots.engine import run_turn
from coach.bots.turn import TurnEvent, TurnInput
from coach.domain.flow import HISTORY_STORED, FlowState, PendingReminder, SubState
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.participant import ParticipantStatus
from coach.domain.sms_text import count_segments
from tests.unit.bots.conversation import START, Conversation, participant


def test_a_turn_has_texts_or_an_event() -> None:
    flow = FlowState.start("p-1", "", START)
    with pytest.raises(ValidationError):
        TurnInput(flow=flow, participant=participant(), now=START)
    with pytest.raises(ValidationError):
        TurnInput(flow=flow, participant=participant(), now=START, texts=["hi"], event=TurnEvent.ENROLLED)
    with pytest.raises(ValidationError):
        TurnInput(flow=flow, participant=participant(), now=START, event=TurnEvent.TRANSITION)
    with pytest.raises(ValidationError):  # time without a timezone
        TurnInput(flow=flow, participant=participant(), now=START.replace(tzinfo=None), texts=["hi"])


def test_the_input_state_is_never_mutated_and_the_same_turn_gives_the_same_result() -> None:
    chat = Conversation()
    chat.through_intake()
    turn = TurnInput(flow=chat.flow, participant=chat.who, now=chat.now + timedelta(hours=1), texts=["did it"])
    before = chat.flow.model_dump()

    first, second = run_turn(turn), run_turn(turn)

    assert chat.flow.model_dump() == before
    assert first == second
    assert first.flow.updated_at == turn.now
    assert first.flow.version == chat.flow.version  # the store bumps the version, not the engine


def test_several_quick_texts_form_one_turn() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)

    reply = chat.text("yes", "physical activity", "so I can keep up with my kids")

    assert reply == ["Great, let's begin!", reply[1]]
    assert reply[1].startswith("What time of day")
    assert [h.role for h in chat.flow.history[-5:]] == ["user", "user", "user", "assistant", "assistant"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=4), min_size=1, max_size=40))
def test_history_never_exceeds_50_messages(turns: list[list[str]]) -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    for texts in turns:
        chat.text(*texts)
        assert len(chat.flow.history) <= HISTORY_STORED
    assert chat.flow.history[-1].role in ("user", "assistant")


def test_history_bounds_each_message_body() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("x" * 10_000)
    assert max(len(h.content) for h in chat.flow.history) == MAX_BODY_CHARS


def test_every_reply_fits_the_segment_budget() -> None:
    chat = Conversation()
    chat.through_intake()
    assert all(count_segments(r.replies[0]).segments <= 2 for r in chat.results if r.replies)
    tight = run_turn(
        TurnInput(flow=chat.flow, participant=chat.who, now=chat.now, event=TurnEvent.DAILY_NUDGE), segment_budget=1
    )
    assert count_segments(tight.replies[0]).segments == 1


def test_a_reply_cancels_the_pending_reminder() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.flow = chat.flow.model_copy(
        update={
            "pending_reminder": PendingReminder(nudge_key="nudge#p-1#2026-03-03", due_at=chat.now + timedelta(hours=1))
        }
    )

    chat.text("done")

    assert chat.changed == ["reminder-p-1"]  # its schedule goes with it
    assert chat.flow.pending_reminder is None
    assert chat.event(TurnEvent.REMINDER) == []  # nothing left to remind of


def test_an_unanswered_nudge_gets_one_reminder() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.event(TurnEvent.DAILY_NUDGE)
    chat.flow = chat.flow.model_copy(update={"pending_reminder": PendingReminder(nudge_key="k", due_at=chat.now)})

    assert chat.event(TurnEvent.REMINDER)[0].startswith("Quick check-in")
    assert chat.event(TurnEvent.REMINDER) == []


def test_no_nudge_before_intake_is_finished() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")

    assert chat.event(TurnEvent.DAILY_NUDGE) == []
    assert chat.last.events[0].data["reason"] == "intake_incomplete"


@pytest.mark.parametrize(
    "changes",
    [{"opted_out": True}, {"status": ParticipantStatus.WITHDRAWN}, {"status": ParticipantStatus.COMPLETED}],
)
def test_opted_out_withdrawn_and_completed_participants_get_nothing(changes: dict[str, object]) -> None:
    chat = Conversation()
    chat.through_intake()
    chat.who = participant(**changes)

    assert chat.text("hello") == []
    assert chat.event(TurnEvent.DAILY_NUDGE) == []
    assert chat.event(TurnEvent.ENROLLED) == []
    assert chat.last.coach == "none"


def test_a_paused_participant_gets_no_nudge_but_an_answer() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.who = participant(status=ParticipantStatus.PAUSED)

    assert chat.event(TurnEvent.DAILY_NUDGE) == []
    assert chat.text("did it")[0].startswith("Nice work")


def test_reset_returns_to_intake_and_drops_the_schedule() -> None:
    # Given a participant in feedback with a daily schedule
    chat = Conversation()
    chat.through_intake()

    # When a researcher resets the conversation
    reply = chat.event(TurnEvent.RESET)

    # Then intake starts again (consent is kept), the profile is empty and the schedule goes
    assert reply == ["Let's start fresh!", reply[1]]
    assert reply[1].startswith("Which habit")
    assert chat.flow.sub_state is SubState.INTAKE
    assert chat.flow.user_profile.habit_domain is None
    assert chat.flow.consent is True
    assert chat.changed == ["nudge-p-1"]
    assert chat.daily_time is None
    assert [h.content for h in chat.flow.history] == reply


def test_reset_before_consent_greets_again() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)

    assert chat.event(TurnEvent.RESET)[0].startswith("Hi Ada!")
    assert chat.changed == []


def test_a_scheduled_transition_to_intake_asks_what_is_missing() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.flow = chat.flow.model_copy(
        update={"user_profile": chat.flow.user_profile.model_copy(update={"motivation": None})}
    )

    reply = chat.event(TurnEvent.TRANSITION, to_sub_state=SubState.INTAKE)

    assert reply == ["Why does this matter to you right now?"]
    assert chat.flow.sub_state is SubState.INTAKE
    assert chat.last.events[0].kind == "sub_state_changed"


def test_a_text_before_the_greeting_gets_the_greeting() -> None:
    chat = Conversation()
    assert chat.text("hello?")[0].startswith("Hi Ada!")
    assert chat.flow.intake_question == "consent"


def test_tone_requests_apply_at_once_and_emojis_only_when_welcome() -> None:
    chat = Conversation()
    chat.through_intake()

    chat.text("use emojis, I love them")
    assert chat.flow.tone.emojis_allowed
    assert "\U0001f389" in chat.text("did it")[0]

    chat.text("no emojis please")
    assert "\U0001f389" not in chat.text("done")[0]
    assert {e.kind for e in chat.events} >= {"tone_changed"}


def test_the_flow_state_survives_json_and_stays_far_below_the_item_limit() -> None:
    # Given a long conversation of maximal texts
    chat = Conversation()
    chat.through_intake()
    for i in range(80):
        chat.text(("did it " if i % 2 else "can we do 8pm instead? ") + "x" * 2000)

    # Then the state reads back equal, and its item stays far below DynamoDB's 400 KB
    stored = chat.flow.model_dump_json()
    assert FlowState.model_validate_json(stored) == chat.flow
    assert len(stored.encode()) < 200_000


def test_a_paused_participant_gets_the_reply_but_not_the_intensity_check() -> None:
    chat = Conversation()
    chat.through_intake()
    chat.who = participant(status=ParticipantStatus.PAUSED)
    turn = TurnInput(
        flow=chat.flow, participant=chat.who, now=chat.now + timedelta(hours=1), texts=["did it"], intensity_check=True
    )

    result = run_turn(turn)

    assert len(result.replies) == 1
    assert result.replies[0].startswith("Nice work")
    [withheld] = [e for e in result.events if e.kind == "intensity_check_withheld"]
    assert withheld.data["reason"] == "paused"
    assert result.flow.awaiting_intensity is False


def test_the_newest_answered_text_is_recorded_by_the_engine_itself() -> None:
    chat = Conversation()
    chat.through_intake()
    turn = TurnInput(flow=chat.flow, participant=chat.who, now=chat.now, texts=["did it"], answering="SM123")

    assert run_turn(turn).flow.last_processed_inbound == "SM123"
