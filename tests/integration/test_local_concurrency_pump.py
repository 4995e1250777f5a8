"""The queue pump under concurrency, as Lambda's FIFO poller: message groups are handled side by side, one
group's records never two batches at once and always in order, and an invocation past the function's
Timeout brings its batch back. A stand-in conversation handler; one stack for the module (moto's state is
process-wide)."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.local import LocalConfig, LocalStack
from infra.local.pump import QueuePump, QueuePumpExtension
from tests.support.aws import local_client

WAIT = 10.0  # seconds a test waits for something that happens at once, before it gives up


class StandIn:
    """The conversation function: records when each record's handling begins and ends, per group.

    A body `block:<name>` waits for the test to set `gates[name]`; `fail-once:<x>` is reported failed the
    first time, with the rest of its group in the batch (as powertools' FIFO processor does); `slow-once:<x>`
    outlasts the function's timeout the first time."""

    def __init__(self) -> None:
        self.state = threading.Condition()
        self.log: list[tuple[str, str, str]] = []  # (group, body, "begin" | "end")
        self.running: dict[str, int] = {}
        self.overlaps: list[str] = []  # groups seen with two invocations at once
        self.gates: dict[str, threading.Event] = {}
        self.failed_once: set[str] = set()
        self.work: Callable[[], object] | None = None  # called for every record handled

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        groups = {r["attributes"]["MessageGroupId"] for r in event["Records"]}
        with self.state:
            for group in groups:
                self.running[group] = self.running.get(group, 0) + 1
                if self.running[group] > 1:
                    self.overlaps.append(group)
        failures: list[dict[str, str]] = []
        failing_groups: set[str] = set()
        try:
            for record in event["Records"]:
                group, body = record["attributes"]["MessageGroupId"], record["body"]
                if group in failing_groups:
                    failures.append({"itemIdentifier": record["messageId"]})
                    continue
                self._note(group, body, "begin")
                if self.work is not None:
                    self.work()
                kind, _, name = body.partition(":")
                if kind == "block":
                    assert self.gates.setdefault(name, threading.Event()).wait(WAIT)
                if kind in ("fail-once", "slow-once") and body not in self.failed_once:
                    self.failed_once.add(body)
                    if kind == "slow-once":
                        self.gates.setdefault(body, threading.Event()).wait(WAIT)  # past the timeout
                    failing_groups.add(group)
                    failures.append({"itemIdentifier": record["messageId"]})
                    continue
                self._note(group, body, "end")
        finally:
            with self.state:
                for group in groups:
                    self.running[group] -= 1
        return {"batchItemFailures": failures}

    def _note(self, group: str, body: str, what: str) -> None:
        with self.state:
            self.log.append((group, body, what))
            self.state.notify_all()

    def wait_for(self, entry: tuple[str, str, str]) -> bool:
        with self.state:
            return self.state.wait_for(lambda: entry in self.log, WAIT)

    def ended(self, group: str) -> list[str]:
        with self.state:
            return [body for g, body, what in self.log if g == group and what == "end"]

    def events(self, group: str) -> list[tuple[str, str]]:
        with self.state:
            return [(body, what) for g, body, what in self.log if g == group]


@pytest.fixture(scope="module")
def stand_in() -> StandIn:
    return StandIn()


@pytest.fixture(scope="module")
def pump_extension() -> QueuePumpExtension:
    return QueuePumpExtension(redelivery_delay_seconds=0)


@pytest.fixture(scope="module")
def stack(stand_in: StandIn, pump_extension: QueuePumpExtension) -> Iterator[LocalStack]:
    running = LocalStack(
        LocalConfig(port=0),
        extensions=[pump_extension],
        handlers={"ConversationFunction": stand_in},
        environ={},
        log=io.StringIO(),
    )
    running.start()
    yield running
    for gate in stand_in.gates.values():
        gate.set()
    running.stop()


@pytest.fixture
def pump(stack: LocalStack, pump_extension: QueuePumpExtension) -> QueuePump:
    return pump_extension.pumps["ConversationFunction"]


def enqueue(stack: LocalStack, body: str, group: str) -> None:
    local_client(stack, "sqs").send_message(
        QueueUrl=stack.physical["InboundQueue"].ref,
        MessageBody=body,
        MessageGroupId=group,
        MessageDeduplicationId=hashlib.sha256(f"{group}/{body}".encode()).hexdigest(),
    )


def test_the_pump_runs_as_many_workers_as_the_function_may_run_invocations(stack: LocalStack, pump: QueuePump) -> None:
    assert pump.workers == stack.functions["ConversationFunction"].concurrency > 1


def test_one_groups_blocked_turn_does_not_hold_up_another_group(
    stack: LocalStack, stand_in: StandIn, pump: QueuePump
) -> None:
    stand_in.gates["a"] = threading.Event()
    enqueue(stack, "block:a", "A")
    assert stand_in.wait_for(("A", "block:a", "begin"))

    enqueue(stack, "b-1", "B")

    assert stand_in.wait_for(("B", "b-1", "end"))
    assert stand_in.events("A") == [("block:a", "begin")]  # A is still blocked
    stand_in.gates["a"].set()
    pump.drain(WAIT)
    assert stand_in.ended("A") == ["block:a"]


def test_a_group_is_handled_one_batch_at_a_time_and_in_order(stack: LocalStack, stand_in: StandIn) -> None:
    # A pump of its own, one record per invocation (whatever the template's BatchSize), many workers, and a
    # handler that calls moto for each record, so a group's records would overlap if they could.
    sqs = local_client(stack, "sqs")
    url = sqs.create_queue(QueueName="ordered.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    function = stack.functions["ConversationFunction"]
    pump = QueuePump(
        function,
        sqs,
        url,
        arn,
        region="us-east-1",
        batch_size=1,
        redelivery_delay_seconds=0,
        workers=8,
        log=lambda _: None,
    )
    stand_in.work = lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    groups = ["G1", "G2", "G3", "G4"]
    sent = {group: [f"fail-once:{group}-{n}" if n in (2, 5) else f"{group}-{n}" for n in range(8)] for group in groups}
    for group, bodies in sent.items():
        entries = [
            {"Id": str(n), "MessageBody": body, "MessageGroupId": group, "MessageDeduplicationId": body}
            for n, body in enumerate(bodies)
        ]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)

    pump.start()
    try:
        pump.drain(WAIT * 3)
    finally:
        pump.stop()
        stand_in.work = None

    assert stand_in.overlaps == []  # never two invocations of one group at once
    for group in groups:
        assert stand_in.ended(group) == sent[group]
        # In order, a failed record first again, and what followed it only after it.
        tries = [try_ for body in sent[group] for try_ in ([body, body] if body.startswith("fail-once") else [body])]
        assert [body for body, what in stand_in.events(group) if what == "begin"] == tries


def test_an_invocation_past_the_timeout_fails_its_batch_which_comes_back(
    stack: LocalStack, stand_in: StandIn, pump: QueuePump, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation = stack.functions["ConversationFunction"]
    monkeypatch.setattr(conversation, "timeout_seconds", 0.3)
    lines: list[str] = []
    monkeypatch.setattr(conversation, "log", lines.append)

    enqueue(stack, "slow-once:t", "T")
    assert stand_in.wait_for(("T", "slow-once:t", "end"))  # the second try, after the first timed out

    assert [what for body, what in stand_in.events("T")] == ["begin", "begin", "end"]
    assert any("Task timed out after 0.30 seconds" in line for line in lines)
    stand_in.gates["slow-once:t"].set()  # the first try, abandoned, returns now
    pump.drain(WAIT)


def test_moto_hides_a_groups_messages_while_one_is_in_flight(stack: LocalStack) -> None:
    sqs = local_client(stack, "sqs")
    url = sqs.create_queue(QueueName="in-flight.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for body, group in [("g-1", "G"), ("g-2", "G"), ("h-1", "H")]:
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body)

    def receive_one() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1).get("Messages", [])
        return messages

    [first] = receive_one()
    [other] = receive_one()
    nothing = receive_one()  # g-2 waits while g-1 is in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])
    [then] = receive_one()

    assert (first["Body"], other["Body"], nothing, then["Body"]) == ("g-1", "h-1", [], "g-2")
