"""Golden conversations with the offline coach: what a participant sees, and what the state becomes."""

from __future__ import annotations

from coach.bots.turn import TurnEvent
from coach.domain.flow import SubState
from coach.domain.study_texts import DEFAULT_STUDY_NAME
from tests.unit.bots.conversation import Conversation


def test_enrollment_to_first_habit_prompt() -> None:
    # Given a newly enrolled participant
    chat = Conversation()

    # When the greeting goes out
    greeting = chat.event(TurnEvent.ENROLLED)

    # Then it asks for consent, by name, names the study and says how to opt out
    assert greeting[0].startswith("Hi Ada!")
    assert "YES or NO" in greeting[0]
    assert DEFAULT_STUDY_NAME in greeting[0]
    assert greeting[0].endswith("Reply STOP to opt out, HELP for help.")

    # When they answer each intake question in turn
    assert "Which habit" in chat.text("yes")[-1]
    assert "Why does this matter" in chat.text("physical activity")[0]
    assert "What time of day" in chat.text("to feel more energetic")[0]
    assert "What do you already do" in chat.text("7:30am")[0]
    assert "Anything else" in chat.text("after my morning coffee")[0]
    first_prompt, try_now = chat.text("no")

    # Then the first prompt is in MAP form, a try is offered, the schedule is asked for, feedback begins
    assert first_prompt.startswith("Thanks, that's all I need! Here's your tiny habit: After your morning coffee, try ")
    assert "it helps you feel more energetic" in first_prompt
    assert "Want to try the 1-minute version right now?" in try_now
    assert "7:30am" in try_now
    assert chat.changed == ["nudge-p-1"]
    assert chat.daily_time == "07:30"
    assert chat.flow.sub_state is SubState.FEEDBACK
    profile = chat.flow.user_profile
    assert (profile.habit_domain, profile.motivation, profile.preferred_time) == (
        "physical activity",
        "feel more energetic",
        "07:30",
    )
    assert profile.prompt_anchor == "after my morning coffee"
    assert profile.total_prompts == 1
    assert chat.flow.last_habit_prompt is not None
    assert "After your morning coffee" in chat.flow.last_habit_prompt
    assert {"consent_given", "intake_completed", "habit_prompt", "profile_changed"} <= {e.kind for e in chat.events}


def test_completed_counts_a_success() -> None:
    # Given a participant who finished intake and got a nudge
    chat = Conversation()
    chat.through_intake()
    nudge = chat.event(TurnEvent.DAILY_NUDGE, minutes_later=60 * 17)
    assert nudge[0].startswith("After your morning coffee, try ")

    # When they say they did it
    reply = chat.text("Did it!")

    # Then it counts, remembers the prompt that worked, and says so
    assert reply == ["Nice work! That's 1 time so far. See you tomorrow."]
    assert chat.flow.user_profile.success_count == 1
    assert chat.flow.user_profile.last_successful_prompt == chat.flow.last_habit_prompt
    assert chat.flow.user_profile.total_prompts == 2
    assert chat.last.events[0].kind == "feedback_classified"
    assert chat.last.events[0].data["kind"] == "completed"


def test_attempted_is_encouraged_and_its_barrier_kept() -> None:
    chat = Conversation()
    chat.through_intake()

    reply = chat.text("tried but stopped because my back hurt")

    assert reply[0].startswith("Trying counts")
    assert chat.flow.user_profile.success_count == 0
    assert chat.flow.user_profile.last_barrier == "my back hurt"
    assert chat.last.events[0].data["kind"] == "attempted"


def test_skipped_records_the_barrier() -> None:
    chat = Conversation()
    chat.through_intake()

    reply = chat.text("didn't do it, I forgot because work ran late")

    assert reply[0].startswith("Thanks for telling me")
    assert chat.flow.user_profile.last_barrier == "work ran late"
    assert chat.flow.user_profile.success_count == 0
    assert chat.last.events[0].data["kind"] == "skipped"


def test_rejected_asks_what_would_suit_better() -> None:
    chat = Conversation()
    chat.through_intake()

    reply = chat.text("I don't like this")

    assert reply[0].startswith("Fair enough")
    assert chat.last.events[0].data["kind"] == "rejected"
    assert chat.flow.sub_state is SubState.FEEDBACK


def test_modified_with_a_new_anchor_gives_a_new_plan() -> None:
    chat = Conversation()
    chat.through_intake()

    reply = chat.text("could we do it after lunch instead?")

    assert reply[0].startswith("New plan: After lunch, try ")
    assert chat.flow.user_profile.prompt_anchor == "after lunch"
    assert chat.flow.user_profile.last_tweak == "could we do it after lunch instead?"
    assert chat.last.events[0].data["kind"] == "modified"
    assert chat.changed == []  # the time did not change


