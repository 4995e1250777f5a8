"""coach.settings reads the environment as pydantic-settings did: each field from its variable in any case,
keyword arguments first, strings validated as pydantic validates them, defaults validated too."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from coach.domain.study_texts import DEFAULT_HELP_TEXT
from coach.settings import TwilioSettings, WebhookSettings, webhook_settings


def test_fields_come_from_their_variables_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "coach-env")
    monkeypatch.setenv("QUEUE_URL", "https://sqs.example/env.fifo")
    monkeypatch.setenv("AUTO_ENROLL", "true")
    monkeypatch.setenv("not_enrolled_reply_hours", "1.5")  # any case, as pydantic-settings reads it

    from_environment = WebhookSettings.from_environment()
    with_argument = WebhookSettings(table_name="coach-argument")

    assert (from_environment.table_name, from_environment.auto_enroll) == ("coach-env", True)
    assert from_environment.not_enrolled_reply_hours == 1.5
    assert with_argument.table_name == "coach-argument"
    assert with_argument.queue_url == "https://sqs.example/env.fifo"


def test_a_bad_variable_stops_the_function_naming_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEND_ATTEMPTS", "many")

    with pytest.raises(ValidationError, match="send_attempts"):
        TwilioSettings.from_environment()


def test_a_missing_required_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TABLE_NAME", raising=False)
    monkeypatch.setenv("QUEUE_URL", "https://sqs.example/env.fifo")
    webhook_settings.cache_clear()

    with pytest.raises(ValidationError, match="table_name"):
        webhook_settings()
    webhook_settings.cache_clear()


def test_defaults_are_validated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # The built-in HELP_TEXT says {study}: only its validator, run on the default too, fills the name in
    monkeypatch.delenv("HELP_TEXT", raising=False)
    monkeypatch.setenv("STUDY_NAME", "Walk More")

    settings = WebhookSettings(table_name="coach-test", queue_url="q")

    assert "{study}" in DEFAULT_HELP_TEXT
    assert "{study}" not in settings.help_text
    assert "Walk More" in settings.help_text


def test_settings_are_frozen_and_ignore_unknown_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOMETHING_ELSE", "x")
    settings = TwilioSettings.from_environment()

    with pytest.raises(ValidationError):
        settings.send_attempts = 5  # type: ignore[misc]
    assert not hasattr(settings, "something_else")
