"""POST /twilio/sms through the real handler on moto, with requests signed as Twilio signs them."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import Mapping
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from twilio.request_validator import RequestValidator

from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.bootstrap import forget_built_services
from coach.domain.message import MAX_BODY_CHARS, Direction, Message
from coach.domain.work import ConversationWork, WorkKind
from tests.integration.test_enrollment_api import call as call_enrollment
from tests.integration.test_enrollment_api import enroll
from tests.support.api import EVENTS, LambdaContext, api_event
from tests.support.aws import Resources, received

AUTH_TOKEN = "webhook-test-auth-token"
API_HOST = "abcdef1234.execute-api.us-east-1.amazonaws.com"
PHONE = "+12065550100"
STRANGER = "+12065550199"
OUR_NUMBER = "+12065550000"
SID = "SM0123456789abcdef0123456789abcdef"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
WEBHOOK_ENV = ("PUBLIC_BASE_URL", "TWILIO_SECRET_NAME", "TWILIO_ACCOUNT_SID", "TWILIO_FROM_NUMBER", "AUTO_ENROLL")


# -- helpers other webhook tests share -----------------------------------------------------------


def use_webhook(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    """The webhook's environment: the auth token (unless env names a secret), and `env`."""
    for name in WEBHOOK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    forget_built_services()


@cache
def _template(route: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"twilio_{route.rsplit('/', 1)[-1]}.json").read_text())
    return loaded


def twilio_event(
    route: str,
    fields: Mapping[str, str],
    *,
    host: str = API_HOST,
    query: dict[str, list[str]] | None = None,
    signed_url: str | None = None,
    token: str = AUTH_TOKEN,
    base64_body: bool = True,
) -> dict[str, Any]:
    """API Gateway's event for Twilio's POST of `fields` to `route` on `host`, signed for `signed_url`
    (by default the URL the request went to: with the stage on API Gateway's own host, without on a
    custom domain)."""
    event = copy.deepcopy(_template(route))
    stage = event["requestContext"]["stage"]
    on_api_host = host.endswith(".amazonaws.com")
    event.update(resource=route, path=route)
    event["requestContext"].update(resourcePath=route, path=f"/{stage}{route}" if on_api_host else route)
    event["requestContext"]["domainName"] = host
    event["multiValueQueryStringParameters"] = query
    event["queryStringParameters"] = {name: values[-1] for name, values in query.items()} if query else None
    body = urlencode(fields)
    event["body"] = base64.b64encode(body.encode()).decode() if base64_body else body
    event["isBase64Encoded"] = base64_body
    url = f"https://{host}{event['requestContext']['path']}"
    if query:
        url += "?" + urlencode(query, doseq=True, quote_via=quote)
    set_header(event, "Host", host)
    set_header(event, "X-Twilio-Signature", RequestValidator(token).compute_signature(signed_url or url, fields))
    return event


def set_header(event: dict[str, Any], name: str, value: str | None) -> None:
    for section in ("headers", "multiValueHeaders"):
        event[section] = {k: v for k, v in event[section].items() if k.lower() != name.lower()}
        if value is not None:
            event[section][name] = [value] if section == "multiValueHeaders" else value


def sms(body: str, *, sid: str = SID, sender: str = PHONE, **extra: str) -> dict[str, str]:
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": OUR_NUMBER,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def call(event: dict[str, Any]) -> dict[str, Any]:
    from functions.webhook.app import lambda_handler

    response: dict[str, Any] = lambda_handler(event, LambdaContext())
    return response


def text(body: str, *, sid: str = SID, sender: str = PHONE) -> dict[str, Any]:
    return call(twilio_event("/twilio/sms", sms(body, sid=sid, sender=sender)))


def content_type(response: Mapping[str, Any]) -> str:
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (response.get("multiValueHeaders") or {}).items()}
    return str(headers.get("content-type") or multi.get("content-type", [""])[0])


def transcript(aws: Resources, participant_id: str) -> list[Message]:
    store = DynamoDBParticipantStore(aws.table_name, client=aws.dynamodb)
    return list(store.list_messages(participant_id, limit=100, next_token=None).items)


def queued(aws: Resources) -> list[tuple[ConversationWork, dict[str, str]]]:
    """The work now on the queue with its FIFO attributes, taken out of sight."""
    return [
        (ConversationWork.model_validate_json(m["Body"]), m["Attributes"]) for m in received(aws.sqs, aws.queue_url)
    ]


