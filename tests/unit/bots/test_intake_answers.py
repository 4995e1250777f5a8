"""Intake keeps only answers that mean something (issue 11, item 4): a refusal, a question back or gibberish is
asked again in other words, then with choices to pick by number or by name, then given a default."""

from __future__ import annotations

import pytest

from coach.bots.intake import (
    ASK_AGAIN,
    DEFAULT_DOMAIN,
    DEFAULT_MOTIVATION,
    OFFER_CHOICES,
    QUESTIONS,
)
from coach.bots.turn import TurnEvent
from tests.unit.bots.conversation import Conversation

# The answers that lead to each question, in intake's order.
_BEFORE = {
    "habit_domain": ["yes"],
    "motivation": ["yes", "physical activity"],
    "preferred_time": ["yes", "physical activity", "to have more energy"],
    "prompt_anchor": ["yes", "physical activity", "to have more energy", "7:30am"],
    "additional_info": ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee"],
}


def at_question(question: str) -> Conversation:
    """A participant who consented and answered every question before `question`."""
    chat = Conversation()
    chat.event(TurnEvent.ENROLLED)
    for answer in _BEFORE[question]:
        chat.text(answer)
    assert chat.flow.intake_question == question
    return chat


def stored(chat: Conversation, question: str) -> str | None:
    value: str | None = getattr(chat.flow.user_profile, question)
    return value


ANSWERS: list[tuple[str, str, bool]] = [
    # the habit domain
    ("habit_domain", "no", False),
    ("habit_domain", "nope", False),
    ("habit_domain", "idk", False),
    ("habit_domain", "nothing", False),
    ("habit_domain", "none", False),
    ("habit_domain", "I don't know", False),
    ("habit_domain", "whatever", False),
    ("habit_domain", "what do you mean?", False),
    ("habit_domain", "why?", False),
    ("habit_domain", "like what?", False),
    ("habit_domain", "xkcd qwpoe zzz", False),
    ("habit_domain", "asdfgh", False),
    ("habit_domain", "???", False),
    ("habit_domain", "...", False),
    ("habit_domain", "🤷", False),
    ("habit_domain", "up to you", False),
    ("habit_domain", "ok", False),
    ("habit_domain", "walking", True),
    ("habit_domain", "sleep", True),
    ("habit_domain", "2", True),
    ("habit_domain", "less screen time", True),
    ("habit_domain", "learn to play the guitar", True),
    ("habit_domain", "I want to drink more water and eat less sugar", True),
    ("habit_domain", "yoga 🧘", True),
    # the motivation
    ("motivation", "no", False),
    ("motivation", "idk", False),
    ("motivation", "whatever", False),
    ("motivation", "why?", False),
    ("motivation", "what do you mean?", False),
    ("motivation", "asdf jkl", False),
    ("motivation", "😴", False),
    ("motivation", "lol", False),
    ("motivation", "nothing really", False),
    ("motivation", "2", False),  # no choices were offered yet: a number alone says nothing
    ("motivation", "energy", True),
    ("motivation", "better sleep", True),
    ("motivation", "to have more energy", True),
    ("motivation", "so I can keep up with my kids", True),
    ("motivation", "my doctor told me to", True),
    ("motivation", "less stress 🙏", True),
    # the preferred time: only what the time parser reads
    ("preferred_time", "no", False),
    ("preferred_time", "idk", False),
    ("preferred_time", "whenever", False),
    ("preferred_time", "xkcd", False),
    ("preferred_time", "what?", False),
    ("preferred_time", "7:30am", True),
    ("preferred_time", "evenings", True),
    ("preferred_time", "19:00", True),
    # the anchor
    ("prompt_anchor", "no", False),
    ("prompt_anchor", "nope", False),
    ("prompt_anchor", "I don't know", False),
    ("prompt_anchor", "like what?", False),
    ("prompt_anchor", "xkcd qwpoe zzz", False),
    ("prompt_anchor", "after xkcd", False),
    ("prompt_anchor", "🙄", False),
    ("prompt_anchor", "after coffee", True),
    ("prompt_anchor", "after my morning coffee", True),
    ("prompt_anchor", "when I get home from work", True),
    ("prompt_anchor", "brushing my teeth", True),
    ("prompt_anchor", "before bed", True),
    # anything else: "no" is an answer here
    ("additional_info", "no", True),
    ("additional_info", "nope", True),
    ("additional_info", "I have a bad knee", True),
]


