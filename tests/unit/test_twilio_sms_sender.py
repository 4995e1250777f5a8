"""TwilioSmsSender with a scripted stand-in for twilio's Client: retries, errors, lookups, logs. No sockets."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from coach.adapters.secrets import TwilioCredentials
from coach.adapters.twilio_http import CoachTwilioHttpClient
from coach.adapters.twilio_sms import TwilioSmsSender
from coach.domain.errors import DeliveryRejected, DeliveryUnavailable
from coach.settings import TwilioSettings

TO = "+12065550100"
NOW = datetime(2026, 3, 2, 9, 30, 15, 500_000, tzinfo=UTC)
CREDENTIALS = TwilioCredentials("AC" + "1" * 32, "unit-token", "+15005550006")
SERVICE = TwilioCredentials("AC" + "1" * 32, "unit-token", "MG" + "2" * 32)


def message(body: str = "hi", *, sid: str = "SM" + "a" * 32, created: datetime = NOW, **extra: Any) -> Any:
    fields = {"sid": sid, "status": "queued", "to": TO, "body": body, "date_created": created.replace(microsecond=0)}
    fields.update({"direction": "outbound-api", "messaging_service_sid": None, **extra})
    return type("Message", (), fields)()


def rest_error(status: int, code: int | None = None) -> TwilioRestException:
    return TwilioRestException(status, "/2010-04-01/Accounts/AC/Messages.json", "refused", code or status, "POST")


def refused() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/", reason=NewConnectionError(None, "refused")))  # type: ignore[arg-type]


@dataclass
class ScriptedMessages:
    """client.messages: each create()/list() takes the next scripted answer (an exception is raised)."""

    creates: list[Any] = field(default_factory=list)
    lists: list[Any] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)
    listed: list[dict[str, Any]] = field(default_factory=list)

    def create(self, **kwargs: Any) -> Any:
        self.created.append(kwargs)
        return self._next(self.creates)

    def list(self, **kwargs: Any) -> Any:
        self.listed.append(kwargs)
        return self._next(self.lists) if self.lists else []

    @staticmethod
    def _next(script: list[Any]) -> Any:
        answer = script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class Harness:
    messages: ScriptedMessages = field(default_factory=ScriptedMessages)
    sleeps: list[float] = field(default_factory=list)

    def sender(self, credentials: TwilioCredentials = CREDENTIALS, **settings: Any) -> TwilioSmsSender:
        client = type("Client", (), {"messages": self.messages})()
        clock = type("Clock", (), {"now": staticmethod(lambda: NOW)})()
        return TwilioSmsSender(
            TwilioSettings(**settings), client=client, credentials=credentials, sleep=self.sleeps.append, clock=clock
        )


@pytest.fixture
def harness() -> Harness:
    return Harness()


@pytest.fixture(autouse=True)
def _no_twilio_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings read the environment: a shell with TWILIO_* set must not change what these tests see."""
    for name in ("TWILIO_SECRET_NAME", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"):
        monkeypatch.delenv(name, raising=False)
    for name in ("TWILIO_API_BASE_URL", "STATUS_CALLBACK_URL"):
        monkeypatch.delenv(name, raising=False)


def test_a_send_goes_from_our_number_with_the_status_callback(harness: Harness) -> None:
    harness.messages.creates = [message("hello")]

    sent = harness.sender(status_callback_url="https://x.example/twilio/status").send(TO, "hello")

    assert (sent.sid, sent.status, sent.to, sent.body) == ("SM" + "a" * 32, "queued", TO, "hello")
    assert harness.messages.created == [
        {"to": TO, "body": "hello", "from_": "+15005550006", "status_callback": "https://x.example/twilio/status"}
    ]


def test_a_messaging_service_sends_by_its_sid_and_without_a_callback_when_none_is_set(harness: Harness) -> None:
    harness.messages.creates = [message()]

    harness.sender(SERVICE).send(TO, "hi")

    assert harness.messages.created == [{"to": TO, "body": "hi", "messaging_service_sid": SERVICE.sender}]


@pytest.mark.parametrize("code", [DeliveryRejected.INVALID_NUMBER, DeliveryRejected.OPTED_OUT, 21614])
def test_a_refusal_with_a_code_is_final_and_not_retried(harness: Harness, code: int) -> None:
    harness.messages.creates = [rest_error(400, code)]

    with pytest.raises(DeliveryRejected) as raised:
        harness.sender().send(TO, "hi")

    assert raised.value.code == code
    assert len(harness.messages.created) == 1
    assert harness.sleeps == []


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_credentials_problem_is_unavailability_not_a_verdict_on_the_message(harness: Harness, status: int) -> None:
    harness.messages.creates = [rest_error(status, 20003)]

    with pytest.raises(DeliveryUnavailable):
        harness.sender().send(TO, "hi")

    assert len(harness.messages.created) == 1


def test_429_is_retried_with_exponential_backoff_then_unavailable(harness: Harness) -> None:
    harness.messages.creates = [rest_error(429, 20429)] * 4

    with pytest.raises(DeliveryUnavailable, match="4 tries"):
        harness.sender(send_attempts=4, send_backoff_seconds=0.25).send(TO, "hi")

    assert len(harness.messages.created) == 4
    assert harness.sleeps == [0.25, 0.5, 1.0]
    assert harness.messages.listed == []  # a 429 means Twilio took nothing: no need to look


def test_a_refused_connection_is_retried_without_looking(harness: Harness) -> None:
    harness.messages.creates = [refused(), requests.ConnectTimeout(), message()]

    sent = harness.sender().send(TO, "hi")

    assert sent.sid.startswith("SM")
    assert len(harness.messages.created) == 3
    assert harness.messages.listed == []


def test_after_a_500_the_retry_first_checks_the_message_was_not_taken(harness: Harness) -> None:
    harness.messages.creates = [rest_error(500), message("hi", sid="SM" + "b" * 32)]
    harness.messages.lists = [[message("other body")]]

    sent = harness.sender().send(TO, "hi")

    assert sent.sid == "SM" + "b" * 32
    assert len(harness.messages.created) == 2
    assert harness.messages.listed == [{"to": TO, "from_": "+15005550006", "limit": 20, "page_size": 20}]


def test_after_a_read_timeout_a_message_twilio_took_is_not_sent_again(harness: Harness) -> None:
    taken = message("hi", sid="SM" + "c" * 32, status="sent")
    harness.messages.creates = [requests.ReadTimeout()]
    harness.messages.lists = [[taken]]

    sent = harness.sender().send(TO, "hi")

    assert (sent.sid, sent.status) == ("SM" + "c" * 32, "sent")
    assert len(harness.messages.created) == 1


def test_when_the_check_itself_fails_nothing_is_sent_blind(harness: Harness) -> None:
    harness.messages.creates = [rest_error(503)]
    harness.messages.lists = [requests.ReadTimeout(), rest_error(500)]

    with pytest.raises(DeliveryUnavailable):
        harness.sender().send(TO, "hi")

    assert len(harness.messages.created) == 1


def test_find_sent_takes_the_newest_exact_match_since_the_second_of_since(harness: Harness) -> None:
    harness.messages.lists = [
        [
            message("hi!", sid="SM1", created=NOW + timedelta(seconds=9)),  # another body
            message("hi", sid="SM2", created=NOW),  # same second as `since`: Twilio drops the fraction
            message("hi", sid="SM3", created=NOW - timedelta(seconds=5)),  # too old
        ]
    ]

    found = harness.sender().find_sent(TO, "hi", NOW)

    assert found is not None
    assert found.sid == "SM2"


def test_find_sent_reads_a_naive_since_as_utc_and_may_find_nothing(harness: Harness) -> None:
    harness.messages.lists = [[message("hi", created=NOW - timedelta(minutes=1))]]

    assert harness.sender().find_sent(TO, "hi", NOW.replace(tzinfo=None)) is None


def test_find_sent_for_a_messaging_service_matches_its_sid_not_a_from_number(harness: Harness) -> None:
    ours = message("hi", sid="SM1", messaging_service_sid=SERVICE.sender)
    harness.messages.lists = [[message("hi", sid="SM0", messaging_service_sid="MG" + "9" * 32), ours]]

    found = harness.sender(SERVICE).find_sent(TO, "hi", NOW - timedelta(minutes=1))

    assert found is not None
    assert found.sid == "SM1"
    assert "from_" not in harness.messages.listed[0]


def test_find_sent_retries_an_unreadable_page_then_gives_up(harness: Harness) -> None:
    page_error = TwilioException("Unable to fetch page", type("Response", (), {"status_code": 502})())
    harness.messages.lists = [page_error, page_error]

    with pytest.raises(DeliveryUnavailable, match="2 tries"):
        harness.sender(send_attempts=2).find_sent(TO, "hi", NOW)

    assert harness.sleeps == [0.5]


def test_find_sent_never_reports_a_lookup_refusal_as_a_rejected_message(harness: Harness) -> None:
    harness.messages.lists = [rest_error(400, 20001)]

    with pytest.raises(DeliveryUnavailable):
        harness.sender().find_sent(TO, "hi", NOW)


def test_logs_carry_neither_the_phone_number_nor_the_body(harness: Harness, log_lines: io.StringIO) -> None:
    harness.messages.creates = [rest_error(500), message("a private reply")]
    harness.messages.lists = [[]]

    harness.sender().send(TO, "a private reply")

    logs = log_lines.getvalue()
    assert "trying again" in logs
    assert "sms sent" in logs
    assert "***0100" in logs
    assert TO not in logs
    assert TO[1:] not in logs
    assert "private" not in logs


def test_the_client_is_built_for_the_credentials_and_pointed_at_the_base_url() -> None:
    settings = TwilioSettings(
        twilio_account_sid="AC" + "3" * 32,
        twilio_auth_token="unit-token",
        twilio_from_number="+15005550006",
        twilio_api_base_url="http://127.0.0.1:3000/",
        send_timeout_seconds=4,
    )
    sender = TwilioSmsSender(settings)

    client = sender._client(sender._credentials())

    assert (client.username, client.password) == ("AC" + "3" * 32, "unit-token")
    assert isinstance(client.http_client, CoachTwilioHttpClient)
    assert client.http_client.timeout == 4
    assert sender._client(sender._credentials()) is client  # same credentials, same client


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        (None, "https://api.twilio.com/2010-04-01/A.json?x=1", "https://api.twilio.com/2010-04-01/A.json?x=1"),
        (
            "http://127.0.0.1:3000",
            "https://api.twilio.com/2010-04-01/A.json?x=1",
            "http://127.0.0.1:3000/2010-04-01/A.json?x=1",
        ),
        ("http://h:9/prefix/", "https://api.twilio.com/2010-04-01/A.json", "http://h:9/prefix/2010-04-01/A.json"),
    ],
)
def test_the_http_client_rewrites_twilio_urls_to_the_base_url(base: str | None, url: str, expected: str) -> None:
    assert CoachTwilioHttpClient(timeout=1, base_url=base).rewrite(url) == expected


