"""Where Twilio credentials come from: the environment first, else the secret, through a stand-in provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from coach.adapters.secrets import TwilioCredentials, twilio_credentials
from coach.domain.errors import DeliveryUnavailable
from coach.settings import TwilioSettings

SID = "AC" + "4" * 32
SECRET = {"account_sid": SID, "auth_token": "secret-token-value", "from_number": "+15005550006"}


@dataclass
class StubProvider:
    """powertools' SecretsProvider.get(), answering from a dict (or raising)."""

    answer: Any = field(default_factory=lambda: dict(SECRET))
    calls: list[dict[str, Any]] = field(default_factory=list)

    def get(self, name: str, **options: Any) -> Any:
        self.calls.append({"name": name, **options})
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture(autouse=True)
def _no_twilio_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read the environment: a shell with TWILIO_* set must not change what these tests see."""
    for name in ("TWILIO_SECRET_NAME", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TWILIO_API_BASE_URL", "STATUS_CALLBACK_URL"):
        monkeypatch.delenv(name, raising=False)


def test_direct_credentials_win_over_the_secret() -> None:
    provider = StubProvider()
    settings = TwilioSettings(
        twilio_secret_name="app/twilio", twilio_account_sid=SID, twilio_auth_token="t", twilio_from_number="+1500"
    )

    credentials = twilio_credentials(settings, provider)

    assert credentials == TwilioCredentials(SID, "t", "+1500")
    assert provider.calls == []


def test_without_all_three_variables_the_secret_is_read_with_its_cache_age() -> None:
    provider = StubProvider()
    settings = TwilioSettings(twilio_secret_name="app/twilio", twilio_account_sid=SID, secret_max_age_seconds=120)

    credentials = twilio_credentials(settings, provider)

    assert credentials == TwilioCredentials(SID, "secret-token-value", "+15005550006")
    assert provider.calls == [{"name": "app/twilio", "transform": "json", "max_age": 120}]


def test_a_messaging_service_sid_is_recognised_as_such() -> None:
    provider = StubProvider({**SECRET, "from_number": "MG" + "5" * 32})

    credentials = twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), provider)

    assert credentials.uses_messaging_service
    assert not TwilioCredentials(SID, "t", "+15005550006").uses_messaging_service


def test_no_secret_name_and_no_variables_is_a_clear_error() -> None:
    with pytest.raises(DeliveryUnavailable, match="TWILIO_SECRET_NAME"):
        twilio_credentials(TwilioSettings(), StubProvider())


def test_an_unreadable_secret_is_unavailability_naming_the_secret() -> None:
    provider = StubProvider(GetParameterError("AccessDeniedException"))

    with pytest.raises(DeliveryUnavailable, match="app/twilio"):
        twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), provider)


def test_a_secret_missing_fields_names_them_but_never_shows_a_value() -> None:
    provider = StubProvider({"account_sid": SID, "auth_token": "secret-token-value"})

    with pytest.raises(DeliveryUnavailable) as raised:
        twilio_credentials(TwilioSettings(twilio_secret_name="app/twilio"), provider)

    assert "from_number" in str(raised.value)
    assert "secret-token-value" not in str(raised.value)
    assert SID not in str(raised.value)


def test_the_auth_token_stays_out_of_the_repr() -> None:
    assert "secret-token-value" not in repr(TwilioCredentials(SID, "secret-token-value", "+15005550006"))