@pytest.mark.parametrize(("question", "answer", "accepted"), ANSWERS)
def test_only_an_answer_that_means_something_is_kept(question: str, answer: str, accepted: bool) -> None:
    # Given a participant asked `question`
    chat = at_question(question)

    # When they answer
    reply = chat.text(answer)

    # Then a real answer is kept and intake moves on; anything else is asked again in other words, nothing kept
    if accepted:
        assert stored(chat, question)
        assert chat.flow.intake_question != question
    else:
        assert stored(chat, question) is None
        assert reply == [ASK_AGAIN[question]]
        assert chat.flow.intake_question == question
        assert chat.flow.intake_retries == 1


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        ("no", "none"),
        ("Nope, that's all", "none"),
        ("nothing", "none"),
        ("asdfgh", "none"),
        ("I have a bad knee", "I have a bad knee"),
        ("no, but my knee hurts", "no, but my knee hurts"),
    ],
)
def test_anything_else_takes_no_as_nothing_to_add(answer: str, kept: str) -> None:
    # Given the last question
    chat = at_question("additional_info")

    # When they answer it
    first_prompt = chat.text(answer)[0]

    # Then the answer, or "none", is kept and the first habit prompt follows
    assert chat.flow.user_profile.additional_info == kept
    assert first_prompt.startswith("Thanks, that's all I need!")


def test_each_ask_again_is_worded_differently_from_the_last() -> None:
    # Given the questions a vague answer can get again
    for question in ("habit_domain", "motivation", "preferred_time", "prompt_anchor"):
        # Then the first ask again rephrases the question, and the second says something else again
        assert len({QUESTIONS[question], ASK_AGAIN[question], OFFER_CHOICES[question]}) == 3


@pytest.mark.parametrize(
    ("question", "vague", "choices"),
    [
        (
            "habit_domain",
            ["no", "what do you mean?"],
            ["1) healthy eating", "2) physical activity", "4) less screen time"],
        ),
        ("motivation", ["why?", "asdf"], ["1) more energy", "2) better sleep", "3) less stress"]),
        (
            "prompt_anchor",
            ["idk", "🙄"],
            ["1) after your morning coffee", "2) after brushing your teeth", "3) after lunch"],
        ),
    ],
)
def test_two_vague_answers_then_choices_are_offered(question: str, vague: list[str], choices: list[str]) -> None:
    # Given a participant asked `question`
    chat = at_question(question)

    # When the first answer means nothing, Then the question comes again in other words
    assert chat.text(vague[0]) == [ASK_AGAIN[question]]

    # When the second means nothing either, Then concrete choices are offered, by number
    [offer] = chat.text(vague[1])
    assert offer == OFFER_CHOICES[question]
    assert all(choice in offer for choice in choices)
    assert stored(chat, question) is None
    assert chat.flow.intake_retries == 2
    reasons = [e.data["reason"] for e in chat.events if e.kind == "intake_vague_answer"]
    assert len(reasons) == 2


@pytest.mark.parametrize(
    ("question", "pick", "kept", "asked_next"),
    [
        ("habit_domain", "4", "less screen time", "motivation"),
        ("habit_domain", "the first one", "healthy eating", "motivation"),
        ("motivation", "2", "sleep better", "preferred_time"),
        ("motivation", "#3", "feel less stressed", "preferred_time"),
        ("prompt_anchor", "3", "after lunch", "additional_info"),
        ("prompt_anchor", "option 1 please", "after my morning coffee", "additional_info"),
    ],
)
def test_a_choice_is_picked_by_number(question: str, pick: str, kept: str, asked_next: str) -> None:
    # Given the choices offered after two vague answers
    chat = at_question(question)
    chat.text("no")
    chat.text("idk")

    # When the participant replies with a number
    reply = chat.text(pick)

    # Then that choice is kept and intake moves on
    assert stored(chat, question) == kept
    assert chat.flow.intake_question == asked_next
    assert reply == [QUESTIONS[asked_next]]
    assert chat.flow.intake_retries == 0


