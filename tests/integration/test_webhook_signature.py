"""X-Twilio-Signature through the real handler: real signatures pass, forged requests get 403 and change nothing."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.integration.test_webhook_sms import (
    API_HOST,
    AUTH_TOKEN,
    EMPTY_TWIML,
    call,
    enrolled,
    queued,
    set_header,
    sms,
    transcript,
    twilio_event,
    use_webhook,
)
from tests.support.aws import Resources

CUSTOM_DOMAIN = "sms.example.org"


@pytest.fixture
def webhook(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    use_webhook(monkeypatch)
    return aws


def accepted(aws: Resources, participant_id: str, response: dict[str, Any]) -> bool:
    """The request went through: 200, the text stored and queued."""
    return response["statusCode"] == 200 and len(transcript(aws, participant_id)) == 1 and len(queued(aws)) == 1


def with_port(event: dict[str, Any]) -> dict[str, Any]:
    set_header(event, "Host", f"{API_HOST}:443")
    return event


ACCEPTED: dict[str, Callable[[], dict[str, Any]]] = {
    "stage path on API Gateway's host": lambda: twilio_event("/twilio/sms", sms("hi")),
    "custom domain, no stage": lambda: twilio_event("/twilio/sms", sms("hi"), host=CUSTOM_DOMAIN),
    "query string": lambda: twilio_event(
        "/twilio/sms", sms("hi"), query={"bot": ["coach"], "note": ["a b/c"], "tag": ["x", "y"]}
    ),
    "query string signed with + for a space": lambda: twilio_event(
        "/twilio/sms",
        sms("hi"),
        query={"note": ["a b"]},
        signed_url=f"https://{API_HOST}/Prod/twilio/sms?note=a+b",
    ),
    "base64 body": lambda: twilio_event("/twilio/sms", sms("hi ✓ + & = %"), base64_body=True),
    "plain-text body": lambda: twilio_event("/twilio/sms", sms("hi ✓ + & = %"), base64_body=False),
    "signed with an explicit :443": lambda: twilio_event(
        "/twilio/sms", sms("hi"), signed_url=f"https://{API_HOST}:443/Prod/twilio/sms"
    ),
    "Host header with :443, signed without": lambda: with_port(
        twilio_event("/twilio/sms", sms("hi"), signed_url=f"https://{API_HOST}/Prod/twilio/sms")
    ),
}


@pytest.mark.parametrize("make_event", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_a_request_twilio_signed_is_accepted(webhook: Resources, make_event: Callable[[], dict[str, Any]]) -> None:
    # Given an enrolled participant
    participant_id = enrolled(webhook)
    # When Twilio posts their text, signed for the URL it called
    response = call(make_event())
    # Then it is accepted
    assert response["body"] == EMPTY_TWIML
    assert accepted(webhook, participant_id, response)


def changed_body(event: dict[str, Any]) -> dict[str, Any]:
    fields = dict(sms("hi"))
    fields["Body"] = "STOP"
    forged = twilio_event("/twilio/sms", fields)
    set_header(forged, "X-Twilio-Signature", event["headers"]["X-Twilio-Signature"])
    return forged


def added_field(event: dict[str, Any]) -> dict[str, Any]:
    body = base64.b64decode(event["body"]).decode() + "&Extra=1"
    event["body"] = base64.b64encode(body.encode()).decode()
    return event


def other_path(event: dict[str, Any]) -> dict[str, Any]:
    signed_for_status = twilio_event("/twilio/status", sms("hi"))
    set_header(event, "X-Twilio-Signature", signed_for_status["headers"]["X-Twilio-Signature"])
    return event


def changed_host(event: dict[str, Any]) -> dict[str, Any]:
    set_header(event, "Host", "evil.example.org")
    return event


def changed_query(event: dict[str, Any]) -> dict[str, Any]:
    event["multiValueQueryStringParameters"] = {"bot": ["other"]}
    return event


def wrong_token(event: dict[str, Any]) -> dict[str, Any]:
    return twilio_event("/twilio/sms", sms("hi"), token="someone-elses-token")


def no_header(event: dict[str, Any]) -> dict[str, Any]:
    set_header(event, "X-Twilio-Signature", None)
    return event


def empty_header(event: dict[str, Any]) -> dict[str, Any]:
    set_header(event, "X-Twilio-Signature", "")
    return event


def not_base64(event: dict[str, Any]) -> dict[str, Any]:
    event["body"] = "%%% not base64 %%%"
    return event


def not_utf8(event: dict[str, Any]) -> dict[str, Any]:
    event["body"] = base64.b64encode(b"Body=\xff\xfe&From=%2B12065550100").decode()
    return event


def too_large(event: dict[str, Any]) -> dict[str, Any]:
    event["body"] = base64.b64encode(b"Body=" + b"a" * 100_000).decode()
    return event


FORGED = [
    changed_body,
    added_field,
    other_path,
    changed_host,
    changed_query,
    wrong_token,
    no_header,
    empty_header,
    not_base64,
    not_utf8,
    too_large,
]


@pytest.mark.parametrize("forge", FORGED)
def test_a_forged_request_gets_403_stores_nothing_and_counts_a_metric(
    webhook: Resources, forge: Callable[[dict[str, Any]], dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an enrolled participant and a request Twilio signed
    participant_id = enrolled(webhook)
    event = twilio_event("/twilio/sms", sms("hi"), query={"bot": ["coach"]})
    capsys.readouterr()
    # When someone changes it (or forges one) and posts it
    response = call(forge(event))
    # Then it is refused and nothing changes
    assert response["statusCode"] == 403
    assert transcript(webhook, participant_id) == []
    assert queued(webhook) == []
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("SignatureRejected") == [1.0] for m in metrics)


def test_the_unchanged_request_of_the_forgery_tests_is_accepted(webhook: Resources) -> None:
    # The control for the test above: each forgery fails because of its change, not the base request.
    participant_id = enrolled(webhook)

    response = call(twilio_event("/twilio/sms", sms("hi"), query={"bot": ["coach"]}))

    assert accepted(webhook, participant_id, response)


def test_public_base_url_wins_over_the_host_twilio_never_saw(
    webhook: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the deployment says Twilio calls https://sms.example.org/coach/
    use_webhook(monkeypatch, PUBLIC_BASE_URL="https://sms.example.org/coach/")
    participant_id = enrolled(webhook)
    public_url = "https://sms.example.org/coach/twilio/sms?bot=coach"
    # When a request signed for the Host header's URL arrives, then one signed for the public URL
    host_signed = call(twilio_event("/twilio/sms", sms("hi"), query={"bot": ["coach"]}))
    public_signed = call(twilio_event("/twilio/sms", sms("hi"), query={"bot": ["coach"]}, signed_url=public_url))
    # Then only the public URL's signature counts
    assert host_signed["statusCode"] == 403
    assert accepted(webhook, participant_id, public_signed)


def test_the_auth_token_can_come_from_the_twilio_secret(webhook: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no token in the environment, only the Secrets Manager secret the template names
    secret = {"account_sid": "AC123", "auth_token": "token-from-the-secret", "from_number": "+12065550000"}
    boto3.client("secretsmanager").create_secret(Name="webhook-test/twilio", SecretString=json.dumps(secret))
    use_webhook(monkeypatch, TWILIO_SECRET_NAME="webhook-test/twilio")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    participant_id = enrolled(webhook)
    # When Twilio signs with the token of the secret, and someone with the old local token tries
    good = call(twilio_event("/twilio/sms", sms("hi"), token="token-from-the-secret"))
    bad = call(twilio_event("/twilio/sms", sms("hi", sid="SM1"), token=AUTH_TOKEN))
    # Then the secret's token decides
    assert good["statusCode"] == 200
    assert bad["statusCode"] == 403
    assert [m.message_id for m in transcript(webhook, participant_id)] == [sms("hi")["MessageSid"]]


def test_a_secrets_client_made_for_an_earlier_endpoint_is_forgotten_with_the_built_services(
    webhook: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a secret read once while the environment pointed at an endpoint that is gone (a stopped local stack)
    from coach.adapters.secrets import SecretUnavailable, container_secrets
    from coach.bootstrap import forget_built_services

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing answers
    with pytest.raises(SecretUnavailable):
        container_secrets().json("webhook-test/gone", max_age=0)
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    # When the services are forgotten, as the aws fixture and the local stack do between environments
    forget_built_services()
    # Then the next read is made in the environment of now (moto), not through the old client
    secret = {"account_sid": "AC123", "auth_token": "token-from-the-secret", "from_number": "+12065550000"}
    boto3.client("secretsmanager").create_secret(Name="webhook-test/twilio", SecretString=json.dumps(secret))
    use_webhook(monkeypatch, TWILIO_SECRET_NAME="webhook-test/twilio")
    monkeypatch.delenv("TWILIO_AUTH_TOKEN")
    participant_id = enrolled(webhook)
    good = call(twilio_event("/twilio/sms", sms("hi"), token="token-from-the-secret"))
    assert good["statusCode"] == 200, good
    assert [m.message_id for m in transcript(webhook, participant_id)] == [sms("hi")["MessageSid"]]