def enrolled(aws: Resources, phone: str = PHONE) -> str:
    """A participant enrolled through the API; its greeting work is deleted from the queue (FIFO holds a
    group's later messages back while an earlier one is in flight)."""
    participant_id = str(enroll({"phone_number": phone})["id"])
    drain(aws)
    return participant_id


def drain(aws: Resources) -> list[ConversationWork]:
    """Take the work off the queue and delete it, as the conversation function does once it handled it."""
    works = []
    for message in received(aws.sqs, aws.queue_url):
        aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=message["ReceiptHandle"])
        works.append(ConversationWork.model_validate_json(message["Body"]))
    return works


# -- tests ---------------------------------------------------------------------------------------


@pytest.fixture
def webhook(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Resources:
    use_webhook(monkeypatch)
    return aws


def test_a_participants_text_is_stored_and_queued_on_their_fifo_group_and_answered_with_empty_twiml(
    webhook: Resources,
) -> None:
    # Given an enrolled participant
    participant_id = enrolled(webhook)
    # When Twilio posts their text
    response = text("I walked after lunch today!")
    # Then the answer is empty TwiML at once, the text is on record and queued for a turn
    assert response["statusCode"] == 200
    assert response["body"] == EMPTY_TWIML
    assert content_type(response) == "text/xml"
    [message] = transcript(webhook, participant_id)
    assert (message.direction, message.message_id, message.body, message.status) == (
        Direction.INBOUND,
        SID,
        "I walked after lunch today!",
        "received",
    )
    conversations = DynamoDBConversationStore(webhook.table_name, client=webhook.dynamodb)
    assert [m.message_id for m in conversations.unanswered_inbound(participant_id, 10)] == [SID]
    [(work, attributes)] = queued(webhook)
    assert work == ConversationWork(
        kind=WorkKind.INBOUND,
        participant_id=participant_id,
        message_id=SID,
        occurred_at=message.at,
        message_at=message.at,
    )
    assert attributes["MessageGroupId"] == participant_id
    assert attributes["MessageDeduplicationId"] == SID


def test_a_retry_of_the_same_message_sid_stores_nothing_new_and_queues_the_same_work(webhook: Resources) -> None:
    # Given a text that was stored, queued and taken by the conversation function
    participant_id = enrolled(webhook)
    text("I walked after lunch today!")
    [first] = drain(webhook)
    before = transcript(webhook, participant_id)
    # When Twilio delivers it again (past the queue's 5-minute deduplication)
    response = text("I walked after lunch today!")
    # Then nothing new is stored and the very same work is queued (the turn answers a text once)
    assert response["body"] == EMPTY_TWIML
    assert transcript(webhook, participant_id) == before
    [(again, attributes)] = queued(webhook)
    assert again == first
    assert attributes["MessageDeduplicationId"] == SID


def test_a_quick_retry_is_dropped_by_the_queue(webhook: Resources) -> None:
    enrolled(webhook)

    text("hello")
    text("hello")

    assert len(queued(webhook)) == 1


def test_texts_from_one_participant_keep_their_order_on_the_queue(webhook: Resources) -> None:
    participant_id = enrolled(webhook)

    for n in range(3):
        text(f"text {n}", sid=f"SM{n:032d}")

    works = [work for work, _ in queued(webhook)]
    assert [w.message_id for w in works] == [f"SM{n:032d}" for n in range(3)]
    assert {w.participant_id for w in works} == {participant_id}


def test_the_sender_number_is_canonicalised(webhook: Resources) -> None:
    participant_id = enrolled(webhook)

    text("hi", sender="206-555-0100")

    assert [m.body for m in transcript(webhook, participant_id)] == ["hi"]


def test_a_long_text_is_stored_cut_and_flagged(webhook: Resources) -> None:
    participant_id = enrolled(webhook)

    text("é" * (MAX_BODY_CHARS + 1))

    [message] = transcript(webhook, participant_id)
    assert len(message.body) == MAX_BODY_CHARS
    assert message.truncated is True


def test_stop_opts_the_participant_out_records_the_text_and_queues_nothing(webhook: Resources) -> None:
    # Given an enrolled participant
    participant_id = enrolled(webhook)
    # When they text "Stop."
    response = text("Stop.")
    # Then they are opted out with an event, the text is on record, and no turn is queued
    assert response["body"] == EMPTY_TWIML
    stored = json.loads(call_enrollment(api_event("GET", f"/conversation/participants/{participant_id}"))["body"])
    assert stored["opted_out"] is True
    events = DynamoDBParticipantStore(webhook.table_name).list_events(participant_id, limit=50, next_token=None)
    assert [(e.kind, e.data) for e in events.items if e.kind == "opted_out"] == [("opted_out", {"keyword": "stop"})]
    assert [m.body for m in transcript(webhook, participant_id)] == ["Stop."]
    assert queued(webhook) == []
    # And what they text afterwards is recorded but never answered
    text("are you there?", sid="SM1")
    assert [m.body for m in transcript(webhook, participant_id)][-1] == "are you there?"
    assert queued(webhook) == []
    conversations = DynamoDBConversationStore(webhook.table_name)
    assert conversations.unanswered_inbound(participant_id, 10) == []


def test_start_brings_an_opted_out_participant_back(webhook: Resources) -> None:
    participant_id = enrolled(webhook)
    text("STOP", sid="SM1")

    text("start", sid="SM2")
    text("I'm back", sid="SM3")

    stored = DynamoDBParticipantStore(webhook.table_name).get_participant(participant_id)
    assert stored.opted_out is False
    assert [w.message_id for w, _ in queued(webhook)] == ["SM3"]


def test_yes_from_an_active_participant_is_ordinary_text(webhook: Resources) -> None:
    enrolled(webhook)

    text("yes")

    assert [w.kind for w, _ in queued(webhook)] == [WorkKind.INBOUND]


def test_help_is_answered_with_the_help_text_in_twiml(webhook: Resources, monkeypatch: pytest.MonkeyPatch) -> None:
    use_webhook(monkeypatch, HELP_TEXT="Coach & co: reply STOP to opt out <3")
    enrolled(webhook)

    response = text("HELP")

    assert response["body"] == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
        "Coach &amp; co: reply STOP to opt out &lt;3</Message></Response>"
    )
    assert content_type(response) == "text/xml"
    assert queued(webhook) == []