def test_importing_the_adapter_leaves_twilio_rest_unloaded() -> None:
    code = (
        "import sys, coach.adapters.twilio_sms, coach.adapters.secrets; "
        "sys.exit(1 if 'twilio.rest' in sys.modules or 'requests' in sys.modules else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr


def test_the_status_callback_url_names_the_outbox_item_and_the_validity_period_is_passed(harness: Harness) -> None:
    harness.messages.creates = [message("hello")]
    sender = harness.sender(status_callback_url="https://x.example/prod/twilio/status")

    sender.send(TO, "hello", validity_seconds=2400, callback_params={"participant": "p-1", "outbox": "SMin1#0"})

    [request] = harness.messages.created
    assert request["status_callback"] == "https://x.example/prod/twilio/status?outbox=SMin1%230&participant=p-1"
    assert request["validity_period"] == 2400


def test_a_retry_after_a_lost_answer_never_takes_a_message_another_item_owns(harness: Harness) -> None:
    # Given an identical earlier text (owned by its own item), and this send's answer lost in a 500
    earlier = message("same words", sid="SM" + "e" * 32, created=NOW)
    harness.messages.creates = [rest_error(500), message("same words", sid="SM" + "n" * 32)]
    harness.messages.lists = [[earlier]]

    sent = harness.sender().send(TO, "same words", claimed=lambda sid: sid == earlier.sid)

    # Then the earlier one does not count as this one: the message is sent again, and that is the one we keep
    assert sent.sid == "SM" + "n" * 32
    assert len(harness.messages.created) == 2


def test_a_retry_finds_its_own_message_when_twilio_took_it(harness: Harness) -> None:
    mine = message("same words", sid="SM" + "m" * 32, created=NOW)
    earlier = message("same words", sid="SM" + "e" * 32, created=NOW)
    harness.messages.creates = [rest_error(502)]
    harness.messages.lists = [[mine, earlier]]  # newest first

    sent = harness.sender().send(TO, "same words", claimed=lambda sid: sid == earlier.sid)

    assert sent.sid == mine.sid
    assert len(harness.messages.created) == 1
