"""The conversation function's real handler: SQS FIFO batches on moto, SMS through the real Twilio client
to the fake Twilio over HTTP. Failures are reported per message, and a failed message holds back the rest
of its participant's group (order) but not other participants'."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.bootstrap import forget_built_services
from coach.domain.work import ConversationWork, WorkKind
from tests.integration.test_enrollment_api import enroll
from tests.support.api import LambdaContext
from tests.support.aws import Resources, received
from tests.support.twilio import ACCOUNT, ServedFake, serve_fake_twilio


@pytest.fixture
def twilio(aws: Resources, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServedFake]:
    with serve_fake_twilio() as served:
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT.account_sid)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", ACCOUNT.auth_token)
        monkeypatch.setenv("TWILIO_FROM_NUMBER", ACCOUNT.from_number)
        monkeypatch.setenv("TWILIO_API_BASE_URL", served.base_url)
        monkeypatch.setenv("SEND_ATTEMPTS", "1")  # TwilioSettings.send_attempts: fail at the first 500
        monkeypatch.setenv("SCHEDULE_GROUP_NAME", "coach-test-nudges")
        forget_built_services()
        yield served


def sqs_event(aws: Resources) -> dict[str, Any]:
    """What Lambda's SQS event source hands the function for what is on the queue now."""
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m["Attributes"],
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:coach-test-inbound.fifo",
            "awsRegion": "us-east-1",
        }
        for m in received(aws.sqs, aws.queue_url)
    ]
    return {"Records": records}


def handle(event: dict[str, Any]) -> dict[str, Any]:
    from functions.conversation.app import lambda_handler

    response: dict[str, Any] = lambda_handler(event, LambdaContext())
    return response


def test_a_batch_of_greetings_is_sent_through_twilio(aws: Resources, twilio: ServedFake) -> None:
    people = [enroll({"phone_number": f"+1206555{n:04d}"}) for n in range(3)]

    response = handle(sqs_event(aws))

    assert response == {"batchItemFailures": []}
    for person in people:
        [greeting] = twilio.fake.messages(to=person["phone_number"])
        assert "YES" in greeting["body"]
        transcript = DynamoDBParticipantStore(aws.table_name, aws.dynamodb).list_messages(
            person["id"], limit=10, next_token=None
        )
        assert [m.twilio_sid for m in transcript.items] == [greeting["sid"]]


def test_a_twilio_outage_fails_that_message_and_holds_back_its_group_only(aws: Resources, twilio: ServedFake) -> None:
    first, second = enroll({"phone_number": "+12065550001"}), enroll({"phone_number": "+12065550002"})
    later = ConversationWork(kind=WorkKind.RESET, participant_id=first["id"], occurred_at="2026-01-01T00:00:00Z")
    aws.sqs.send_message(
        QueueUrl=aws.queue_url,
        MessageBody=later.model_dump_json(),
        MessageGroupId=first["id"],
        MessageDeduplicationId=later.deduplication_id(),
    )
    event = sqs_event(aws)
    twilio.fake.fail_next(500, count=1)

    response = handle(event)

    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    by_group = {r["messageId"]: r["attributes"]["MessageGroupId"] for r in event["Records"]}
    assert failed  # the outage made the first greeting fail: SQS redelivers it (then the DLQ)
    assert {by_group[m] for m in failed} == {first["id"]}  # ...and held back the reset behind it
    assert len(failed) == 2
    assert len(twilio.fake.messages(to=second["phone_number"])) == 1  # the other participant was served

    retry = {"Records": [r for r in event["Records"] if r["messageId"] in failed]}
    assert handle(retry) == {"batchItemFailures": []}
    # One greeting for the enrolment and one for the reset (consent was never given): each sent once.
    sent = twilio.fake.messages(to=first["phone_number"])
    transcript = DynamoDBParticipantStore(aws.table_name, aws.dynamodb).list_messages(
        first["id"], limit=10, next_token=None
    )
    assert len(sent) == 2
    assert sorted(m.twilio_sid or "" for m in transcript.items) == sorted(m["sid"] for m in sent)


