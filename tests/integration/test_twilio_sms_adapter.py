"""TwilioSmsSender with the real twilio client against the fake Twilio over HTTP on 127.0.0.1: what is
sent, retries on 500/429 and lost answers, final refusals, lookups, and credentials from moto's Secrets
Manager. Backoff sleeps are recorded, never slept."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from coach.adapters.twilio_sms import TwilioSmsSender
from coach.bootstrap import forget_built_services
from coach.domain.errors import DeliveryRejected, DeliveryUnavailable
from coach.settings import TwilioSettings
from tests.support.twilio import ACCOUNT, ServedFake

ALICE = "+12065550100"


def closed_port() -> int:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return int(unused.getsockname()[1])


# Nothing listens there: the fake's status callbacks fail at once and never leave this machine.
CALLBACK = f"http://127.0.0.1:{closed_port()}/twilio/status"


@pytest.fixture(autouse=True)
def _no_twilio_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests say which credentials they mean; a shell with TWILIO_* set must not change that."""
    for name in ("SECRET_NAME", "ACCOUNT_SID", "AUTH_TOKEN", "FROM_NUMBER", "API_BASE_URL"):
        monkeypatch.delenv(f"TWILIO_{name}", raising=False)
    monkeypatch.delenv("STATUS_CALLBACK_URL", raising=False)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def sender(served: ServedFake, sleeps: Sleeps | None = None, **overrides: Any) -> TwilioSmsSender:
    settings: dict[str, Any] = {
        "twilio_account_sid": ACCOUNT.account_sid,
        "twilio_auth_token": ACCOUNT.auth_token,
        "twilio_from_number": ACCOUNT.from_number,
        "twilio_api_base_url": served.base_url,
        "status_callback_url": CALLBACK,
        "send_timeout_seconds": 5,
        **overrides,
    }
    return TwilioSmsSender(TwilioSettings(**settings), sleep=sleeps if sleeps is not None else Sleeps())


def test_a_message_reaches_the_fake_with_our_number_and_callback(served: ServedFake) -> None:
    sent = sender(served).send(ALICE, "Time for your 1-minute stretch?")

    [recorded] = served.fake.messages()
    assert recorded["sid"] == sent.sid
    assert (recorded["to"], recorded["from"], recorded["body"]) == (ALICE, "+15005550006", sent.body)
    assert sent.status == "queued"
    assert sent.date_created is not None
    assert recorded["uri"].endswith(f"/Messages/{sent.sid}.json")


def test_find_sent_finds_an_earlier_send_and_only_that(served: ServedFake) -> None:
    since = datetime.now(UTC)
    twilio = sender(served)
    first = twilio.send(ALICE, "hello")
    twilio.send(ALICE, "something else")

    found = twilio.find_sent(ALICE, "hello", since)

    assert found is not None
    assert found.sid == first.sid
    assert twilio.find_sent(ALICE, "hello", since + timedelta(minutes=5)) is None
    assert twilio.find_sent("+12065550199", "hello", since) is None


@pytest.mark.parametrize("status", [500, 429])
def test_failures_are_retried_with_backoff_until_the_send_goes_through(served: ServedFake, status: int) -> None:
    served.fake.fail_next(status, count=2)
    sleeps = Sleeps()

    sent = sender(served, sleeps, send_backoff_seconds=0.2).send(ALICE, "hi")

    assert sleeps == [0.2, 0.4]
    assert [m["sid"] for m in served.fake.messages()] == [sent.sid]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_failing_every_try_is_unavailability_and_nothing_is_sent(served: ServedFake, status: int) -> None:
    served.fake.fail_next(status, count=3)
    sleeps = Sleeps()

    with pytest.raises(DeliveryUnavailable, match="3 tries"):
        sender(served, sleeps, send_attempts=3).send(ALICE, "hi")

    assert len(sleeps) == 2
    assert served.fake.messages() == []


def test_a_lost_answer_is_found_instead_of_sent_twice(served: ServedFake) -> None:
    served.fake.fail_next(500, record=True)

    sent = sender(served).send(ALICE, "only once")

    assert [m["sid"] for m in served.fake.messages()] == [sent.sid]


@pytest.mark.parametrize(
    ("to", "code"), [("+15005550001", DeliveryRejected.INVALID_NUMBER), ("+15005550004", DeliveryRejected.OPTED_OUT)]
)
def test_a_final_refusal_raises_its_code_at_once(served: ServedFake, to: str, code: int) -> None:
    sleeps = Sleeps()

    with pytest.raises(DeliveryRejected) as raised:
        sender(served, sleeps).send(to, "hi")

    assert raised.value.code == code
    assert sleeps == []
    assert served.fake.messages() == []


def test_a_wrong_token_is_unavailability_without_retries(served: ServedFake) -> None:
    sleeps = Sleeps()

    with pytest.raises(DeliveryUnavailable, match="401"):
        sender(served, sleeps, twilio_auth_token="not-the-token").send(ALICE, "hi")

    assert sleeps == []


def test_nobody_listening_is_retried_then_unavailability(served: ServedFake) -> None:
    sleeps = Sleeps()

    with pytest.raises(DeliveryUnavailable, match="ConnectionError"):
        sender(served, sleeps, twilio_api_base_url=f"http://127.0.0.1:{closed_port()}").send(ALICE, "hi")

    assert len(sleeps) == 2


def test_a_messaging_service_sends_and_finds_by_its_sid(served: ServedFake) -> None:
    service = "MG" + "7" * 32
    since = datetime.now(UTC)
    twilio = sender(served, twilio_from_number=service)

    sent = twilio.send(ALICE, "via the service")
    found = twilio.find_sent(ALICE, "via the service", since)

    assert served.fake.messages()[0]["messaging_service_sid"] == service
    assert found is not None
    assert found.sid == sent.sid


@pytest.fixture
def secrets_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    forget_built_services()  # the container's secrets and clients, kept from an earlier test
    with mock_aws():
        yield boto3.client("secretsmanager")
    forget_built_services()


def test_without_direct_credentials_the_secret_is_read_from_secrets_manager(
    served: ServedFake, secrets_manager: Any
) -> None:
    secret = {"account_sid": ACCOUNT.account_sid, "auth_token": ACCOUNT.auth_token, "from_number": ACCOUNT.from_number}
    secrets_manager.create_secret(Name="sms-habit-coach/twilio", SecretString=json.dumps(secret))
    settings = TwilioSettings(
        twilio_secret_name="sms-habit-coach/twilio", twilio_api_base_url=served.base_url, send_timeout_seconds=5
    )

    sent = TwilioSmsSender(settings, sleep=Sleeps()).send(ALICE, "from the secret")

    assert served.fake.messages()[0]["sid"] == sent.sid


def test_a_missing_secret_is_unavailability(served: ServedFake, secrets_manager: Any) -> None:
    settings = TwilioSettings(twilio_secret_name="sms-habit-coach/absent", twilio_api_base_url=served.base_url)

    with pytest.raises(DeliveryUnavailable, match="sms-habit-coach/absent"):
        TwilioSmsSender(settings, sleep=Sleeps()).send(ALICE, "hi")

    assert served.fake.messages() == []
