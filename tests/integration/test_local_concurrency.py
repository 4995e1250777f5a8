"""The local stack under concurrency, as strict as AWS (issue 9): many threads writing to moto at once lose
nothing and see no error AWS would not give, the gateway takes 50 clients at once, and a function runs its
invocations side by side, each stopped waiting for at its Timeout. One stack for the module (moto's state
is process-wide)."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from infra.local import HttpRequest, HttpResponse, LocalConfig, LocalStack
from infra.local.functions import DEFAULT_CONCURRENCY, InvocationTimedOut, LocalFunction, functions_from_template
from infra.local.intrinsics import PhysicalResource
from infra.local.web import json_response
from tests.support.aws import local_client

THREADS = 16
ROUNDS = 4
CLIENTS = 50
TABLE = "sms-habit-coach-local"


class Crowd:
    """A route that answers only once CLIENTS requests are in it at the same time."""

    def __init__(self) -> None:
        self.together = threading.Barrier(CLIENTS, timeout=30)

    def extension(self, stack: LocalStack) -> None:
        stack.mount("/_local/crowd", self.handle)

    def handle(self, request: HttpRequest) -> HttpResponse:
        self.together.wait()
        return json_response(200, {"path": request.path})


@pytest.fixture(scope="module")
def crowd() -> Crowd:
    return Crowd()


@pytest.fixture(scope="module")
def stack(crowd: Crowd) -> Iterator[LocalStack]:
    running = LocalStack(LocalConfig(port=0), extensions=[crowd.extension], environ={}, log=io.StringIO())
    running.start()
    yield running
    running.stop()


def all_at_once(work: Callable[[int], None], threads: int) -> list[BaseException]:
    """Run work(0) ... work(threads - 1) in threads released together; what they raised."""
    start = threading.Barrier(threads)
    raised: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # the test reports every one of them
            raised.append(exc)

    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return raised


def code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


def test_concurrent_writes_to_moto_lose_nothing_and_raise_nothing_aws_would_not(stack: LocalStack) -> None:
    # boto3 builds clients from one session, which is not safe from many threads: one client each, built here.
    tables = [local_client(stack, "dynamodb") for _ in range(THREADS)]
    queues = [local_client(stack, "sqs") for _ in range(THREADS)]
    queue_url = stack.physical["InboundQueue"].ref
    tables[0].put_item(TableName=TABLE, Item={"PK": {"S": "counter"}, "SK": {"S": "n"}, "n": {"N": "0"}})
    races_won = [0] * THREADS
    refused: list[str] = []

    def work(n: int) -> None:
        table, sqs = tables[n], queues[n]
        for k in range(ROUNDS):
            table.put_item(
                TableName=TABLE,
                Item={"PK": {"S": f"put#{n}"}, "SK": {"S": str(k)}},
                ConditionExpression="attribute_not_exists(PK)",
            )
            table.update_item(
                TableName=TABLE,
                Key={"PK": {"S": "counter"}, "SK": {"S": "n"}},
                UpdateExpression="SET n = n + :one",
                ConditionExpression="attribute_exists(n)",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )
            table.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": TABLE, "Item": {"PK": {"S": f"tx#{n}"}, "SK": {"S": f"{k}#a"}}}},
                    {"Put": {"TableName": TABLE, "Item": {"PK": {"S": f"tx#{n}"}, "SK": {"S": f"{k}#b"}}}},
                ]
            )
            try:  # fails on its condition: moto puts the table back as it was before this transaction
                table.transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": TABLE, "Item": {"PK": {"S": f"lost#{n}"}, "SK": {"S": str(k)}}}},
                        {
                            "ConditionCheck": {
                                "TableName": TABLE,
                                "Key": {"PK": {"S": "no-such-item"}, "SK": {"S": "x"}},
                                "ConditionExpression": "attribute_exists(PK)",
                            }
                        },
                    ]
                )
            except ClientError as exc:
                refused.append(code(exc))
            try:  # every thread tries to create the same item: one wins
                table.put_item(
                    TableName=TABLE,
                    Item={"PK": {"S": f"race#{k}"}, "SK": {"S": "x"}, "winner": {"N": str(n)}},
                    ConditionExpression="attribute_not_exists(PK)",
                )
                races_won[n] += 1
            except ClientError as exc:
                refused.append(code(exc))
            sqs.send_message(
                QueueUrl=queue_url,
                MessageBody=f"{n}-{k}",
                MessageGroupId=f"thread-{n}",
                MessageDeduplicationId=f"{n}-{k}",
            )

    raised = all_at_once(work, THREADS)

    assert raised == []
    table = tables[0]
    counter = table.get_item(TableName=TABLE, Key={"PK": {"S": "counter"}, "SK": {"S": "n"}})["Item"]
    assert counter["n"]["N"] == str(THREADS * ROUNDS)
    for n in range(THREADS):
        puts = table.query(
            TableName=TABLE, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": f"put#{n}"}}
        )
        writes = table.query(
            TableName=TABLE, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": f"tx#{n}"}}
        )
        assert puts["Count"] == ROUNDS
        assert writes["Count"] == 2 * ROUNDS
        lost = table.query(
            TableName=TABLE, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": f"lost#{n}"}}
        )
        assert lost["Count"] == 0  # a transaction that failed wrote nothing
    assert sum(races_won) == ROUNDS
    assert sorted(set(refused)) == ["ConditionalCheckFailedException", "TransactionCanceledException"]
    assert len(refused) == THREADS * ROUNDS + (THREADS - 1) * ROUNDS
    counts = queues[0].get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
    assert counts["Attributes"]["ApproximateNumberOfMessages"] == str(THREADS * ROUNDS)


def test_a_long_poll_waits_outside_moto_and_wakes_for_a_message(stack: LocalStack) -> None:
    sqs = local_client(stack, "sqs")
    url = sqs.create_queue(QueueName="long-poll.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    got: list[dict[str, Any]] = []
    polling = threading.Thread(
        target=lambda: got.extend(
            local_client(stack, "sqs").receive_message(QueueUrl=url, WaitTimeSeconds=20).get("Messages", [])
        )
    )
    polling.start()

    # moto is free meanwhile: the send goes through, and the poll returns with it long before its 20 s.
    started = time.monotonic()
    sqs.send_message(QueueUrl=url, MessageBody="hello", MessageGroupId="g", MessageDeduplicationId="1")
    polling.join(timeout=15)

    assert [m["Body"] for m in got] == ["hello"]
    assert time.monotonic() - started < 15


def test_the_gateway_serves_fifty_clients_at_once(stack: LocalStack) -> None:
    answers: list[bytes] = [b""] * CLIENTS

    def client(n: int) -> None:
        # The kernel completes a connection the listen backlog has room for at once; past the backlog it drops
        # it (or resets it), and the client's first retry comes a second later.
        with socket.create_connection(("127.0.0.1", stack.port), timeout=0.9) as conn:
            conn.settimeout(30)
            conn.sendall(f"GET /_local/crowd/{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            received = b""
            while chunk := conn.recv(65536):
                received += chunk
            answers[n] = received

    raised = all_at_once(client, CLIENTS)

    assert raised == []
    for n, answer in enumerate(answers):
        assert answer.startswith(b"HTTP/1.1 200"), answer
        assert answer.endswith(f'{{"path": "/_local/crowd/{n}"}}'.encode())


# --- a function's invocations ---------------------------------------------------------------------------


def function(handler: Any, *, timeout: float = 5.0, concurrency: int = DEFAULT_CONCURRENCY) -> LocalFunction:
    return LocalFunction(
        "F", "unused", "unused", "fn", "arn:fn", timeout_seconds=timeout, concurrency=concurrency, handler=handler
    )


def test_invocations_of_one_function_run_side_by_side() -> None:
    both_in = threading.Barrier(2, timeout=10)

    def handler(event: Any, context: Any) -> Any:
        both_in.wait()  # breaks (and raises) unless the other invocation runs at the same time
        return event

    results: list[Any] = []
    shared = function(handler)
    raised = all_at_once(lambda n: results.append(shared.invoke(n)), 2)

    assert raised == []
    assert sorted(results) == [0, 1]


def test_no_more_invocations_run_at_once_than_the_functions_concurrency() -> None:
    state = threading.Condition()
    running, most = [0], [0]
    go_on = threading.Event()

    def handler(event: Any, context: Any) -> Any:
        with state:
            running[0] += 1
            most[0] = max(most[0], running[0])
            state.notify_all()
        go_on.wait(10)
        with state:
            running[0] -= 1
        return event

    bounded = function(handler, concurrency=2)
    callers = [threading.Thread(target=bounded.invoke, args=(n,)) for n in range(6)]
    for caller in callers:
        caller.start()
    with state:
        assert state.wait_for(lambda: running[0] == 2, timeout=10)
    go_on.set()
    for caller in callers:
        caller.join(timeout=10)

    assert most[0] == 2


def test_an_invocation_past_its_timeout_fails_at_once_and_the_handler_runs_on() -> None:
    release = threading.Event()
    lines: list[str] = []
    returned = threading.Event()
    ran_out = threading.Event()

    def log(line: str) -> None:
        lines.append(line)
        if "returned" in line:
            returned.set()

    def handler(event: Any, context: Any) -> Any:
        while context.get_remaining_time_in_millis() > 0:
            release.wait(0.01)
        ran_out.set()
        release.wait(10)  # past its deadline: the handler goes on until it returns
        return "late"

    slow = LocalFunction("Slow", "unused", "unused", "fn", "arn:fn", timeout_seconds=0.2, handler=handler, log=log)
    started = time.monotonic()

    with pytest.raises(InvocationTimedOut, match=r"Task timed out after 0\.20 seconds"):
        slow.invoke({}, "req-1")

    took = time.monotonic() - started
    assert 0.2 <= took < 2.0
    assert ran_out.wait(10)  # the handler saw its remaining time reach 0
    assert lines[0].startswith("Slow: RequestId: req-1 Error: Task timed out after 0.20 seconds")
    assert "runs on until the handler returns" in lines[0]
    release.set()
    assert returned.wait(10)
    assert "Slow: req-1 timed out and returned after" in lines[-1]


def test_a_failing_invocation_raises_its_error_to_the_caller() -> None:
    def handler(event: Any, context: Any) -> Any:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        function(handler).invoke({})


def test_the_template_gives_each_function_its_reserved_concurrency() -> None:
    template = {
        "Globals": {"Function": {"Timeout": 7, "ReservedConcurrentExecutions": 4}},
        "Resources": {
            "Own": {
                "Type": "AWS::Serverless::Function",
                "Properties": {"CodeUri": "functions/own/", "Handler": "app.h", "ReservedConcurrentExecutions": 2},
            },
            "Inherits": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "f/", "Handler": "app.h"}},
        },
    }
    plain = {
        "Resources": {"F": {"Type": "AWS::Serverless::Function", "Properties": {"CodeUri": "f/", "Handler": "a.h"}}}
    }
    physical = {"Own": PhysicalResource("own"), "Inherits": PhysicalResource("inherits")}

    functions = functions_from_template(template, physical, {})

    assert (functions["Own"].concurrency, functions["Inherits"].concurrency) == (2, 4)
    assert functions["Own"].timeout_seconds == 7
    assert functions_from_template(plain, {}, {})["F"].concurrency == DEFAULT_CONCURRENCY
