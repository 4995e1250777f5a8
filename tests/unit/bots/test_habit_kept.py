"""One habit, kept (issue 11, items 3 and 6): the habit agreed at the end of intake is what every nudge asks for,
for a month, until the participant or the coach changes it on purpose (on record as habit_changed); and a nudge
due while the profile cannot carry a prompt goes back to intake with a question, never silence."""

from __future__ import annotations

from datetime import timedelta

from coach.bots.turn import TurnEvent
from coach.domain.flow import SubState
from tests.unit.bots.conversation import Conversation


def agreed(chat: Conversation) -> str:
    habit = chat.flow.user_profile.habit
    assert habit is not None
    return habit


def next_day(chat: Conversation) -> list[str]:
    chat.now += timedelta(days=1)
    return chat.event(TurnEvent.DAILY_NUDGE)


def test_the_habit_agreed_at_intake_is_every_nudges_for_a_month() -> None:
    chat = Conversation()
    first = chat.through_intake()[0]
    habit = agreed(chat)
    assert habit in first

    nudges = []
    for _ in range(30):
        nudges += next_day(chat)
        chat.text("did it!", minutes_later=30)

    assert len(nudges) == 30
    assert all(habit in nudge for nudge in nudges)
    assert agreed(chat) == habit
    assert not [e for e in chat.events if e.kind == "habit_changed"]


def test_asking_for_another_habit_changes_it_on_record_and_the_new_one_is_kept() -> None:
    chat = Conversation()
    chat.through_intake()
    before = agreed(chat)

    [reply] = chat.text("can I have a different habit?")
    after = agreed(chat)

    assert after != before
    assert after in reply
    [changed] = [e.data for e in chat.events if e.kind == "habit_changed"]
    assert (changed["before"], changed["after"], changed["occasion"]) == (before, after, "participant_asked")
    assert after in next_day(chat)[0]


def test_a_new_anchor_keeps_the_habit_at_a_new_moment() -> None:
    chat = Conversation()
    chat.through_intake()
    habit = agreed(chat)

    [reply] = chat.text("can we do it after lunch instead?")

    assert habit in reply
    assert "lunch" in reply
    assert agreed(chat) == habit


def test_a_nudge_without_an_anchor_asks_for_it_instead_of_silence_and_the_next_morning_nudges() -> None:
    # Given a participant in feedback whose profile lost its anchor (an LLM's intake ended without one)
    chat = Conversation()
    chat.through_intake()
    chat.flow.user_profile.prompt_anchor = None

    # When the daily nudge is due
    [question] = next_day(chat)

    # Then intake asks for the anchor, on record, and the answer brings the next morning's prompt
    assert "What do you already do" in question
    assert chat.flow.sub_state is SubState.INTAKE
    [repair] = [e.data for e in chat.last.events if e.kind == "habit_prompt_missing_fields"]
    assert repair == {"occasion": "daily_nudge", "missing": ["prompt_anchor"]}
    chat.text("after brushing my teeth")
    assert chat.flow.sub_state is SubState.FEEDBACK
    assert "brushing your teeth" in next_day(chat)[0]


def test_a_delayed_move_to_feedback_with_an_incomplete_profile_is_refused_and_intake_asks() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    chat.text("physical activity")

    replies = chat.event(TurnEvent.TRANSITION, to_sub_state=SubState.FEEDBACK)

    assert chat.flow.sub_state is SubState.INTAKE
    assert [e.data["missing"] for e in chat.last.events if e.kind == "transition_refused"] == [
        ["preferred_time", "prompt_anchor"]
    ]
    assert replies  # the next intake question, not silence


def test_the_template_keeps_the_participants_own_words_for_the_goal() -> None:
    import random

    from coach.bots.prompt_generator import HabitPrompt, generate_habit_prompt
    from coach.domain.profile import UserProfile

    def prompt(goal: str) -> str:
        profile = UserProfile(habit_domain=goal, preferred_time="07:30", prompt_anchor="after my coffee")
        made = generate_habit_prompt(profile, random.Random(3))
        assert isinstance(made, HabitPrompt)
        return made.text

    assert "water" in prompt("I want to drink more water")
    assert "walk" in prompt("walking")
    assert "juggling" in prompt("juggling")  # no study domain: their words
    assert "fruit" not in prompt("I want to drink more water")