def test_a_withdrawn_participants_text_is_recorded_but_not_queued(webhook: Resources) -> None:
    participant_id = enrolled(webhook)
    call_enrollment(api_event("PUT", f"/conversation/participants/{participant_id}", body={"status": "withdrawn"}))

    response = text("hello?")

    assert response["body"] == EMPTY_TWIML
    assert [m.body for m in transcript(webhook, participant_id)] == ["hello?"]
    assert queued(webhook) == []


def test_an_unknown_number_is_told_once_a_day_that_it_is_not_enrolled(webhook: Resources) -> None:
    first = text("hi", sender=STRANGER)
    second = text("hello?", sid="SM1", sender=STRANGER)

    assert "<Message>" in first["body"]
    assert "not enrolled" in first["body"]
    assert second["body"] == EMPTY_TWIML
    assert queued(webhook) == []
    assert DynamoDBParticipantStore(webhook.table_name).participant_id_for_phone(STRANGER) is None


def test_auto_enroll_enrolls_an_unknown_number_and_queues_the_greeting_then_the_text(
    webhook: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_webhook(monkeypatch, AUTO_ENROLL="true")

    response = text("hi coach", sender=STRANGER)

    assert response["body"] == EMPTY_TWIML
    participant_id = DynamoDBParticipantStore(webhook.table_name).participant_id_for_phone(STRANGER)
    assert participant_id is not None
    assert [(w.kind, w.participant_id) for w, _ in queued(webhook)] == [
        (WorkKind.ENROLLED, participant_id),
        (WorkKind.INBOUND, participant_id),
    ]


@pytest.mark.parametrize("missing", ["From", "MessageSid", "To"])
def test_a_signed_form_without_a_required_field_gets_400_naming_it(webhook: Resources, missing: str) -> None:
    enrolled(webhook)
    fields = sms("hi")
    del fields[missing]

    response = call(twilio_event("/twilio/sms", fields))

    assert response["statusCode"] == 400
    assert json.loads(response["body"])["details"] == [{"field": missing, "message": "is required"}]
    assert queued(webhook) == []


def test_logs_carry_the_message_sid_and_ids_but_never_a_number_or_a_body(
    webhook: Resources, log_lines: io.StringIO
) -> None:
    participant_id = enrolled(webhook)

    text("my secret habit is knitting")
    text("knitting again", sid="SM1", sender=STRANGER)
    call(twilio_event("/twilio/sms", sms("forged knitting"), token="not-the-token"))

    logs = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    assert any(line.get("correlation_id") == SID and line.get("participant_id") == participant_id for line in logs)
    assert any(line.get("message") == "webhook rejected" for line in logs)
    everything = log_lines.getvalue()
    for secret in ("2065550100", "2065550199", "knitting"):
        assert secret not in everything