def test_changing_the_time_moves_the_schedule() -> None:
    # Given a participant nudged at 7:30am
    chat = Conversation()
    chat.through_intake()

    # When they ask for evenings
    reply = chat.text("can we do evenings instead?")

    # Then the profile, the schedule and the reply all say 7pm
    assert reply == ["Done, I'll text you at 7pm from now on."]
    assert chat.flow.user_profile.preferred_time == "19:00"
    assert chat.changed == ["nudge-p-1"]
    assert chat.daily_time == "19:00"
    assert chat.flow.daily_schedule is not None
    assert chat.flow.daily_schedule.time == "19:00"
    changed = next(e for e in chat.last.events if e.kind == "profile_changed").data["fields"]
    assert changed["preferred_time"] == {"from": "07:30", "to": "19:00"}


def test_declining_consent_closes_politely_and_for_good() -> None:
    # Given the greeting
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)

    # When the participant declines
    reply = chat.text("No thanks")

    # Then a polite close, and nothing ever again: not to texts, not on schedule
    assert reply == ["No problem, thanks for letting me know. I won't text you again. Take care!"]
    assert chat.flow.consent is False
    assert chat.text("hello?") == []
    assert chat.event(TurnEvent.DAILY_NUDGE) == []
    assert chat.event(TurnEvent.REMINDER) == []
    assert chat.last.coach == "none"
    assert "consent_declined" in {e.kind for e in chat.events}


def test_unclear_consent_is_asked_again_and_never_assumed() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)

    reply = chat.text("what is this?")

    assert reply == [
        f"Sorry, I didn't catch that. In {DEFAULT_STUDY_NAME} I text you one tiny daily habit idea for a few "
        "weeks. Reply YES to start or NO if you'd rather not take part."
    ]
    assert chat.flow.consent is None


def test_a_vague_answer_is_asked_again_briefly() -> None:
    # Given the time question
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    chat.text("healthy eating")
    assert "What time of day" in chat.text("I want more energy")[0]

    # When the answer is vague
    reply = chat.text("not sure")

    # Then a short re-ask with examples, and nothing stored
    assert reply == ["Roughly what time suits you? e.g. 8am, 12:30 or 'evenings'."]
    assert chat.flow.user_profile.preferred_time is None
    assert chat.flow.intake_question == "preferred_time"

    # When they answer clearly, intake moves on
    assert "What do you already do" in chat.text("8-9am")[0]
    assert chat.flow.user_profile.preferred_time == "08:00"


def test_repeatedly_vague_answers_end_in_a_default_so_intake_finishes() -> None:
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    chat.text("less screen time")
    chat.text("to sleep better")

    replies = [chat.text("idk") for _ in range(3)]

    assert replies[-1][0].startswith(
        "No problem, I'll pencil in 9am; you can change it any time. What do you already do"
    )
    assert chat.flow.user_profile.preferred_time == "09:00"
    assert chat.flow.intake_question == "prompt_anchor"


def test_several_answers_in_one_text_skip_their_questions() -> None:
    # Given consent
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)

    # When one text names the habit, the reason, the time and the anchor
    reply = chat.text("yes! I want to exercise more so I can keep up with my kids. Mornings after my coffee.")

    # Then only what is still missing is asked
    assert reply[-1].startswith("Anything else")
    profile = chat.flow.user_profile
    assert profile.habit_domain == "physical activity"
    assert profile.motivation == "keep up with my kids"
    assert profile.preferred_time == "08:00"
    assert profile.prompt_anchor == "after my coffee"


def test_a_missing_anchor_sends_the_coach_back_to_intake() -> None:
    # Given a participant in feedback whose anchor got lost
    chat = Conversation()
    chat.through_intake()
    chat.flow = chat.flow.model_copy(
        update={"user_profile": chat.flow.user_profile.model_copy(update={"prompt_anchor": None})}
    )

    # When the daily nudge is due
    reply = chat.event(TurnEvent.DAILY_NUDGE)

    # Then no prompt goes out; the coach asks for the anchor, back in intake
    assert reply == [
        "Before your next habit I need one more thing. What do you already do every day that this could follow? "
        "e.g. 'after my morning coffee'."
    ]
    assert chat.flow.sub_state is SubState.INTAKE
    assert chat.last.events[0].data == {"occasion": "daily_nudge", "missing": ["prompt_anchor"]}

    # When they answer, the new prompt follows and feedback resumes
    first_prompt = chat.text("when I get home from work")[0]
    assert "When you get home from work, try " in first_prompt
    assert chat.flow.sub_state.value == "FEEDBACK"


def test_a_yes_to_trying_now_is_not_yet_a_completion() -> None:
    chat = Conversation()
    chat.through_intake()

    reply = chat.text("sure")

    assert reply[0].startswith("Great, go for it now!")
    assert chat.flow.user_profile.success_count == 0
    assert chat.text("done")[0].startswith("Nice work!")


def test_not_now_to_trying_now_is_not_a_skip() -> None:
    chat = Conversation()
    chat.through_intake()

    assert chat.text("not now") == ["No problem! I'll nudge you tomorrow at 7:30am."]
    assert chat.flow.user_profile.last_barrier is None


def test_the_next_nudge_withdraws_the_try_now_offer() -> None:
    chat = Conversation()
    chat.through_intake()

    chat.event(TurnEvent.DAILY_NUDGE, minutes_later=60 * 17)

    assert chat.flow.offered_try_now is False
    assert chat.text("yes")[0].startswith("Nice work!")  # "yes" to a nudge means done