@pytest.mark.parametrize(
    ("question", "words", "kept"),
    [
        ("habit_domain", "eating", "healthy eating"),
        ("motivation", "energy", "have more energy"),
        ("motivation", "the sleep one", "sleep better"),
        ("prompt_anchor", "coffee", "after my morning coffee"),
        ("prompt_anchor", "teeth", "after brushing my teeth"),
        ("prompt_anchor", "after my evening tea", "after my evening tea"),  # their own routine, not a choice
        ("motivation", "so I can sleep through the night", "sleep through the night"),
    ],
)
def test_a_choice_is_picked_by_its_words_and_an_own_answer_still_counts(question: str, words: str, kept: str) -> None:
    # Given the choices offered
    chat = at_question(question)
    chat.text("nope")
    chat.text("???")

    # When the participant names one, or answers in their own words
    chat.text(words)

    # Then that is what is kept
    assert stored(chat, question) == kept


@pytest.mark.parametrize(
    ("question", "vague", "answer", "kept"),
    [
        ("habit_domain", "no", "walking", "physical activity"),
        ("habit_domain", "what do you mean?", "learn guitar", "learn guitar"),
        ("motivation", "idk", "so I can play with my kids", "play with my kids"),
        ("prompt_anchor", "xkcd qwpoe zzz", "after my shower", "after my shower"),
        ("preferred_time", "no", "evenings", "19:00"),
    ],
)
def test_a_real_answer_after_a_vague_one_is_kept(question: str, vague: str, answer: str, kept: str) -> None:
    # Given a vague answer, asked again
    chat = at_question(question)
    assert chat.text(vague) == [ASK_AGAIN[question]]

    # When the participant answers for real
    chat.text(answer)

    # Then the answer is kept and the count of vague answers starts again for the next question
    assert stored(chat, question) == kept
    assert chat.flow.intake_question != question
    assert chat.flow.intake_retries == 0


def test_no_is_never_the_habit_and_three_refusals_end_in_a_default_on_record() -> None:
    # Given the habit question
    chat = at_question("habit_domain")

    # When the participant says no to it, then to the rephrasing, then to the choices
    replies = [chat.text("no") for _ in range(3)]

    # Then intake goes on with a default it says it chose, and the record says so
    assert chat.flow.user_profile.habit_domain == DEFAULT_DOMAIN
    assert replies[-1] == [
        "Let's start with a little physical activity; you can change it any time. " + QUESTIONS["motivation"]
    ]
    [default] = [e for e in chat.events if e.kind == "intake_default_used"]
    assert default.data == {"question": "habit_domain", "value": DEFAULT_DOMAIN}


def test_a_motivation_never_given_gets_a_default_that_reads_in_the_prompt() -> None:
    # Given a participant who gives no reason, three times
    chat = at_question("motivation")
    for answer in ("why?", "idk", "whatever"):
        chat.text(answer)

    # When the rest of intake goes through
    assert chat.flow.user_profile.motivation == DEFAULT_MOTIVATION
    chat.text("7:30am")
    chat.text("after my morning coffee")
    first_prompt = chat.text("no")[0]

    # Then the prompt carries the default as a reason, not the refusal
    assert "it helps you feel a little better each day" in first_prompt


def test_each_vague_answer_is_recorded_with_why_it_meant_nothing() -> None:
    # Given the anchor question
    chat = at_question("prompt_anchor")

    # When the answers are a refusal, then a question back
    chat.text("no")
    chat.text("like what?")

    # Then each is on record, with its reason
    vague = [e.data for e in chat.events if e.kind == "intake_vague_answer"]
    assert vague == [
        {"question": "prompt_anchor", "retries": 1, "reason": "refusal"},
        {"question": "prompt_anchor", "retries": 2, "reason": "question"},
    ]


def test_gibberish_mentioned_in_passing_is_not_taken_as_the_anchor() -> None:
    # Given the motivation question
    chat = at_question("motivation")

    # When the answer also mentions a routine made of no real words
    chat.text("I want to sleep better, after qwpoe")

    # Then the motivation is kept and the anchor is still to be asked
    assert chat.flow.user_profile.motivation
    assert chat.flow.user_profile.prompt_anchor is None
