"""`make sms` (infra/sms.py) without a network: the webhook it builds is Twilio's and its signature holds
for the public URL; replies are printed once each, oldest first, until a quiet spell."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
from twilio.request_validator import RequestValidator

from infra.sms import Target, inbound_form, main, signed_webhook, watch_replies

ALICE = "+12065550100"


def test_the_target_defaults_to_the_local_stack_and_honours_its_variables() -> None:
    assert Target.from_environ({}) == Target(
        base_url="http://127.0.0.1:3000",
        public_base_url="http://127.0.0.1:3000",
        account_sid="AC" + "0" * 32,
        auth_token="local-twilio-auth-token",
        our_number="+15005550006",
    )
    environ = {"PORT": "3100", "PUBLIC_BASE_URL": "https://abc.ngrok.app/", "TWILIO_AUTH_TOKEN": "t"}
    custom = Target.from_environ({**environ, "TWILIO_FROM_NUMBER": "+1"})
    assert (custom.base_url, custom.webhook_url) == ("http://127.0.0.1:3100", "https://abc.ngrok.app/twilio/sms")
    assert (custom.auth_token, custom.our_number) == ("t", "+1")


def test_the_form_is_twilios_incoming_message_webhook() -> None:
    target = Target.from_environ({})

    form = inbound_form(target, ALICE, "I did it! 🎉")

    assert re.fullmatch(r"SM[0-9a-f]{32}", form["MessageSid"])
    assert form["SmsSid"] == form["SmsMessageSid"] == form["MessageSid"]
    assert (form["From"], form["To"], form["Body"]) == (ALICE, "+15005550006", "I did it! 🎉")
    assert (form["AccountSid"], form["ApiVersion"]) == ("AC" + "0" * 32, "2010-04-01")
    assert (form["NumMedia"], form["NumSegments"], form["SmsStatus"]) == ("0", "1", "received")
    assert inbound_form(target, ALICE, "x")["MessageSid"] != form["MessageSid"]


@pytest.mark.parametrize("public", [None, "https://abc.ngrok.app"])
def test_the_post_goes_to_the_local_port_signed_for_the_public_url(public: str | None) -> None:
    environ = {"PORT": "3100", **({"PUBLIC_BASE_URL": public} if public else {})}
    target = Target.from_environ(environ)
    form = inbound_form(target, ALICE, "hi & bye = ok?")

    request = signed_webhook(target, form)

    assert request.full_url == "http://127.0.0.1:3100/twilio/sms"
    assert request.get_method() == "POST"
    assert request.get_header("Content-type") == "application/x-www-form-urlencoded"
    assert isinstance(request.data, bytes)
    posted = dict(parse_qsl(request.data.decode("utf-8")))
    assert posted == form
    signature = request.get_header("X-twilio-signature")
    signed_url = f"{public or 'http://127.0.0.1:3100'}/twilio/sms"
    assert RequestValidator("local-twilio-auth-token").validate(signed_url, posted, signature)
    assert not RequestValidator("local-twilio-auth-token").validate(signed_url, {**posted, "Body": "x"}, signature)
    assert not RequestValidator("another-token").validate(signed_url, posted, signature)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.now += seconds


def test_replies_are_printed_once_each_oldest_first_until_a_quiet_spell() -> None:
    time = FakeTime()
    pages: list[list[dict[str, Any]]] = [
        [],
        [{"sid": "SM2", "body": "second"}, {"sid": "SM1", "body": "first"}, {"sid": "SM0", "body": "old"}],
        [{"sid": "SM2", "body": "second"}, {"sid": "SM1", "body": "first"}],
    ]
    printed: list[str] = []

    def fetch() -> list[dict[str, Any]]:
        return pages.pop(0) if pages else [{"sid": "SM2", "body": "second"}]

    count = watch_replies(fetch, {"SM0"}, quiet_seconds=2, out=printed.append, clock=time.clock, pause=time.pause)

    assert printed == ["coach> first", "coach> second"]
    assert count == 2
    assert time.now == pytest.approx(3.0)  # the replies came at 1.0 s, then 2 s without news


def test_no_reply_ends_after_the_wait() -> None:
    time = FakeTime()

    count = watch_replies(list, set(), quiet_seconds=1.5, out=print, clock=time.clock, pause=time.pause)

    assert count == 0
    assert time.now == pytest.approx(1.5)


@pytest.mark.parametrize("argv", [["--from", "", "--body", "hi"], ["--from", ALICE, "--body", ""], ["--body", "hi"]])
def test_from_and_body_are_required(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv, {})

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--from" in err or "FROM" in err