def test_21211_from_twilio_is_recorded_and_not_retried(aws: Resources, twilio: ServedFake) -> None:
    person = enroll({"phone_number": "+12065550003"})
    twilio.fake.fail_next(400, count=1, code=21211)

    assert handle(sqs_event(aws)) == {"batchItemFailures": []}

    store = DynamoDBParticipantStore(aws.table_name, aws.dynamodb)
    [greeting] = store.list_messages(person["id"], limit=10, next_token=None).items
    assert (greeting.status, greeting.error_code) == ("failed", 21211)


class Redeliveries:
    """Stands in for SqsRedelivery: what the handler asked of the queue."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def return_after(self, queue_arn: str, receipt_handle: str, seconds: int) -> None:
        self.asked.append((receipt_handle, seconds))


@pytest.fixture
def redeliveries(monkeypatch: pytest.MonkeyPatch) -> Redeliveries:
    import functions.conversation.app as app
    from coach.services.redelivery import RedeliveryPolicy

    recorder = Redeliveries()
    monkeypatch.setattr(app, "redelivery", lambda: (RedeliveryPolicy(10, 60), recorder))
    return recorder


def test_a_failed_record_comes_back_after_the_backoff_not_the_queues_visibility_timeout(
    aws: Resources, twilio: ServedFake, redeliveries: Redeliveries
) -> None:
    enroll({"phone_number": "+12065550004"})
    event = sqs_event(aws)
    [record] = event["Records"]
    record["attributes"]["ApproximateReceiveCount"] = "3"
    twilio.fake.fail_next(503, count=1)

    response = handle(event)

    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert redeliveries.asked == [(record["receiptHandle"], 40)]  # the third try failed: back in 40 s


def test_a_record_with_too_little_time_left_goes_back_at_once_untouched(
    aws: Resources, twilio: ServedFake, redeliveries: Redeliveries
) -> None:
    from functions.conversation.app import lambda_handler

    person = enroll({"phone_number": "+12065550005"})
    event = sqs_event(aws)

    class AlmostOver(LambdaContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 5_000

    response = lambda_handler(event, AlmostOver())

    assert response == {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}
    assert redeliveries.asked == [(event["Records"][0]["receiptHandle"], 0)]
    assert twilio.fake.messages(to=person["phone_number"]) == []  # not started: nothing sent


def test_what_waited_in_the_dead_letter_queue_is_moved_back_and_answered_exactly_once(
    aws: Resources, twilio: ServedFake
) -> None:
    from infra.redrive import main

    # Given a participant's greeting work that failed every retry, twice over (a duplicate in the DLQ)
    person = enroll({"phone_number": "+12065550006"})
    [queued] = received(aws.sqs, aws.queue_url)
    aws.sqs.delete_message(QueueUrl=aws.queue_url, ReceiptHandle=queued["ReceiptHandle"])
    for copy in ("a", "b"):
        aws.sqs.send_message(
            QueueUrl=aws.dead_letter_queue_url,
            MessageBody=queued["Body"],
            MessageGroupId=person["id"],
            MessageDeduplicationId=f"{queued['Attributes']['MessageDeduplicationId']}-{copy}",
        )
    printed: list[str] = []
    assert main(["--dlq", aws.dead_letter_queue_url, "--queue", aws.queue_url, "--dry-run"], printed.append) == 0
    assert printed == [f"2 message(s) wait in {aws.dead_letter_queue_url}"]

    # When the redrive command moves them back and the conversation function runs on them
    main(["--dlq", aws.dead_letter_queue_url, "--queue", aws.queue_url], printed.append)
    first = sqs_event(aws)
    handle({"Records": first["Records"][:1]})
    handle({"Records": first["Records"][1:]})

    # Then the dead-letter queue is empty, both copies kept the participant's group, and one greeting went out
    assert printed[-1] == f"2 message(s) moved from {aws.dead_letter_queue_url}"
    assert received(aws.sqs, aws.dead_letter_queue_url) == []
    assert {r["attributes"]["MessageGroupId"] for r in first["Records"]} == {person["id"]}
    assert len(twilio.fake.messages(to=person["phone_number"])) == 1
