"""Property: no request makes the webhook fail (5xx), whether Twilio signed it or not."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.test_webhook_sms import PHONE, call, enrolled, set_header, twilio_event, use_webhook
from tests.support.aws import Resources

ROUTES = st.sampled_from(["/twilio/sms", "/twilio/status"])
NAMES = st.sampled_from(
    ["From", "To", "Body", "MessageSid", "NumMedia", "MessageStatus", "SmsStatus", "ErrorCode", "AccountSid"]
)
nasty = st.sampled_from(
    ["", " ", "\x00", "STOP", "stop!", "HELP", "yes", PHONE, "+1", "SM1", "21610", "-3", "x" * 2000]
)
# What a signed form can carry: any text but lone surrogates (they cannot be sent as UTF-8).
form_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40) | nasty


def mostly(*values: str) -> st.SearchStrategy[str]:
    """One of `values` three times in four, else any text."""
    return st.one_of(st.sampled_from(values), st.sampled_from(values), st.sampled_from(values), form_text)


phones = mostly(PHONE, "+12065550199", "206-555-0100", "12345", "+1", "Twilio")
plausible = st.fixed_dictionaries(
    {
        "From": phones,
        "To": phones,
        "MessageSid": mostly("SM1", "MM2") | st.from_regex(r"\ASM[0-9a-f]{1,40}\Z"),
        "Body": form_text,
        "MessageStatus": mostly("queued", "sent", "delivered", "undelivered", "failed", "read", "DELIVERED"),
        "ErrorCode": mostly("", "21610", "30003"),
        "NumMedia": mostly("0", "1"),
    }
)
# Mostly complete forms with odd values, some fields dropped, unknown fields added.
signed_forms = st.builds(
    lambda form, extra, dropped: {k: v for k, v in {**extra, **form}.items() if k not in dropped},
    plausible,
    st.dictionaries(form_text, form_text, max_size=3),
    st.sets(NAMES, max_size=1),
)
raw_bodies = st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass"))


@pytest.fixture
def webhook(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    use_webhook(monkeypatch)
    enrolled(aws)
    return aws


def test_no_signed_form_makes_the_webhook_fail(webhook: Resources) -> None:
    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(route=ROUTES, fields=signed_forms, use_base64=st.booleans())
    def check(route: str, fields: dict[str, str], use_base64: bool) -> None:
        response = call(twilio_event(route, fields, base64_body=use_base64))

        assert response["statusCode"] in (200, 400), (route, fields, response["body"])

    check()


def test_no_unsigned_request_gets_past_the_signature_or_makes_the_webhook_fail(webhook: Resources) -> None:
    @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        route=ROUTES,
        body=raw_bodies,
        flagged_base64=st.booleans(),
        encode=st.booleans(),
        signature=st.none() | st.text(max_size=40),
    )
    def check(route: str, body: bytes, flagged_base64: bool, encode: bool, signature: str | None) -> None:
        event: dict[str, Any] = twilio_event(route, {"Body": "hi"})
        event["body"] = base64.b64encode(body).decode() if encode else body.decode("utf-8", "replace")
        event["isBase64Encoded"] = flagged_base64
        set_header(event, "X-Twilio-Signature", signature)

        response = call(event)

        assert response["statusCode"] == 403, (route, body, response["body"])

    check()
