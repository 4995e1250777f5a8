"""The queue pump in the local stack, with stand-in handlers: Lambda's SQS event, deletes on success,
redelivery of what failed, the DLQ after maxReceiveCount; then the whole Twilio loop of the local stack:
`make sms` -> signed webhook -> queue -> pump -> conversation -> TwilioSmsSender -> fake Twilio -> signed
status callbacks. One stack for the module (moto's state is process-wide)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import boto3
import pytest
from twilio.request_validator import RequestValidator

from coach.adapters.twilio_sms import TwilioSmsSender
from coach.settings import TwilioSettings
from infra import sms
from infra.local import LocalConfig, LocalStack
from infra.local.fake_twilio import FakeTwilio, FakeTwilioExtension
from infra.local.pump import QueuePump, QueuePumpExtension, SqsEventSource, failed_message_ids, sqs_event_sources
from infra.template import load_template

ALICE = "+12065550100"
ALWAYS = -1


class StandIns:
    """The webhook and conversation functions, as far as these tests need them."""

    def __init__(self) -> None:
        self.stack: LocalStack | None = None
        self.records: list[dict[str, Any]] = []
        self.failures: dict[str, int] = {}  # body -> failures still to report (ALWAYS: every time)
        self.raise_once: set[str] = set()  # a body whose batch makes the handler raise, once
        self.callbacks: list[dict[str, str]] = []
        self.forged = 0
        self._lock = threading.Lock()

    def conversation(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed = []
        with self._lock:
            self.records.extend(event["Records"])
            bodies = {r["body"] for r in event["Records"]}
            if bodies & self.raise_once:
                self.raise_once -= bodies
                raise RuntimeError("the function crashed")
            for record in event["Records"]:
                left = self.failures.get(record["body"], 0)
                if left:
                    self.failures[record["body"]] = left - 1 if left > 0 else ALWAYS
                    failed.append({"itemIdentifier": record["messageId"]})
        for record in event["Records"]:
            work = json.loads(record["body"]) if record["body"].startswith("{") else {}
            if "reply_to" in work:
                self.sender().send(work["reply_to"], f"You said: {work['text']}")
        return {"batchItemFailures": failed}

    def sender(self) -> TwilioSmsSender:
        assert self.stack is not None
        env = self.stack.environment  # what the real handler would read from os.environ
        names = ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER", "TWILIO_API_BASE_URL"]
        values: dict[str, Any] = {n.lower(): env[n] for n in [*names, "STATUS_CALLBACK_URL"]}
        return TwilioSmsSender(TwilioSettings(**values))

    def webhook(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert self.stack is not None
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
        form = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        url = self.stack.public_base_url + event["path"]
        token = self.stack.environment["TWILIO_AUTH_TOKEN"]
        if not RequestValidator(token).validate(url, form, event["headers"].get("X-Twilio-Signature", "")):
            self.forged += 1
            return {"statusCode": 403, "body": ""}
        if event["path"] == "/twilio/status":
            with self._lock:
                self.callbacks.append(form)
        else:
            boto3.client(
                "sqs", endpoint_url=self.stack.endpoint_url, aws_access_key_id="x", aws_secret_access_key="x"
            ).send_message(
                QueueUrl=self.stack.physical["InboundQueue"].ref,
                MessageBody=json.dumps({"reply_to": form["From"], "text": form["Body"]}),
                MessageGroupId=form["From"],
                MessageDeduplicationId=form["MessageSid"],
            )
        return {"statusCode": 200, "headers": {"Content-Type": "text/xml"}, "body": "<Response/>"}

    def seen(self, body: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r in self.records if r["body"] == body]


@pytest.fixture(scope="module")
def stand_ins() -> StandIns:
    return StandIns()


@pytest.fixture(scope="module")
def twilio_extension() -> FakeTwilioExtension:
    return FakeTwilioExtension(delivery_delay_seconds=0)


@pytest.fixture(scope="module")
def pump_extension() -> QueuePumpExtension:
    return QueuePumpExtension(redelivery_delay_seconds=0)


@pytest.fixture(scope="module")
def stack(
    stand_ins: StandIns, twilio_extension: FakeTwilioExtension, pump_extension: QueuePumpExtension
) -> Iterator[LocalStack]:
    running = LocalStack(
        LocalConfig(port=0),
        extensions=[twilio_extension, pump_extension],
        handlers={"ConversationFunction": stand_ins.conversation, "WebhookFunction": stand_ins.webhook},
        environ={},
        log=io.StringIO(),
    )
    stand_ins.stack = running
    running.start()
    yield running
    running.stop()


@pytest.fixture
def pump(stack: LocalStack, pump_extension: QueuePumpExtension) -> QueuePump:
    return pump_extension.pumps["ConversationFunction"]


@pytest.fixture
def fake(stack: LocalStack, twilio_extension: FakeTwilioExtension) -> FakeTwilio:
    assert twilio_extension.fake is not None
    return twilio_extension.fake


def sqs(stack: LocalStack) -> Any:
    return boto3.client("sqs", endpoint_url=stack.endpoint_url, aws_access_key_id="x", aws_secret_access_key="x")


def enqueue(stack: LocalStack, body: str, group: str = "p1", **attributes: str) -> str:
    message_attributes = {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()}
    return str(
        sqs(stack).send_message(
            QueueUrl=stack.physical["InboundQueue"].ref,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=hashlib.sha256(body.encode()).hexdigest(),
            MessageAttributes=message_attributes,
        )["MessageId"]
    )


def dead_letters(stack: LocalStack) -> list[str]:
    queue = stack.physical["InboundDeadLetterQueue"].ref
    answer = sqs(stack).receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return [m["Body"] for m in answer.get("Messages", [])]


def max_receive_count() -> int:
    return int(load_template()["Resources"]["InboundQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"])


def test_the_template_gives_the_pump_its_queue_batch_size_and_failure_reporting() -> None:
    template = load_template()
    [event] = template["Resources"]["ConversationFunction"]["Properties"]["Events"].values()
    [export] = template["Resources"]["ExportFunction"]["Properties"]["Events"].values()

    assert sorted(sqs_event_sources(template), key=lambda source: source.function_id) == [
        SqsEventSource("ConversationFunction", "InboundQueue", int(event["Properties"]["BatchSize"]), True),
        SqsEventSource("ExportFunction", "ExportQueue", int(export["Properties"]["BatchSize"]), True),
    ]


@pytest.mark.parametrize(
    ("result", "reports", "failed"),
    [
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, True, {"b"}),
        ({"batchItemFailures": []}, True, set()),
        (None, True, set()),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, True, {"a", "b"}),  # unknown id: all failed
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, True, {"a", "b"}),
        ({"batchItemFailures": "b"}, True, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, False, set()),  # not reported: ignored
    ],
)
def test_lambdas_rules_for_batch_item_failures(result: Any, reports: bool, failed: set[str]) -> None:
    assert failed_message_ids(result, ["a", "b"], reports_item_failures=reports) == failed


def test_records_arrive_as_lambdas_sqs_event_and_are_deleted(
    stack: LocalStack, stand_ins: StandIns, pump: QueuePump
) -> None:
    first = enqueue(stack, "ok-1", "p1", kind="inbound")
    enqueue(stack, "ok-2", "p1")
    enqueue(stack, "ok-3", "p2")

    pump.drain(10)

    [record] = stand_ins.seen("ok-1")
    assert record["messageId"] == first
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == stack.physical["InboundQueue"].attributes["Arn"]
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == hashlib.md5(b"ok-1").hexdigest()  # noqa: S324 - SQS's own checksum
    assert record["receiptHandle"]
    assert record["attributes"]["MessageGroupId"] == "p1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(record["attributes"]) >= {
        "ApproximateFirstReceiveTimestamp",
        "SentTimestamp",
        "SenderId",
        "MessageDeduplicationId",
        "SequenceNumber",
    }
    assert record["messageAttributes"]["kind"]["stringValue"] == "inbound"
    assert record["messageAttributes"]["kind"]["dataType"] == "String"
    assert [len(stand_ins.seen(body)) for body in ("ok-2", "ok-3")] == [1, 1]


def test_a_reported_failure_comes_back_and_then_succeeds(
    stack: LocalStack, stand_ins: StandIns, pump: QueuePump
) -> None:
    stand_ins.failures["flaky"] = 1
    enqueue(stack, "flaky", "p3")

    pump.drain(10)

    assert [r["attributes"]["ApproximateReceiveCount"] for r in stand_ins.seen("flaky")] == ["1", "2"]
    assert "flaky" not in dead_letters(stack)


def test_a_crash_brings_the_whole_batch_back(stack: LocalStack, stand_ins: StandIns, pump: QueuePump) -> None:
    stand_ins.raise_once.add("crash")
    enqueue(stack, "crash", "p4")

    pump.drain(10)

    assert len(stand_ins.seen("crash")) == 2


def test_a_message_failing_every_time_ends_in_the_dlq(stack: LocalStack, stand_ins: StandIns, pump: QueuePump) -> None:
    stand_ins.failures["poison"] = ALWAYS
    enqueue(stack, "poison", "p5")

    pump.drain(10)

    assert len(stand_ins.seen("poison")) == max_receive_count()
    assert "poison" in dead_letters(stack)


def test_drain_is_offered_over_http(stack: LocalStack, pump: QueuePump) -> None:
    enqueue(stack, "ok-http", "p6")
    request = urllib.request.Request(
        f"{stack.base_url}/_local/pump/drain", data=b'{"timeout_seconds": 10}', method="POST"
    )

    with urllib.request.urlopen(request, timeout=15) as answer:
        assert json.loads(answer.read()) == {"drained": True}


def test_the_handlers_environment_points_at_the_fake_twilio(stack: LocalStack) -> None:
    env = stack.environment

    assert env["TWILIO_ACCOUNT_SID"] == "AC" + "0" * 32
    assert env["TWILIO_AUTH_TOKEN"] == "local-twilio-auth-token"
    assert env["TWILIO_FROM_NUMBER"] == "+15005550006"
    assert env["TWILIO_API_BASE_URL"] == stack.base_url
    assert env["STATUS_CALLBACK_URL"] == f"{stack.public_base_url}/twilio/status"
    banner = stack.banner()
    assert f"{stack.base_url}/2010-04-01/Accounts/{'AC' + '0' * 32}/Messages.json" in banner
    assert "local-twilio-auth-token" in banner
    assert "-> ConversationFunction" in banner


def test_a_text_from_make_sms_gets_its_reply_and_the_status_callbacks_come_back(
    stack: LocalStack, stand_ins: StandIns, pump: QueuePump, fake: FakeTwilio, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [0.0]

    def pause(seconds: float) -> None:  # instead of sleeping: let the pipeline finish, then move time on
        pump.drain(10)
        assert fake.wait_idle()
        now[0] += seconds

    code = sms.main(
        ["--from", ALICE, "--body", "hi coach", "--wait", "1"],
        {"PORT": str(stack.port)},
        clock=lambda: now[0],
        pause=pause,
    )

    out = capsys.readouterr().out
    assert code == 0
    assert f"POST {stack.base_url}/twilio/sms -> 200 <Response/>" in out
    assert "coach> You said: hi coach" in out
    [reply] = fake.messages(to=ALICE)
    assert [(c["MessageSid"], c["MessageStatus"]) for c in stand_ins.callbacks] == [
        (reply["sid"], "sent"),
        (reply["sid"], "delivered"),
    ]
    assert stand_ins.forged == 0
    assert len([r for r in stand_ins.records if "hi coach" in r["body"]]) == 1  # one inbound, one turn


def test_make_sms_says_so_when_no_stack_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    code = sms.main(["--from", ALICE, "--body", "hi"], {"PORT": str(port)})

    assert code == 2
    assert "make run" in capsys.readouterr().err


def test_the_stack_and_its_extensions_load_before_the_coach_layer_is_on_the_path() -> None:
    # `python -m infra.local` puts layers/coach on sys.path only when the stack starts.
    code = "import infra.local.__main__, infra.local.extensions; import sys; sys.exit('coach' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
