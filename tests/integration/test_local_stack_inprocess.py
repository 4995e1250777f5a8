"""The whole local stack in this process, on a free port, with fake handlers and a test extension:
the resources in moto, the environment the handlers get, routing over real HTTP, mounts, services.
One stack at a time per process: moto's state is process-wide."""

from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local import HttpRequest, HttpResponse, LocalConfig, LocalStack
from infra.local.web import json_response
from infra.template import load_template
from tests.support.aws import local_client as aws

KEY = "inprocess-key"


class RecordingService:
    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")


class Harness:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.service = RecordingService()
        self.environ: dict[str, str] = {"AWS_PROFILE": "someone-real"}
        self.log = io.StringIO()

    def enrollment(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"seen": event["path"]}),
        }

    def extension(self, stack: LocalStack) -> None:
        def clock(request: HttpRequest) -> HttpResponse | None:
            if request.path.endswith("/pass"):
                return None  # not mine: the gateway carries on to the API
            if request.path.endswith("/boom"):
                raise RuntimeError("mount failed")
            return json_response(200, {"now": "2026-01-01T00:00:00Z", "method": request.method})

        stack.mount("/_local/clock", clock)
        stack.add_service(self.service)
        stack.add_banner_line("Clock", f"{stack.base_url}/_local/clock")


@pytest.fixture(scope="module")
def harness() -> Harness:
    return Harness()


@pytest.fixture(scope="module")
def stack(harness: Harness) -> Iterator[LocalStack]:
    running = LocalStack(
        LocalConfig(port=0, api_key=KEY, shell_variables={"DEFAULT_TIMEZONE": "Europe/Berlin"}),
        extensions=[harness.extension],
        handlers={"EnrollmentFunction": harness.enrollment},
        environ=harness.environ,
        log=harness.log,
    )
    running.start()
    yield running
    running.stop()


def call(
    stack: LocalStack, method: str, path: str, body: bytes | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(stack.base_url + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, dict(err.headers.items()), err.read()


def test_the_templates_resources_exist_in_moto(stack: LocalStack) -> None:
    table = aws(stack, "dynamodb").describe_table(TableName="sms-habit-coach-local")["Table"]
    assert [k["AttributeName"] for k in table["KeySchema"]] == ["PK", "SK"]
    assert table["GlobalSecondaryIndexes"][0]["IndexName"] == "GSI1"
    ttl = aws(stack, "dynamodb").describe_time_to_live(TableName="sms-habit-coach-local")
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"

    sqs = aws(stack, "sqs")
    queue = stack.physical["InboundQueue"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue.ref, AttributeNames=["All"])["Attributes"]
    assert queue.ref.endswith("/sms-habit-coach-local-inbound.fifo")
    assert attributes["FifoQueue"] == "true"
    declared = load_template()["Resources"]["InboundQueue"]["Properties"]
    assert attributes["VisibilityTimeout"] == str(declared["VisibilityTimeout"])
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.physical["InboundDeadLetterQueue"].attributes["Arn"]
    assert int(redrive["maxReceiveCount"]) == int(declared["RedrivePolicy"]["maxReceiveCount"])

    group = aws(stack, "scheduler").get_schedule_group(Name="sms-habit-coach-local-nudges")
    assert group["Name"] == "sms-habit-coach-local-nudges"


def test_the_handlers_environment_points_at_moto_and_the_local_resources(stack: LocalStack, harness: Harness) -> None:
    env = harness.environ

    assert "AWS_PROFILE" not in env
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url
    assert env["TABLE_NAME"] == "sms-habit-coach-local"
    assert env["QUEUE_URL"] == stack.physical["InboundQueue"].ref
    assert env["SCHEDULE_GROUP_NAME"] == "sms-habit-coach-local-nudges"
    assert env["PUBLIC_BASE_URL"] == stack.base_url == stack.public_base_url
    assert env["DEFAULT_TIMEZONE"] == "Europe/Berlin"  # the shell's value wins over the template's
    assert env["STAGE"] == "local"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SmsHabitCoach"


def test_requests_reach_the_handler_of_their_route(stack: LocalStack, harness: Harness) -> None:
    status, headers, body = call(
        stack,
        "POST",
        "/conversation/participants",
        b'{"phone_number": "+1"}',
        **{"x-api-key": KEY, "Content-Type": "application/json"},
    )

    assert status == 201
    assert json.loads(body) == {"seen": "/conversation/participants"}
    assert headers["Content-Type"] == "application/json"
    event = harness.events[-1]
    assert event["body"] == '{"phone_number": "+1"}'
    assert event["requestContext"]["stage"] == "local"
    # API_KEY is the key of one researcher, local-researcher, an API key in moto's API Gateway.
    key_id = event["requestContext"]["identity"]["apiKeyId"]
    assert key_id == stack.api_keys["local-researcher"].id
    assert aws(stack, "apigateway").get_api_key(apiKey=key_id)["name"] == "local-researcher"
    assert "POST /conversation/participants -> 201" in harness.log.getvalue()


def test_api_gateway_answers_what_it_answers_itself(stack: LocalStack) -> None:
    assert call(stack, "POST", "/conversation/participants", b"{}")[0] == 403
    status, _, body = call(stack, "GET", "/nowhere")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
    assert call(stack, "HEAD", "/nowhere")[2] == b""


def test_requests_without_a_usable_length_are_refused(stack: LocalStack) -> None:
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as conn:
        conn.sendall(b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as conn:
        conn.sendall(b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        assert conn.recv(100).startswith(b"HTTP/1.1 411")


def test_mounted_routes_come_first_and_may_pass(stack: LocalStack) -> None:
    status, _, body = call(stack, "POST", "/_local/clock/advance", b'{"minutes": 5}')
    assert (status, json.loads(body)["method"]) == (200, "POST")

    status, _, body = call(stack, "GET", "/_local/clock/pass")
    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})

    assert call(stack, "GET", "/_local/clock/boom")[0] == 500
    assert call(stack, "GET", "/_local/clockwork")[0] == 403  # a prefix is a whole path segment


def test_the_banner_says_where_everything_is(stack: LocalStack) -> None:
    banner = stack.banner()

    assert f"{stack.base_url}/conversation/participants" in banner
    # A key the shell gave (API_KEY here) is never printed: the banner names the researcher and the variable.
    assert KEY not in banner
    assert "local-researcher  (key from API_KEY)" in banner
    assert '-H "x-api-key: $API_KEY"' in banner
    assert f"{stack.base_url}/twilio/sms" in banner
    assert stack.endpoint_url in banner
    assert f"{stack.base_url}/_local/clock" in banner
    assert "+1 (206) 555-0100" in banner
    assert banner.splitlines()[-1].startswith("Local stack ready")
