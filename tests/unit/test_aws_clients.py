"""One SDK client per service per container (coach.adapters.aws_clients): every store and queue the composition
root builds shares it; a change of endpoint or session, or forget_built_services, gets a new one. Building a
client opens no socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from coach.adapters import aws_clients
from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.sqs_queue import SqsExportQueue, SqsRedelivery, SqsWorkQueue
from coach.bootstrap import build_enrollment_service, build_webhook_service, forget_built_services
from coach.settings import EnrollmentSettings, WebhookSettings


@pytest.fixture(autouse=True)
def _fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB", raising=False)
    aws_clients.forget()
    yield
    aws_clients.forget()


def test_every_store_of_the_webhook_shares_one_dynamodb_client_and_the_queue_one_sqs_client() -> None:
    settings = WebhookSettings(table_name="coach-test", queue_url="https://sqs.example/q.fifo", auto_enroll=True)

    service = build_webhook_service(settings)

    assert service.enrollment is not None
    dynamodb = [service.participants, service.conversations, service.enrollment.audit, service.enrollment.sequence]
    assert {id(store.client) for store in dynamodb} == {id(aws_clients.client("dynamodb"))}  # type: ignore[union-attr]
    assert service.queue.client is service.enrollment.queue.client is aws_clients.client("sqs")  # type: ignore[attr-defined]
    assert service.queue.client is not service.participants.client  # type: ignore[attr-defined]


def test_the_enrollment_function_and_the_webhook_share_the_same_clients() -> None:
    enrollment = build_enrollment_service(
        EnrollmentSettings(table_name="coach-test", queue_url="https://sqs.example/q.fifo")
    )
    webhook = build_webhook_service(WebhookSettings(table_name="coach-test", queue_url="https://sqs.example/q.fifo"))

    assert enrollment.store.client is webhook.participants.client  # type: ignore[attr-defined]
    assert SqsExportQueue("q").client is SqsRedelivery().client is SqsWorkQueue("q").client


def test_a_client_given_to_an_adapter_is_the_one_it_uses() -> None:
    given: Any = object()

    assert DynamoDBParticipantStore("coach-test", given).client is given
    assert SqsWorkQueue("q", given).client is given
    assert DynamoDBConversationStore("coach-test").client is aws_clients.client("dynamodb")


def test_an_endpoint_change_gets_a_client_for_the_new_endpoint_and_the_old_one_comes_back_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a client made for AWS
    store = DynamoDBParticipantStore("coach-test")
    on_aws = store.client
    # When the environment points at a local stack's endpoint, then at another, then at AWS again
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    local = store.client
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:8000")
    dynamodb_local = store.client
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.delenv("AWS_ENDPOINT_URL_DYNAMODB")
    back = store.client
    # Then each endpoint had its own client, each aimed where the environment said
    assert local.meta.endpoint_url == "http://127.0.0.1:4566"
    assert dynamodb_local.meta.endpoint_url == "http://127.0.0.1:8000"
    assert on_aws.meta.endpoint_url == "https://dynamodb.us-east-1.amazonaws.com"
    assert back is on_aws
    assert len({id(on_aws), id(local), id(dynamodb_local)}) == 3


def test_a_region_change_gets_a_client_of_that_region(monkeypatch: pytest.MonkeyPatch) -> None:
    east = aws_clients.client("sqs")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")

    west = aws_clients.client("sqs")

    assert (east.meta.region_name, west.meta.region_name) == ("us-east-1", "eu-west-1")


def test_forgetting_the_built_services_builds_new_clients() -> None:
    before = aws_clients.client("dynamodb"), aws_clients.client("secretsmanager")

    forget_built_services()

    after = aws_clients.client("dynamodb"), aws_clients.client("secretsmanager")
    assert all(old is not new for old, new in zip(before, after, strict=True))
    assert aws_clients.client("dynamodb") is after[0]


def test_a_new_default_session_gets_new_clients_so_its_event_handlers_see_every_call() -> None:
    # What tests/bench do to count requests: a new default session, with a handler registered on it
    before = aws_clients.client("dynamodb")
    boto3.setup_default_session()

    after = aws_clients.client("dynamodb")

    assert after is not before
    assert after.meta.events is not before.meta.events


def test_threads_asking_at_once_get_one_client() -> None:
    got: list[Any] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait()
        got.append(aws_clients.client("sns"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(got) == 8
    assert all(client is got[0] for client in got)
