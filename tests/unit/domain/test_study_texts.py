"""The study's texts: every default passes its own start-up check, whatever the study's name; the greeting
names the study, says STOP and HELP, and greets by first name only when the text still goes out whole."""

from __future__ import annotations

import pytest

from coach.domain.sms_text import count_segments
from coach.domain.study_texts import (
    DEFAULT_CONSENT_EXPLANATION,
    DEFAULT_CONSENT_TEXTS,
    DEFAULT_CRISIS_TEXT,
    DEFAULT_GREETING,
    DEFAULT_HELP_TEXT,
    DEFAULT_NOT_ENROLLED_TEXT,
    DEFAULT_STUDY_NAME,
    LONGEST_FIRST_NAME,
    LONGEST_STUDY_NAME,
    STUDY_TEXT_SEGMENTS,
    ConsentTexts,
    checked_greeting,
    checked_study_name,
    checked_study_text,
    checked_text_of_study,
)

STUDY_NAMES = [DEFAULT_STUDY_NAME, "S" * LONGEST_STUDY_NAME]
# setting -> its default; each names the study through {study}
TEXTS_OF_STUDY = {
    "CONSENT_EXPLANATION": DEFAULT_CONSENT_EXPLANATION,
    "HELP_TEXT": DEFAULT_HELP_TEXT,
    "NOT_ENROLLED_TEXT": DEFAULT_NOT_ENROLLED_TEXT,
}
OPT_OUT_LINE = "Reply STOP to opt out, HELP for help."


@pytest.mark.parametrize("study", STUDY_NAMES, ids=["default name", "longest name"])
def test_every_default_passes_its_own_check_whatever_the_studys_name(study: str) -> None:
    assert checked_study_text("CRISIS_TEXT", DEFAULT_CRISIS_TEXT) == DEFAULT_CRISIS_TEXT
    for setting, default in TEXTS_OF_STUDY.items():
        checked = checked_text_of_study(setting, default, study)
        assert study in checked
        assert count_segments(checked).segments <= STUDY_TEXT_SEGMENTS
    greeting = checked_greeting("GREETING_TEXT", DEFAULT_GREETING, study)
    longest = ConsentTexts(greeting=greeting, explanation="").greeting_to("N" * LONGEST_FIRST_NAME)
    assert "N" * LONGEST_FIRST_NAME in longest
    assert count_segments(longest).segments <= STUDY_TEXT_SEGMENTS


def test_the_default_greeting_names_the_study_asks_for_consent_and_says_stop_and_help() -> None:
    greeting = DEFAULT_CONSENT_TEXTS.greeting_to("Ada")

    assert greeting.startswith("Hi Ada! I'm your habit coach for the SMS Habit Coach study.")
    assert "Reply YES or NO." in greeting
    assert greeting.endswith(OPT_OUT_LINE)
    assert DEFAULT_STUDY_NAME in DEFAULT_CONSENT_TEXTS.explanation


def test_without_a_first_name_the_greeting_leaves_out_the_name_and_its_space() -> None:
    assert DEFAULT_CONSENT_TEXTS.greeting_to(None).startswith("Hi! I'm your habit coach")


def test_a_name_that_would_push_the_greeting_past_its_segments_is_left_out_so_the_stop_line_stays() -> None:
    # Given a first name GSM-7 lacks: it would make the whole text UCS-2, 67 characters a segment
    name = "\u5f20\u4f1f"

    # When the greeting is written for it
    greeting = DEFAULT_CONSENT_TEXTS.greeting_to(name)

    # Then it greets without the name, whole, opt-out line and all
    assert greeting == DEFAULT_CONSENT_TEXTS.greeting_to(None)
    assert greeting.endswith(OPT_OUT_LINE)


def test_a_name_that_fits_is_kept_even_when_gsm7_lacks_it() -> None:
    texts = ConsentTexts(greeting=f"Hi {{name}}! {OPT_OUT_LINE}", explanation="")

    assert texts.greeting_to("\u5f20\u4f1f") == f"Hi \u5f20\u4f1f! {OPT_OUT_LINE}"


def test_study_is_filled_in_and_name_kept_for_each_participant() -> None:
    greeting = checked_greeting("GREETING_TEXT", f"Hi {{name}}, {{study}} here. {OPT_OUT_LINE}", "the Move study")

    assert greeting == f"Hi {{name}}, the Move study here. {OPT_OUT_LINE}"


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        (f"Hi {{first_name}}! {{study}}. {OPT_OUT_LINE}", "{first_name}"),
        (f"Hi {{Name}}! {{study}}. {OPT_OUT_LINE}", "{Name}"),
        (f"Hi {{name! {{study}}. {OPT_OUT_LINE}", "a brace outside a placeholder"),
        (f"Hi name}}! {{study}}. {OPT_OUT_LINE}", "a brace outside a placeholder"),
    ],
)
def test_a_greeting_with_an_unknown_placeholder_or_a_stray_brace_is_refused(text: str, wrong: str) -> None:
    with pytest.raises(ValueError, match=r"GREETING_TEXT uses .*the only placeholders it may use are {name} and"):
        checked_greeting("GREETING_TEXT", text, DEFAULT_STUDY_NAME)
    with pytest.raises(ValueError, match=wrong):
        checked_greeting("GREETING_TEXT", text, DEFAULT_STUDY_NAME)


def test_only_the_greeting_may_greet_by_name() -> None:
    with pytest.raises(ValueError, match=r"HELP_TEXT uses {name}; the only placeholders it may use are {study}$"):
        checked_text_of_study("HELP_TEXT", "Hi {name}! Reply STOP to opt out.", DEFAULT_STUDY_NAME)


@pytest.mark.parametrize(
    "text",
    [
        "Hi {name}! Welcome to {study}. Reply YES or NO.",  # no STOP, no HELP
        "Hi {name}! Welcome. Reply YES or NO. Reply STOP to opt out, HELP for help.",  # no study
    ],
    ids=["no opt-out line", "no study"],
)
def test_a_greeting_must_name_the_study_and_say_stop_and_help(text: str) -> None:
    with pytest.raises(ValueError, match="GREETING_TEXT must name the study"):
        checked_greeting("GREETING_TEXT", text, DEFAULT_STUDY_NAME)


def test_a_greeting_must_fit_with_the_longest_first_name() -> None:
    # Given a greeting that fits two segments as written, but not with a 30-character name in it
    text = f"Hi {{name}}! {{study}}. {OPT_OUT_LINE} " + "x" * (306 - 80)
    assert count_segments(text.format(name="", study=DEFAULT_STUDY_NAME)).segments == 2

    with pytest.raises(ValueError, match="GREETING_TEXT with a 30-character first name takes 3 SMS segments"):
        checked_greeting("GREETING_TEXT", text, DEFAULT_STUDY_NAME)


def test_the_study_name_is_short_tidy_and_free_of_braces() -> None:
    assert checked_study_name("  the   Move More\tstudy ") == "the Move More study"
    with pytest.raises(ValueError, match="STUDY_NAME has 61 characters; shorten it to 60"):
        checked_study_name("S" * 61)
    with pytest.raises(ValueError, match="STUDY_NAME has a brace"):
        checked_study_name("the {study}")
    with pytest.raises(ValueError, match="STUDY_NAME is empty"):
        checked_study_name("   ")
