"""The study's texts are checked when a function starts: one that would not go out whole in two SMS
segments, as the coach shapes texts, stops the function with a message naming the setting; an empty one is
the built-in text; STUDY_NAME fills {study} in all of them, and the first message says it."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from coach.bots.offline_coach import answer_consent, greeting
from coach.bots.turn import TurnContext
from coach.domain.flow import FlowState
from coach.domain.participant import Participant
from coach.domain.study_texts import (
    DEFAULT_CONSENT_TEXTS,
    DEFAULT_CRISIS_TEXT,
    DEFAULT_HELP_TEXT,
    DEFAULT_NOT_ENROLLED_TEXT,
    DEFAULT_STUDY_NAME,
    checked_text_of_study,
)
from coach.settings import ConversationSettings, FromEnvironment, PromptGeneratorSettings, WebhookSettings

# Each text, and the settings of the function that sends it.
SENT_BY: dict[str, type[FromEnvironment]] = {
    "GREETING_TEXT": ConversationSettings,
    "CONSENT_EXPLANATION": ConversationSettings,
    "CRISIS_TEXT": ConversationSettings,
    "HELP_TEXT": WebhookSettings,
    "NOT_ENROLLED_TEXT": WebhookSettings,
    "OPT_OUT_CONFIRMATION": WebhookSettings,
}
OPT_OUT_LINE = "Reply STOP to opt out, HELP for help."
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The functions' environment with every study text unset."""
    for name in (*SENT_BY, "STUDY_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABLE_NAME", "coach-table")
    monkeypatch.setenv("QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/inbound.fifo")
    return monkeypatch


def turn_context(name: str | None = "Ada Lovelace") -> TurnContext:
    who = Participant.model_validate(
        {
            "id": "p-1",
            "phone_number": "+12065550100",
            "name": name,
            "timezone": "America/New_York",
            "enrolled_at": NOW,
            "created_at": NOW,
            "updated_at": NOW,
        }
    )
    return TurnContext(flow=FlowState.start(who.id, "", NOW), participant=who, now=NOW, rng=random.Random(7))


@pytest.mark.parametrize("variable", sorted(SENT_BY))
def test_an_over_long_text_stops_the_function_naming_the_setting(env: pytest.MonkeyPatch, variable: str) -> None:
    # Given a text that takes three segments
    env.setenv(variable, f"{OPT_OUT_LINE} " + "Some more words. " * 16)

    # When the function starts, then it stops, saying which setting and what to do
    with pytest.raises(ValidationError, match=rf"{variable} takes 3 SMS segments .*; shorten it to 2 segments"):
        SENT_BY[variable]()


@pytest.mark.parametrize("variable", sorted(SENT_BY))
def test_a_text_with_a_character_gsm7_lacks_stops_the_function_when_it_no_longer_fits(
    env: pytest.MonkeyPatch, variable: str
) -> None:
    # Given 140 characters: two segments in GSM-7, but one character GSM-7 lacks makes it UCS-2 (134)
    text = f"{OPT_OUT_LINE} {'a' * 100} \u2713"
    checked_text_of_study(variable, text.replace("\u2713", "v"), "the study")  # fits without it
    env.setenv(variable, text)

    with pytest.raises(ValidationError, match=rf"{variable} takes 3 SMS segments \(\d+ ucs2 units\).*GSM-7 lacks"):
        SENT_BY[variable]()


def test_an_empty_text_is_the_built_in_one_and_no_opt_out_confirmation_is_sent(env: pytest.MonkeyPatch) -> None:
    # Given the template's defaults: every text parameter empty
    for variable in SENT_BY:
        env.setenv(variable, "")

    conversation, webhook = ConversationSettings(), WebhookSettings()

    assert conversation.consent_texts == DEFAULT_CONSENT_TEXTS
    assert conversation.crisis_text == DEFAULT_CRISIS_TEXT
    assert webhook.help_text == DEFAULT_HELP_TEXT.replace("{study}", DEFAULT_STUDY_NAME)
    assert webhook.not_enrolled_text == DEFAULT_NOT_ENROLLED_TEXT.replace("{study}", DEFAULT_STUDY_NAME)
    assert webhook.opt_out_confirmation is None  # Twilio answers STOP itself


def test_the_study_name_is_in_every_text_and_the_first_message_says_it_with_stop_and_help(
    env: pytest.MonkeyPatch,
) -> None:
    # Given a study with its own name
    env.setenv("STUDY_NAME", "the Move More study")
    env.setenv("OPT_OUT_CONFIRMATION", "You're out of {study}. Reply START to rejoin.")

    conversation, webhook = ConversationSettings(), WebhookSettings()
    # When the offline coach greets a participant with the conversation function's texts
    first_message = greeting(turn_context(), conversation.consent_texts)

    # Then the first message names the study and says how to opt out and get help
    assert first_message == [
        "Hi Ada! I'm your habit coach for the Move More study. Over the next few weeks I'll help you build one "
        f"tiny daily habit, by text. Ready to start? Reply YES or NO. {OPT_OUT_LINE}"
    ]
    # And every other text says the study's name
    explained = answer_consent(turn_context(), "what is this?", conversation.consent_texts)
    assert "the Move More study" in explained[0]
    for text in (webhook.help_text, webhook.not_enrolled_text, webhook.opt_out_confirmation):
        assert text is not None
        assert "the Move More study" in text
    # And the prompt generator, which never greets, starts with the same checks
    assert PromptGeneratorSettings().consent_texts == conversation.consent_texts


def test_a_configured_greeting_greets_by_first_name_or_without_one(env: pytest.MonkeyPatch) -> None:
    env.setenv("GREETING_TEXT", f"Hello {{name}}, this is {{study}}. Shall we start? YES or NO. {OPT_OUT_LINE}")
    texts = ConversationSettings().consent_texts

    assert greeting(turn_context("Grace Hopper"), texts)[0].startswith("Hello Grace, this is the SMS Habit Coach")
    assert greeting(turn_context(None), texts)[0].startswith("Hello, this is the SMS Habit Coach study.")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("GREETING_TEXT", "Hi {first}! Reply YES or NO.", "GREETING_TEXT uses {first}"),
        ("GREETING_TEXT", "Hi {name}! This is {study}. Reply YES or NO.", "GREETING_TEXT must name the study"),
        ("HELP_TEXT", "Hi {name}, reply STOP to opt out.", "HELP_TEXT uses {name}"),
        ("STUDY_NAME", "S" * 61, "STUDY_NAME has 61 characters"),
    ],
    ids=["unknown placeholder", "no opt-out line", "name outside the greeting", "long study name"],
)
def test_a_text_the_study_cannot_send_stops_the_function_naming_the_setting(
    env: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    env.setenv(variable, value)

    for settings in {ConversationSettings, WebhookSettings} if variable == "STUDY_NAME" else {SENT_BY[variable]}:
        with pytest.raises(ValidationError, match=message):
            settings()


def test_a_study_name_too_long_for_the_greeting_stops_the_conversation_function(env: pytest.MonkeyPatch) -> None:
    # Given a greeting that fits with the default name, and a long study name said twice in it
    env.setenv("GREETING_TEXT", f"Hi {{name}}! {{study}}: {{study}}. {'x' * 150} {OPT_OUT_LINE}")
    ConversationSettings()
    env.setenv("STUDY_NAME", "S" * 60)

    with pytest.raises(ValidationError, match="GREETING_TEXT takes 3 SMS segments"):
        ConversationSettings()
