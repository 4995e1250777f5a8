"""Where Twilio credentials come from: the environment first, else the secret, read through a stand-in
Secrets Manager client (one read per cache age, a rotated value seen after it, errors that name no value)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from coach.adapters.secrets import SecretsManagerSecrets, SecretUnavailable, TwilioCredentials, twilio_credentials
from coach.domain.errors import DeliveryUnavailable
from coach.settings import TwilioSettings

SID = "AC" + "4" * 32
SECRET = {"account_sid": SID, "auth_token": "secret-token-value", "from_number": "+15005550006"}


@dataclass
class StubSecretsManager:
    """GetSecretValue answering from `answers` (a value, a dict for JSON, or an exception), one per call; the
    last repeats."""

    answers: list[Any] = field(default_factory=lambda: [dict(SECRET)])
    calls: list[str] = field(default_factory=list)

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # boto3's parameter name
        self.calls.append(SecretId)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, dict) and "SecretBinary" in answer:
            return {"Name": SecretId, **answer}
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return {"Name": SecretId, "SecretString": text}


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def secrets(*answers: Any, clock: Clock | None = None) -> tuple[SecretsManagerSecrets, StubSecretsManager]:
    client = StubSecretsManager(list(answers) or [dict(SECRET)])
    return SecretsManagerSecrets(client, monotonic=clock or Clock()), client


def aws_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} for the secret"}}, "GetSecretValue")


@pytest.fixture(autouse=True)
def _no_twilio_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read the environment: a shell with TWILIO_* set must not change what these tests see."""
    for name in ("TWILIO_SECRET_NAME", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TWILIO_API_BASE_URL", "STATUS_CALLBACK_URL", "SECRET_MAX_AGE_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def test_direct_credentials_win_over_the_secret() -> None:
    store, client = secrets()
    settings = TwilioSettings(
        twilio_secret_name="app/twilio", twilio_account_sid=SID, twilio_auth_token="t", twilio_from_number="+1500"
    )

    credentials = twilio_credentials(settings, store)

    assert credentials == TwilioCredentials(SID, "t", "+1500")
    assert client.calls == []


def test_without_all_three_variables_the_secret_is_read_once_per_cache_age() -> None:
    # Given the secret's settings with a two-minute cache age
    clock = Clock()
    store, client = secrets(clock=clock)
    settings = TwilioSettings(twilio_secret_name="app/twilio", twilio_account_sid=SID, secret_max_age_seconds=120)
    # When the credentials are asked for three times within two minutes
    first = twilio_credentials(settings, store)
    clock.now += 60
    second = twilio_credentials(settings, store)
    clock.now += 59
    third = twilio_credentials(settings, store)
    # Then Secrets Manager was asked once, and its values are the credentials
    assert first == second == third == TwilioCredentials(SID, "secret-token-value", "+15005550006")
    assert client.calls == ["app/twilio"]


def test_a_rotated_token_is_picked_up_once_the_cache_age_has_passed() -> None:
    clock = Clock()
    store, client = secrets(dict(SECRET), {**SECRET, "auth_token": "rotated-token"}, clock=clock)
    settings = TwilioSettings(twilio_secret_name="app/twilio", secret_max_age_seconds=300)

    before = twilio_credentials(settings, store)
    clock.now += 299
    still = twilio_credentials(settings, store)
    clock.now += 1
    after = twilio_credentials(settings, store)

    assert (before.auth_token, still.auth_token, after.auth_token) == (
        "secret-token-value",
        "secret-token-value",
        "rotated-token",
    )
    assert client.calls == ["app/twilio", "app/twilio"]


def test_a_cache_age_of_zero_reads_every_time() -> None:
    store, client = secrets()
    settings = TwilioSettings(twilio_secret_name="app/twilio", secret_max_age_seconds=0)

    twilio_credentials(settings, store)
    twilio_credentials(settings, store)

    assert client.calls == ["app/twilio", "app/twilio"]


def test_a_failed_read_is_not_kept_the_next_call_asks_again() -> None:
    # Given Secrets Manager throttling once, then answering
    store, client = secrets(aws_error("ThrottlingException"), dict(SECRET))
    settings = TwilioSettings(twilio_secret_name="app/twilio")
    # When the credentials are asked for twice
    with pytest.raises(DeliveryUnavailable, match="ThrottlingException"):
        twilio_credentials(settings, store)
    credentials = twilio_credentials(settings, store)
    # Then the second call read the secret again and got it
    assert credentials.auth_token == "secret-token-value"
    assert client.calls == ["app/twilio", "app/twilio"]


def test_forgetting_the_secrets_reads_them_again() -> None:
    store, client = secrets(dict(SECRET), {**SECRET, "auth_token": "new-environment"})
    settings = TwilioSettings(twilio_secret_name="app/twilio")

    twilio_credentials(settings, store)
    store.forget()

    assert twilio_credentials(settings, store).auth_token == "new-environment"
    assert client.calls == ["app/twilio", "app/twilio"]


def test_a_messaging_service_sid_is_recognised_as_such() -> None:
    store, _ = secrets({**SECRET, "from_number": "MG" + "5" * 32})

    credentials = twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), store)

    assert credentials.uses_messaging_service
    assert not TwilioCredentials(SID, "t", "+15005550006").uses_messaging_service


def test_no_secret_name_and_no_variables_is_a_clear_error() -> None:
    store, client = secrets()

    with pytest.raises(DeliveryUnavailable, match="TWILIO_SECRET_NAME"):
        twilio_credentials(TwilioSettings(), store)

    assert client.calls == []


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (aws_error("AccessDeniedException"), "AccessDeniedException"),
        (aws_error("ResourceNotFoundException"), "ResourceNotFoundException"),
        (EndpointConnectionError(endpoint_url="https://secretsmanager.example"), "EndpointConnectionError"),
        ("account_sid=AC1 auth_token=secret-token-value", "not JSON"),
        ({"SecretBinary": b"secret-token-value"}, "binary"),
    ],
)
def test_an_unreadable_secret_is_unavailability_naming_the_secret_and_why_never_its_value(
    answer: Any, reason: str
) -> None:
    store, _ = secrets(answer)

    with pytest.raises(DeliveryUnavailable, match=reason) as raised:
        twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), store)

    assert "app/twilio" in str(raised.value)
    assert "secret-token-value" not in str(raised.value)
    assert isinstance(raised.value.__cause__, SecretUnavailable)


def test_a_secret_missing_fields_names_them_but_never_shows_a_value() -> None:
    store, _ = secrets({"account_sid": SID, "auth_token": "secret-token-value"})

    with pytest.raises(DeliveryUnavailable) as raised:
        twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), store)

    assert "from_number" in str(raised.value)
    assert "secret-token-value" not in str(raised.value)
    assert SID not in str(raised.value)


def test_two_secrets_are_kept_apart() -> None:
    store, client = secrets(dict(SECRET), {"api_key": "sk-other"})

    assert store.json("app/twilio", 300) == SECRET
    assert store.json("app/openai", 300) == {"api_key": "sk-other"}
    assert store.json("app/twilio", 300) == SECRET

    assert client.calls == ["app/twilio", "app/openai"]


def test_the_auth_token_stays_out_of_the_repr() -> None:
    assert "secret-token-value" not in repr(TwilioCredentials(SID, "secret-token-value", "+15005550006"))
