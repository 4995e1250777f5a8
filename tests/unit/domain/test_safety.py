"""The safety screen on inbound texts and the check on what the coach writes (issue 11).

The labelled set (safety_examples.tsv) holds what the screen must catch, each with its category, and what it
must leave alone: coaching idioms, denials, other people's words and ordinary replies.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.domain.safety import SCREEN_CHARS, SafetyCategory, SafetyHit, check_coach_output, screen

EXAMPLES = Path(__file__).with_name("safety_examples.tsv")
MAX_FALSE_POSITIVE_RATE = 0.02
REASONS = ("link", "calories_or_weight_numbers", "medical_advice", "diet_advice")


def _examples() -> list[tuple[str, str]]:
    with EXAMPLES.open(encoding="utf-8", newline="") as rows:
        return [(row["expected"], row["text"]) for row in csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)]


def _category(text: str) -> str:
    hit = screen(text)
    return "none" if hit is None else hit.category.value


# --- the labelled set ---------------------------------------------------------------------------------------


def test_the_labelled_set_is_large_enough_and_uses_known_labels() -> None:
    counts = Counter(expected for expected, _ in _examples())
    assert set(counts) <= {"none", *(c.value for c in SafetyCategory)}
    assert all(counts[c.value] >= 10 for c in SafetyCategory)
    assert counts["crisis"] >= 40
    assert sum(counts[c.value] for c in SafetyCategory) >= 110
    assert counts["none"] >= 110


def test_every_positive_example_is_caught_in_its_category() -> None:
    """Given the texts that speak of a crisis, an emergency, abuse or an eating disorder, when each is screened,
    then every one is caught, in the category it is labelled with."""
    positives = [(expected, text) for expected, text in _examples() if expected != "none"]

    missed = [(expected, _category(text), text) for expected, text in positives if _category(text) != expected]

    assert not missed, "\n".join(f"expected {e}, got {g}: {t}" for e, g, t in missed)


def test_false_positives_on_the_negative_examples_are_at_most_two_percent() -> None:
    """Given idioms, denials, third-party mentions and ordinary replies, when each is screened, then at most 2%
    are flagged (the set is kept at none)."""
    negatives = [text for expected, text in _examples() if expected == "none"]

    flagged = [(text, screen(text)) for text in negatives if screen(text) is not None]

    rate = len(flagged) / len(negatives)
    assert rate <= MAX_FALSE_POSITIVE_RATE, "\n".join(f"{hit}: {text}" for text, hit in flagged)
    print(f"false positives: {len(flagged)} of {len(negatives)}", *(f"{hit}: {text}" for text, hit in flagged))


# --- denial -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "denied"),
    [
        ("I'm going to hurt myself", "I'm not going to hurt myself"),
        ("I thought about suicide", "I never thought about suicide"),
        ("I want to die", "I don't want to die, I want to live healthier"),
        ("I'm suicidal", "I'm not suicidal, just stressed"),
        ("I have thoughts of self harm", "no thoughts of self harm"),
        ("I will kill myself", "I would never kill myself"),
        ("I have chest pain", "I have no chest pain, just sore muscles"),
        ("I passed out", "I didn't pass out"),
        ("I'm starving myself", "I'm not starving myself"),
        ("I feel unsafe at home", "I don't feel unsafe at home"),
        ("I purge", "I've never purged"),
        ("he hit me", "he has never hit me"),
        ("I want to die", "I no longer want to die"),
    ],
)
def test_a_denied_statement_is_not_flagged(said: str, denied: str) -> None:
    assert screen(said) is not None
    assert screen(denied) is None


@pytest.mark.parametrize(
    "text",
    [
        "I'm trying not to hurt myself",
        "I can't promise I won't hurt myself",
        "I don't know why but I want to die",
        "I can't stop thinking about killing myself",
        "no I want to die",
        "I'm not okay. I want to die",
        "I don't want to live anymore",
    ],
)
def test_a_denial_that_is_doubted_or_belongs_elsewhere_still_flags(text: str) -> None:
    """A negation only clears what it denies: "trying not to", "can't stop", a "no" that answers, a "not" in
    another clause, and phrases that are negative by nature still count."""
    hit = screen(text)
    assert hit is not None
    assert hit.category is SafetyCategory.CRISIS


# --- spelling -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "kms",
        "im gonna kms",
        "i wanna die",
        "wanna dieeee",
        "i want 2 die",
        "I  want   to    die",
        "I WANT TO DIE",
        "I dont want to live anymore",
        "I don\u2019t want to live anymore",
        "\u201cI want to die\u201d",
        "I\u2019m suicidal",
        "im sucidal",
        "sui\u200bcidal",
        "\uff29 want to die",  # a full-width letter
        "I want to kill my self",
        "idw to live",
        "thinking bout suicide",
    ],
)
def test_sms_spellings_curly_quotes_and_spacing_are_read_as_written_out(text: str) -> None:
    hit = screen(text)
    assert hit is not None
    assert hit.category is SafetyCategory.CRISIS


@pytest.mark.parametrize(
    ("denied", "said"),
    [
        ("Im not gonna kms lol", "im gonna kms lol"),
        ("dont worry im not gonna hurt myself", "im gonna hurt myself"),
        ("I dont wanna die", "I wanna die"),
    ],
)
def test_denials_are_read_in_sms_spelling_too(denied: str, said: str) -> None:
    assert screen(denied) is None
    assert screen(said) is not None


def test_kilometres_are_not_kms() -> None:
    assert screen("ran 5 kms this morning") is None
    assert screen("did two kms before work") is None
    assert screen("ugh kms") is not None


# --- whose words --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        'my friend said "I want to die" as a joke',
        "my friend said \u2018I want to die\u2019 as a joke",
        "my friend\u2019s brother texted me 'I want to kill myself lol'",
        'the song goes "I wanna die" lol',
        'we watched the movie "I Want to Die Tonight"',
    ],
)
def test_words_quoted_from_someone_else_or_a_title_are_not_the_texters_own(text: str) -> None:
    assert screen(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "I said 'I want to die' and I meant it",
        "I told my friend \u201cI want to die\u201d",
        "my friend said I should kill myself",
        "My therapist asked if I was suicidal and I said yes",
    ],
)
def test_the_texters_own_words_count_even_when_quoted_or_reported(text: str) -> None:
    hit = screen(text)
    assert hit is not None
    assert hit.category is SafetyCategory.CRISIS


@pytest.mark.parametrize(
    "text",
    [
        "my friend is suicidal and I don't know how to help",
        "she said she wanted to die after the exam lol",
        "my aunt tried to commit suicide years ago",
        "there was a news story about a man who killed himself",
    ],
)
def test_someone_elses_crisis_is_not_the_texters(text: str) -> None:
    """The screen is about the participant; a friend's crisis is not flagged (the coach is no crisis service
    for third parties, and flagging grief or news would teach people not to mention it)."""
    assert screen(text) is None


def test_a_medical_emergency_counts_whoever_has_it() -> None:
    hit = screen("my dad is having a stroke")
    assert hit == SafetyHit(SafetyCategory.MEDICAL_EMERGENCY, "medical_emergency.heart_attack_or_stroke")


def test_a_question_about_an_emergency_is_not_one() -> None:
    assert screen("what should I do if someone faints during a workout?") is None
    assert screen("my doctor said to call 911 if I ever get chest pain") is None
    assert screen("my chest hurts, what if it's a heart attack") is not None


# --- doubt, order and what a hit holds ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["ugh I want to die, Monday again lol", "kms lol", "I want to die after that run"])
def test_a_first_person_statement_in_doubt_is_flagged(text: str) -> None:
    """A missed crisis costs more than a careful reply to a joke."""
    hit = screen(text)
    assert hit is not None
    assert hit.category is SafetyCategory.CRISIS


def test_the_most_urgent_category_wins() -> None:
    hit = screen("I took a bunch of pills and I want to die")
    assert hit is not None
    assert hit.category is SafetyCategory.MEDICAL_EMERGENCY


def test_a_hit_names_its_category_and_rule_and_holds_no_copy_of_the_text() -> None:
    text = "honestly I just want to kill myself"

    hit = screen(text)

    assert hit == SafetyHit(SafetyCategory.CRISIS, "crisis.kill_myself")
    assert [f.name for f in dataclasses.fields(SafetyHit)] == ["category", "rule"]
    assert "honestly" not in repr(hit)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.rule = text  # type: ignore[misc]


# --- bounded, linear reading --------------------------------------------------------------------------------


def test_only_the_first_screen_chars_are_read() -> None:
    filler = "x" * (SCREEN_CHARS - len("i want to die") - 1)
    assert screen(f"{filler} i want to die") is not None
    assert screen("x" * SCREEN_CHARS + " i want to die") is None


# Inputs shaped to make a backtracking pattern fail late: repeated bridges, subjects, quotes and partial phrases.
_PATHOLOGICAL = [
    ("i " * SCREEN_CHARS, None),
    ("want to " * SCREEN_CHARS, None),
    ("not " * SCREEN_CHARS, None),
    ("he always " * SCREEN_CHARS, None),
    ("my dad has been " * SCREEN_CHARS, None),
    ('he said "' * SCREEN_CHARS, None),
    ("'" * SCREEN_CHARS, None),
    ("my friend said '" + "a " * SCREEN_CHARS, None),
    ("binge " * SCREEN_CHARS, None),
    ("self " * SCREEN_CHARS, None),
    ("a" * SCREEN_CHARS * 10, None),
    ("hit my head " * SCREEN_CHARS, None),
    ("how many " * SCREEN_CHARS, None),
    ("i want to " * (SCREEN_CHARS // 10 - 1) + "die", SafetyCategory.CRISIS),
    ("kill myself " * SCREEN_CHARS, SafetyCategory.CRISIS),
]


@pytest.mark.parametrize(("text", "expected"), _PATHOLOGICAL)
def test_adversarial_long_texts_screen_to_their_answer_quickly(text: str, expected: SafetyCategory | None) -> None:
    """A pattern that backtracks would not finish on these; the bound is some 80 times what the slowest takes."""
    started = time.perf_counter()
    hit = screen(text)
    elapsed = time.perf_counter() - started

    assert (None if hit is None else hit.category) == expected
    assert elapsed < 0.5


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=2 * SCREEN_CHARS))
def test_any_text_screens_to_a_hit_or_none_without_crashing(text: str) -> None:
    hit = screen(text)
    assert hit is None or hit.rule.startswith(f"{hit.category.value}.")
    assert all(reason in REASONS for reason in check_coach_output(text))


@pytest.mark.parametrize("text", ["a" * 20_000 + ".", "1" * 20_000 + " ", "www" * 5_000, "a." * 10_000, "x-" * 10_000])
def test_adversarial_coach_texts_are_checked_quickly(text: str) -> None:
    started = time.perf_counter()
    reasons = check_coach_output(text)
    elapsed = time.perf_counter() - started

    assert "calories_or_weight_numbers" not in reasons
    assert elapsed < 0.5


# --- what the coach may write -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "After your morning coffee, try 10 slow squats. Reply DONE when you have.",
        "Time to drink a glass of water!",
        "drink a glass of water",
        "Swap one sugary drink for water today.",
        "Add one piece of fruit to your breakfast.",
        "Walk fast for one minute after lunch.",
        "Take 5 slow, deep breaths.",
        "Take a 10-minute walk after dinner.",
        "Grab your 2-pound weights and do 10 curls.",
        "If you have health worries, please talk to your doctor.",
        "Try a mini digital detox: phone face down for a minute.",
        "Great work.Keep going!",
        "e.g. a walk at 7 a.m.",
        "You did 3 days in a row - 100% of the week!",
        "Take your vitamins after breakfast.",
        "Lunch at 12:30? Try three mindful bites.",
        "Add more veg to your diet, one bite at a time.",
        "",
    ],
)
def test_an_ordinary_nudge_passes(text: str) -> None:
    assert check_coach_output(text) == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Visit example.com for tips", "link"),
        ("See https://x.co/abc", "link"),
        ("www.health.gov has more", "link"),
        ("Try bit.ly/squats", "link"),
        ("email me at coach@study.org", "link"),
        ("Aim to lose 5 pounds by June", "calories_or_weight_numbers"),
        ("That snack is 200 kcal", "calories_or_weight_numbers"),
        ("Try a 500-calorie breakfast", "calories_or_weight_numbers"),
        ("You could drop 2lbs a week", "calories_or_weight_numbers"),
        ("Get down to 70 kg", "calories_or_weight_numbers"),
        ("Lose ten pounds this month", "calories_or_weight_numbers"),
        ("Take 200 mg of ibuprofen", "medical_advice"),
        ("Take some ibuprofen for the soreness", "medical_advice"),
        ("Try melatonin for sleep", "medical_advice"),
        ("Stop taking your medication before workouts", "medical_advice"),
        ("Maybe skip your meds today", "medical_advice"),
        ("It sounds like you might have depression", "medical_advice"),
        ("I'd diagnose that as a sprain", "medical_advice"),
        ("Try intermittent fasting", "diet_advice"),
        ("Fast for 16 hours", "diet_advice"),
        ("Cut out carbs at dinner", "diet_advice"),
        ("Try counting your calories", "diet_advice"),
        ("Aim for a calorie deficit", "diet_advice"),
        ("Skip breakfast tomorrow", "diet_advice"),
        ("Don\u2019t eat after 7pm", "diet_advice"),
        ("Try the keto diet", "diet_advice"),
        ("Go on a diet", "diet_advice"),
        ("A low-carb lunch helps", "diet_advice"),
    ],
)
def test_a_coach_text_that_may_not_go_out_names_its_reason(text: str, reason: str) -> None:
    assert check_coach_output(text) == [reason]


def test_a_text_with_several_faults_names_each_once_in_order() -> None:
    text = "Skip lunch, take 500 mg of caffeine pills and lose 3 kg: see diet.com or www.fast.org"

    assert check_coach_output(text) == ["link", "calories_or_weight_numbers", "medical_advice", "diet_advice"]
