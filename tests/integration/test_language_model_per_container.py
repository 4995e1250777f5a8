"""The conversation function's LLM is built once per container (per settings), not once per turn: every turn
uses the same model and the same `openai` client (one connection pool); a rotated secret key builds a new one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from coach.bootstrap import _configured_language_model, forget_built_services
from coach.ports import LanguageModel
from coach.settings import ConversationSettings
from tests.support.aws import Resources
from tests.support.conversation import harness
from tests.support.openai_server import ScriptedServer, completion, scripted_server


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedServer]:
    """A scripted OpenAI-compatible server, named by the environment as on AWS (OPENAI_BASE_URL, OPENAI_API_KEY)."""
    with scripted_server() as scripted:
        for name, value in {
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": scripted.url,
            "OPENAI_MODEL": "scripted-model",
            "OPENAI_MAX_RETRIES": "0",
        }.items():
            monkeypatch.setenv(name, value)
        forget_built_services()
        yield scripted
        forget_built_services()


def test_two_turns_use_the_same_model_and_client(server: ScriptedServer) -> None:
    # Given the conversation service as the function builds it: its LLM from the environment
    server.script = [completion("What habit would you like to build?")]
    with harness("memory") as h:
        service = h.build(language_model=None)
        h.service = service
        runner = service.coach
        configured = runner.language_model
        used: list[LanguageModel | None] = []

        def recorded() -> LanguageModel | None:
            model = configured()
            used.append(model)
            return model

        runner.language_model = recorded
        participant = h.enroll()
        h.text(participant, "yes")  # consent: scripted, no LLM
        # When the participant answers twice in the LLM-led intake, each answer a turn that asks the LLM
        first = h.text(participant, "walking more")
        second = h.text(participant, "to have more energy")
    # Then the LLM answered both turns, through one model and one openai client
    assert first
    assert second
    assert len(server.requests) == 2
    models = [model for model in used if model is not None]
    assert len(models) == len(used) == 4  # every turn asked: the greeting, consent and the two answers
    assert all(model is models[0] for model in models)
    assert all(model.client is models[0].client for model in models)  # type: ignore[attr-defined]


def test_other_settings_get_their_own_model(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    build = _configured_language_model(ConversationSettings(table_name="coach-test"))
    first = build()

    assert build() is first
    monkeypatch.setenv("OPENAI_MODEL", "another-model")
    forget_built_services()  # a new container, or the local stack restarted with other settings
    other = build()

    assert other is not None
    assert other is not first
    assert other is build()


def test_a_key_from_the_secret_is_reused_until_the_secret_changes(
    aws: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given no key in the environment, only the OpenAI secret the template names
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    forget_built_services()
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name="coach-test/openai", SecretString=json.dumps({"api_key": "sk-first"}))
    build = _configured_language_model(
        ConversationSettings(table_name=aws.table_name, openai_secret_name="coach-test/openai")
    )
    # When turns ask for the model, and the key is rotated in between
    first, again = build(), build()
    secrets.put_secret_value(SecretId="coach-test/openai", SecretString=json.dumps({"api_key": "sk-second"}))
    forget_built_services()  # stands for the 5 minutes the secret is kept
    rotated, rotated_again = build(), build()
    # Then one model per key: reused while the key stays, a new one with the new key
    assert first is not None
    assert first is again
    assert rotated is not None
    assert rotated is rotated_again
    assert rotated is not first
    assert [_key(first), _key(rotated)] == ["sk-first", "sk-second"]


def test_without_a_usable_secret_the_offline_coach_answers(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    forget_built_services()
    boto3.client("secretsmanager").create_secret(Name="coach-test/no-key", SecretString=json.dumps({"other": 1}))

    for name in ("coach-test/absent", "coach-test/no-key"):
        build = _configured_language_model(ConversationSettings(table_name=aws.table_name, openai_secret_name=name))
        assert build() is None


def _key(model: Any) -> str:
    return str(model._settings.openai_api_key)
