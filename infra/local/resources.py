"""moto's server as the local AWS, and the template's stateful resources created in it.

Resources moto holds (table, queues, schedule groups, schedules) are created for real, so the handlers'
boto3 calls find them (and the scheduler emulator fires the template's schedules); the rest (functions,
roles, the API) only get plausible names and ARNs, enough for the environment variables and schedule
targets that mention them.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from infra.local.intrinsics import Intrinsics, PhysicalResource, TemplateError
from infra.template import create_table, queue_attributes, resources_of_type

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoEndpoint:
    """moto's server on a free loopback port, in a daemon thread of this process, serving one request at a time.

    moto is not thread-safe: two requests running at once inside it can fail ("dictionary changed size during
    iteration"), a DynamoDB transaction that fails puts back a copy of the whole table taken before it, wiping
    what other requests wrote meanwhile, and a queue's counts can be read half-way through a change. Real
    DynamoDB and SQS serve any number of clients at once, each request atomic; so every request, from any
    thread and any client of this process (handlers, pumps, the scheduler emulator, tests), runs alone inside
    moto (`SerialisedMoto`). It is the server ThreadedMotoServer builds, with that lock around moto's app.
    """

    def __init__(self, host: str) -> None:
        self._host = host
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        # werkzeug logs every request moto serves; the gateway's access log already tells the story.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        app = SerialisedMoto(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self._host, 0, app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        self.url = f"http://{self._host}:{self._server.port}"
        # moto keeps its state in module globals that every server (and mock_aws) in this process
        # shares: start from an empty account, as a fresh `python -m infra.local` does.
        reset = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=10):
            pass
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None


@dataclass(frozen=True)
class _Answer:
    status: str
    headers: list[tuple[str, str]]
    body: bytes


class SerialisedMoto:
    """A WSGI wrapper that lets one request at a time into moto.

    SQS long polls are the exception, since moto would wait inside the lock and hold everyone up: a
    ReceiveMessage that may wait (its WaitTimeSeconds, else the queue's ReceiveMessageWaitTimeSeconds) is
    asked of moto without waiting, again each time a queue changes (and every RECHECK_SECONDS, for messages
    whose visibility timeout or delay runs out) until messages come or the wait is over, the lock free in
    between. That also keeps moto's own FIFO rule exact: a receive skips the groups with a message in
    flight, as moto computes them when the receive starts. Only SQS's JSON protocol (what boto3 speaks) is
    read; a long poll in the older query protocol waits inside the lock.
    """

    RECHECK_SECONDS = 0.25
    # SQS actions that change no queue (a ReceiveMessage that moved a message to its DLQ is found by the recheck).
    _READS = frozenset({"ReceiveMessage", "GetQueueAttributes", "GetQueueUrl", "ListQueues", "ListQueueTags"})

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._turn = threading.Condition()  # held while moto serves a request
        self._queue_changes = 0  # SQS requests that may have made a message receivable

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        body = _request_body(environ)  # read before the lock: a slow client must not hold it
        action = _sqs_action(environ)
        payload = _json_object(body) if action == "ReceiveMessage" else None
        with self._turn:
            if payload is not None:
                answer = self._receive(environ, payload)
            else:
                answer = self._serve(environ, body)
                if action is not None and action not in self._READS:
                    self._queue_changes += 1
                    self._turn.notify_all()
        start_response(answer.status, answer.headers)
        return [answer.body]

    def _serve(self, environ: WSGIEnvironment, body: bytes) -> _Answer:
        """One request through moto, its whole answer collected (the caller holds the lock)."""
        answered: list[tuple[str, list[tuple[str, str]]]] = []
        written: list[bytes] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], object]:
            answered[:] = [(status, headers)]
            return written.append

        request = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        request.pop("wsgi.input_terminated", None)
        result = self._app(request, start)
        try:
            written.extend(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        [(status, headers)] = answered
        return _Answer(status, headers, b"".join(written))

    def _receive(self, environ: WSGIEnvironment, payload: dict[str, Any]) -> _Answer:
        """ReceiveMessage, its long poll made of polls that do not wait (the caller holds the lock)."""
        wait = payload.get("WaitTimeSeconds")
        if wait is None:
            wait = self._queue_wait_seconds(environ, payload)
        deadline = time.monotonic() + _seconds(wait)
        poll = json.dumps({**payload, "WaitTimeSeconds": 0}).encode()
        while True:
            seen = self._queue_changes
            answer = self._serve(environ, poll)
            left = deadline - time.monotonic()
            if left <= 0 or not answer.status.startswith("200") or _json_object(answer.body).get("Messages"):
                return answer
            if self._queue_changes == seen:
                self._turn.wait(min(left, self.RECHECK_SECONDS))

    def _queue_wait_seconds(self, environ: WSGIEnvironment, payload: dict[str, Any]) -> Any:
        """The queue's ReceiveMessageWaitTimeSeconds, which a ReceiveMessage without WaitTimeSeconds waits."""
        question = {"QueueUrl": payload.get("QueueUrl"), "AttributeNames": ["ReceiveMessageWaitTimeSeconds"]}
        asked = {**environ, "HTTP_X_AMZ_TARGET": "AmazonSQS.GetQueueAttributes"}
        answer = self._serve(asked, json.dumps(question).encode())
        return _json_object(answer.body).get("Attributes", {}).get("ReceiveMessageWaitTimeSeconds", 0)


def _request_body(environ: WSGIEnvironment) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):  # chunked: werkzeug ends the stream where the body ends
        return bytes(stream.read())
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return bytes(stream.read(length)) if length > 0 else b""


def _sqs_action(environ: WSGIEnvironment) -> str | None:
    """The SQS action of a JSON-protocol request (X-Amz-Target: AmazonSQS.SendMessage), else None."""
    service, _, action = str(environ.get("HTTP_X_AMZ_TARGET", "")).partition(".")
    return action if service == "AmazonSQS" and action else None


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 0.0  # moto answers the bad value itself


def provision(
    intrinsics: Intrinsics,
    *,
    endpoint_url: str,
    stack_name: str,
    plausible: Mapping[str, PhysicalResource] | None = None,
) -> dict[str, PhysicalResource]:
    """Create the table, queues, schedule groups and schedules in moto; their physical ids by logical id.

    `plausible`: the made-up ids of what moto does not hold (plausible_resources), which schedules name:
    their Target.Arn is a function's ARN, the same the local functions have."""
    template, region = intrinsics.template, intrinsics.pseudo["AWS::Region"]

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **FAKE_CREDENTIALS)

    created: dict[str, PhysicalResource] = {}
    present = exists(intrinsics)

    # Names may refer to what was already created (a redrive policy to its DLQ), so each step
    # evaluates with everything created before it.
    def scope() -> Intrinsics:
        known = {**(plausible or {}), **created}
        return Intrinsics(intrinsics.template, intrinsics.parameters, known, intrinsics.pseudo)

    dynamodb = client("dynamodb")
    for logical_id in present & resources_of_type(dict(template), "AWS::DynamoDB::Table").keys():
        if logical_id != "CoachTable":
            raise TemplateError(f"{logical_id}: the local stack creates only the CoachTable table")
        name = _name(scope(), logical_id, "TableName", stack_name)
        create_table(dynamodb, dict(template), name)
        arn = dynamodb.describe_table(TableName=name)["Table"]["TableArn"]
        created[logical_id] = PhysicalResource(name, {"Arn": arn})

    sqs = client("sqs")
    queues = {k: v for k, v in resources_of_type(dict(template), "AWS::SQS::Queue").items() if k in present}
    # Dead-letter queues first: a queue's RedrivePolicy needs its DLQ's ARN.
    for logical_id in sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {})):
        props = queues[logical_id].get("Properties", {})
        name = _name(scope(), logical_id, "QueueName", _kebab(stack_name, logical_id, "Queue"))
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = queue_attributes(dict(template), logical_id)
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(scope().evaluate(props["RedrivePolicy"]))
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        created[logical_id] = PhysicalResource(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    scheduler = client("scheduler")
    for logical_id in present & resources_of_type(dict(template), "AWS::Scheduler::ScheduleGroup").keys():
        name = _name(scope(), logical_id, "Name", _kebab(stack_name, logical_id))
        arn = scheduler.create_schedule_group(Name=name)["ScheduleGroupArn"]
        created[logical_id] = PhysicalResource(name, {"Arn": arn})

    # Last: a schedule names its group, its dead-letter queue and (through `plausible`) its target.
    for logical_id in sorted(present & resources_of_type(dict(template), "AWS::Scheduler::Schedule").keys()):
        name = _name(scope(), logical_id, "Name", _kebab(stack_name, logical_id)[:64])
        props = scope().evaluate(template["Resources"][logical_id].get("Properties", {}))
        # CloudFormation's properties are CreateSchedule's parameters, by the same names.
        arn = scheduler.create_schedule(**{**props, "Name": name})["ScheduleArn"]
        created[logical_id] = PhysicalResource(name, {"Arn": arn})
    return created


def exists(intrinsics: Intrinsics) -> set[str]:
    """The resources a deployment with these parameters has: those whose Condition holds."""
    resources = intrinsics.template.get("Resources", {})
    return {
        logical_id
        for logical_id, resource in resources.items()
        if "Condition" not in resource or intrinsics.condition(resource["Condition"])
    }


def plausible_resources(intrinsics: Intrinsics, *, stack_name: str) -> dict[str, PhysicalResource]:
    """Names and ARNs for the resources moto does not hold, shaped like the ones AWS gives."""
    region, account_id = intrinsics.pseudo["AWS::Region"], intrinsics.pseudo["AWS::AccountId"]
    physical: dict[str, PhysicalResource] = {}
    present = exists(intrinsics)
    for logical_id, resource in intrinsics.template.get("Resources", {}).items():
        if logical_id not in present:
            continue
        kind = resource.get("Type", "")
        name = f"{stack_name}-{logical_id}"
        if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
            name = _name(intrinsics, logical_id, "FunctionName", name)  # others may name its ARN by it
            arn = f"arn:aws:lambda:{region}:{account_id}:function:{name}"
            physical[logical_id] = PhysicalResource(name, {"Arn": arn})
        elif kind == "AWS::IAM::Role":
            physical[logical_id] = PhysicalResource(name, {"Arn": f"arn:aws:iam::{account_id}:role/{name}"})
        elif kind in ("AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"):
            arn = f"arn:aws:lambda:{region}:{account_id}:layer:{name}:1"
            physical[logical_id] = PhysicalResource(arn, {"Arn": arn})
        elif kind in ("AWS::Serverless::Api", "AWS::ApiGateway::RestApi"):
            # An API id is how `https://${Api}.execute-api...` URLs get built; "local" reads as such.
            physical[logical_id] = PhysicalResource("local", {"RootResourceId": "root"})
        else:
            physical[logical_id] = PhysicalResource(name)
    return physical


def _name(intrinsics: Intrinsics, logical_id: str, name_property: str, default: str) -> str:
    """The name the template gives the resource, else `default`."""
    props = intrinsics.template["Resources"][logical_id].get("Properties", {})
    if name_property in props:
        return intrinsics.evaluate_str(props[name_property], f"{logical_id}.{name_property}")
    return default


def _kebab(stack_name: str, logical_id: str, suffix: str = "") -> str:
    """`<stack>-inbound` for InboundQueue: CloudFormation's generated names, minus the random tail."""
    base = logical_id.removesuffix(suffix) or logical_id
    return f"{stack_name}-" + re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", base).lower()
