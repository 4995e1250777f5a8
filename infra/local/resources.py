"""moto's server as the local AWS, and the template's stateful resources created in it.

Resources moto holds (S3 buckets, table, queues, schedule groups, schedules) are created for real, so the
handlers' boto3 calls find them (and the scheduler emulator fires the template's schedules); the rest
(functions, roles, the API) only get plausible names and ARNs, enough for the environment variables and
schedule targets that mention them. The researchers' API keys are created in moto's API Gateway too, so a
handler resolves an event's apiKeyId to the researcher's name as on AWS (create_api_keys).

The handlers reach all of it through AWS_ENDPOINT_URL (environment.py), S3 included: against an IP address
endpoint botocore addresses buckets by path (http://127.0.0.1:<port>/<bucket>/<key>), so a presigned URL a
handler makes is one any HTTP client on this machine can fetch from moto's server. moto serves such a URL
forever; the endpoint refuses it past its expiry, as S3 does (PresignedUrlExpiry).
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment
from xml.sax.saxutils import escape

import boto3
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from infra.local import moto_speed
from infra.local.config import ResearcherKey
from infra.local.intrinsics import Intrinsics, PhysicalResource, TemplateError
from infra.local.proxy import ApiKey
from infra.template import create_table, queue_attributes, resources_of_type

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoEndpoint:
    """moto's server on a free loopback port, in a daemon thread of this process, serving one request at a time.

    moto is not thread-safe: two requests running at once inside it can fail ("dictionary changed size during
    iteration"), a DynamoDB transaction that fails puts back a copy of the whole table taken before it, wiping
    what other requests wrote meanwhile, and a queue's counts can be read half-way through a change. Real
    DynamoDB and SQS serve any number of clients at once, each request atomic; so every request, from any
    thread and any client of this process (handlers, pumps, the scheduler emulator, tests), runs alone inside
    moto (`SerialisedMoto`). It is the server ThreadedMotoServer builds, with that lock around moto's app,
    and S3's refusal of expired presigned URLs in front (`PresignedUrlExpiry`, against `now`: the wall
    clock, which boto3 signs with; tests move it on instead of waiting).
    """

    def __init__(self, host: str, now: Callable[[], float] = time.time) -> None:
        self._host = host
        self._now = now
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        # werkzeug logs every request moto serves; the gateway's access log already tells the story.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_speed.install()
        app = PresignedUrlExpiry(SerialisedMoto(DomainDispatcherApplication(create_backend_app)), self._now)
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


class PresignedUrlExpiry:
    """A WSGI wrapper that answers, as S3 does, a presigned URL past its time (moto would serve it forever)."""

    def __init__(self, app: WSGIApplication, now: Callable[[], float]) -> None:
        self._app = app
        self._now = now

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        query = str(environ.get("QUERY_STRING", ""))
        refusal = presigned_url_refusal(query, self._now()) if "Expires" in query else None
        if refusal is None:
            return self._app(environ, start_response)
        _request_body(environ)  # a refused PUT's body is read all the same, so the connection stays usable
        start_response(refusal.status, refusal.headers)
        return [refusal.body]


# S3's longest presigned validity for SigV4 (SigV2's Expires is a moment and has no limit).
PRESIGNED_MAX_SECONDS = 7 * 24 * 3600
_SIGV4_QUERY = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders")


def presigned_url_refusal(query: str, now: float) -> _Answer | None:
    """S3's answer to a presigned URL whose time is up or malformed at `now`, else None (moto serves it).

    SigV4 URLs (X-Amz-Date + X-Amz-Expires, what boto3 makes with signature_version="s3v4") and SigV2 ones
    (Expires in epoch seconds, boto3's default for generate_presigned_url against a custom endpoint).
    Signatures are not checked: moto takes any credentials, and the local ones are public anyway."""
    params = dict(parse_qsl(query, keep_blank_values=True))
    credential = params.get("X-Amz-Credential")
    if ("/s3/aws4_request" in credential) if credential is not None else ("X-Amz-Expires" in params):
        return _sigv4_refusal(params, now)
    if {"AWSAccessKeyId", "Signature", "Expires"} <= params.keys() and "SignatureVersion" not in params:
        return _sigv2_refusal(params, now)
    return None


def _sigv4_refusal(params: Mapping[str, str], now: float) -> _Answer | None:
    if any(name not in params for name in (*_SIGV4_QUERY, "X-Amz-Expires")):
        return _s3_error(
            "400 Bad Request",
            "AuthorizationQueryParametersError",
            "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
            "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
        )
    try:
        signed = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return _s3_error(
            "400 Bad Request",
            "AuthorizationQueryParametersError",
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
        )
    raw = params["X-Amz-Expires"]
    if raw.startswith("-") and raw[1:].isdigit():
        return _s3_error("400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
    if not raw.isdigit():
        return _s3_error("400 Bad Request", "AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
    if int(raw) > PRESIGNED_MAX_SECONDS:
        message = f"X-Amz-Expires must be less than a week (in seconds) that is {PRESIGNED_MAX_SECONDS}"
        return _s3_error("400 Bad Request", "AuthorizationQueryParametersError", message)
    expires = signed + int(raw)
    if now <= expires:
        return None
    return _s3_error(
        "403 Forbidden",
        "AccessDenied",
        "Request has expired",
        {"X-Amz-Expires": raw, "Expires": _iso(expires), "ServerTime": _iso(now)},
    )


def _sigv2_refusal(params: Mapping[str, str], now: float) -> _Answer | None:
    raw = params["Expires"]
    if not raw.isdigit():
        return _s3_error("403 Forbidden", "AccessDenied", f"Invalid date (should be seconds since epoch): {raw}")
    if now <= int(raw):
        return None
    fields = {"Expires": _iso(int(raw)), "ServerTime": _iso(now)}
    return _s3_error("403 Forbidden", "AccessDenied", "Request has expired", fields)


def _s3_error(status: str, code: str, message: str, fields: Mapping[str, str] | None = None) -> _Answer:
    """An error in S3's XML shape."""
    request_id = uuid.uuid4().hex[:16].upper()
    extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in (fields or {}).items())
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>local</HostId></Error>"
    ).encode()
    headers = [
        ("Content-Type", "application/xml"),
        ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id),
    ]
    return _Answer(status, headers, body)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def provision(
    intrinsics: Intrinsics,
    *,
    endpoint_url: str,
    stack_name: str,
    plausible: Mapping[str, PhysicalResource] | None = None,
) -> dict[str, PhysicalResource]:
    """Create the S3 buckets, table, queues, SNS topics, schedule groups and schedules in moto; their physical ids by
    logical id (a bucket's is its name, with the attributes of bucket_attributes).

    `plausible`: the made-up ids of what moto does not hold (plausible_resources), which schedules name:
    their Target.Arn is a function's ARN, the same the local functions have."""
    template, region = intrinsics.template, intrinsics.pseudo["AWS::Region"]

    def client(service: str) -> Any:
        return _client(service, endpoint_url, region)

    created: dict[str, PhysicalResource] = {}
    present = exists(intrinsics)

    # Names may refer to what was already created (a redrive policy to its DLQ), so each step
    # evaluates with everything created before it.
    def scope() -> Intrinsics:
        known = {**(plausible or {}), **created}
        return Intrinsics(intrinsics.template, intrinsics.parameters, known, intrinsics.pseudo)

    s3 = client("s3")
    for logical_id in sorted(present & resources_of_type(dict(template), "AWS::S3::Bucket").keys()):
        props = scope().evaluate(template["Resources"][logical_id].get("Properties", {}))
        name = bucket_name(stack_name, logical_id, props.get("BucketName"))
        create_bucket(s3, logical_id, name, props, region)
        created[logical_id] = PhysicalResource(name, bucket_attributes(name, region))

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

    sns = client("sns")
    for logical_id in sorted(present & resources_of_type(dict(template), "AWS::SNS::Topic").keys()):
        name = _name(scope(), logical_id, "TopicName", _kebab(stack_name, logical_id))
        arn = sns.create_topic(Name=name)["TopicArn"]  # its Ref is the ARN; the e-mail subscriptions stay on AWS
        created[logical_id] = PhysicalResource(arn, {"TopicArn": arn, "TopicName": name})

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


# API Gateway's shortest key value, which moto enforces too.
API_GATEWAY_MIN_KEY_CHARS = 20


def create_api_keys(researchers: Iterable[ResearcherKey], *, endpoint_url: str, region: str) -> tuple[ApiKey, ...]:
    """An enabled API Gateway API key per researcher, named after them as on AWS; with moto's ids.

    The local stack takes keys shorter than API Gateway's 20 characters (the well-known local-dev-key):
    such a key is created without its value, so moto makes one up (only get_api_key(includeValue=True)
    shows it). The gateway lets in the configured value either way, and the event says which key came."""
    apigateway = _client("apigateway", endpoint_url, region)
    keys: list[ApiKey] = []
    for researcher in researchers:
        value = {"value": researcher.value} if len(researcher.value) >= API_GATEWAY_MIN_KEY_CHARS else {}
        created = apigateway.create_api_key(
            name=researcher.name, enabled=True, description=f"local researcher key ({researcher.source})", **value
        )
        keys.append(ApiKey(created["id"], researcher.name, researcher.value))
    return tuple(keys)


_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")


def bucket_name(stack_name: str, logical_id: str, given: Any = None) -> str:
    """The template's BucketName (checked against S3's rules), else `<stack>-export` for ExportBucket:
    CloudFormation's generated name minus its random tail, lower case and at most 63 characters."""
    if given is not None:
        name = str(given)
        if not _BUCKET_NAME.fullmatch(name) or ".." in name or _IP_ADDRESS.fullmatch(name):
            raise TemplateError(
                f"{logical_id}.BucketName {name!r}: a bucket name is 3-63 of a-z 0-9 . -, "
                "starts and ends with a letter or digit, and is not an IP address"
            )
        return name
    kebab = re.sub(r"[^a-z0-9.-]+", "-", _kebab(stack_name, logical_id, "Bucket").lower())
    return re.sub(r"[.-]{2,}", "-", kebab)[:63].strip(".-")


def bucket_attributes(name: str, region: str) -> dict[str, str]:
    """A bucket's Fn::GetAtt attributes. The domain names are AWS's, as the template would get them:
    handlers reach the bucket through boto3 (AWS_ENDPOINT_URL), never by building URLs from these."""
    return {
        "Arn": f"arn:aws:s3:::{name}",
        "DomainName": f"{name}.s3.amazonaws.com",
        "RegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        "DualStackDomainName": f"{name}.s3.dualstack.{region}.amazonaws.com",
        "WebsiteURL": f"http://{name}.s3-website-{region}.amazonaws.com",
    }


def create_bucket(s3: Any, logical_id: str, name: str, properties: Mapping[str, Any], region: str) -> None:
    """Create the bucket with its (evaluated) properties, each through the S3 call that sets it.

    moto keeps every one of them (get_bucket_encryption, _lifecycle_configuration, ... answer what the
    template says) but acts only on some: objects do not expire, encryption is only reported."""
    unknown = sorted(set(properties) - {"BucketName"} - _BUCKET_SETTINGS.keys() - _BUCKET_PROPERTIES_NOT_LOCAL)
    if unknown:
        raise TemplateError(f"{logical_id}: the local stack cannot create a bucket with {', '.join(unknown)}")
    location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    s3.create_bucket(Bucket=name, **location)
    for name_of_property, apply in _BUCKET_SETTINGS.items():
        if name_of_property in properties:
            apply(s3, name, properties[name_of_property], f"{logical_id}.{name_of_property}")


def _encryption(s3: Any, bucket: str, value: Any, where: str) -> None:
    rules = []
    for rule in value["ServerSideEncryptionConfiguration"]:
        converted: dict[str, Any] = {}
        if "ServerSideEncryptionByDefault" in rule:  # the API calls it ApplyServerSideEncryptionByDefault
            converted["ApplyServerSideEncryptionByDefault"] = dict(rule["ServerSideEncryptionByDefault"])
        if "BucketKeyEnabled" in rule:
            converted["BucketKeyEnabled"] = _bool(rule["BucketKeyEnabled"], where)
        rules.append(converted)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": rules})


def _public_access_block(s3: Any, bucket: str, value: Any, where: str) -> None:
    block = {name: _bool(flag, f"{where}.{name}") for name, flag in value.items()}
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)


def _ownership_controls(s3: Any, bucket: str, value: Any, where: str) -> None:
    rules = [{"ObjectOwnership": rule["ObjectOwnership"]} for rule in value["Rules"]]
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": rules})


def _versioning(s3: Any, bucket: str, value: Any, where: str) -> None:
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": value["Status"]})


def _tags(s3: Any, bucket: str, value: Any, where: str) -> None:
    tags = [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in value]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})


def _lifecycle(s3: Any, bucket: str, value: Any, where: str) -> None:
    rules = [_lifecycle_rule(rule, f"{where}.Rules[{index}]") for index, rule in enumerate(value["Rules"])]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


_LIFECYCLE_RULE_PROPERTIES = frozenset(
    {"Id", "Status", "Prefix", "TagFilters", "ExpirationInDays", "ExpirationDate", "AbortIncompleteMultipartUpload"}
    | {"NoncurrentVersionExpirationInDays"}
)


def _lifecycle_rule(rule: Mapping[str, Any], where: str) -> dict[str, Any]:
    """CloudFormation's flat expiration rule as PutBucketLifecycleConfiguration's nested one."""
    unknown = sorted(set(rule) - _LIFECYCLE_RULE_PROPERTIES)
    if unknown:
        raise TemplateError(f"{where}: the local stack cannot apply {', '.join(unknown)}")
    tags = [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in rule.get("TagFilters", [])]
    prefix = str(rule.get("Prefix", ""))
    # One condition stands alone in the Filter; a prefix with tags, or several tags, go under And.
    filter_: dict[str, Any] = {"Prefix": prefix} if not tags else {"Tag": tags[0]}
    if len(tags) > 1 or (tags and prefix):
        filter_ = {"And": {"Tags": tags, **({"Prefix": prefix} if prefix else {})}}
    converted: dict[str, Any] = {"Status": rule["Status"], "Filter": filter_}
    if "Id" in rule:
        converted["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": _int(rule["ExpirationInDays"], f"{where}.ExpirationInDays")}
    if "ExpirationDate" in rule:
        converted["Expiration"] = {"Date": rule["ExpirationDate"]}
    if "AbortIncompleteMultipartUpload" in rule:
        days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
        converted["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": _int(days, where)}
    if "NoncurrentVersionExpirationInDays" in rule:
        days = rule["NoncurrentVersionExpirationInDays"]
        converted["NoncurrentVersionExpiration"] = {"NoncurrentDays": _int(days, where)}
    return converted


# Each property the local stack applies, by the S3 call that sets it.
_BUCKET_SETTINGS: dict[str, Callable[[Any, str, Any, str], None]] = {
    "BucketEncryption": _encryption,
    "PublicAccessBlockConfiguration": _public_access_block,
    "OwnershipControls": _ownership_controls,
    "VersioningConfiguration": _versioning,
    "LifecycleConfiguration": _lifecycle,
    "Tags": _tags,
}
# Properties that change nothing a handler can see locally (they feed AWS's reporting and performance).
_BUCKET_PROPERTIES_NOT_LOCAL = frozenset(
    {
        "AccelerateConfiguration",
        "AnalyticsConfigurations",
        "IntelligentTieringConfigurations",
        "InventoryConfigurations",
        "LoggingConfiguration",
        "MetricsConfigurations",
    }
)


def _bool(value: Any, where: str) -> bool:
    """A template boolean: YAML's true, or "true" from a parameter."""
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise TemplateError(f"{where}: expected true or false, got {value!r}")


def _int(value: Any, where: str) -> int:
    """A template number: YAML's 30, or "30" from a parameter."""
    try:
        return int(str(value))
    except ValueError:
        raise TemplateError(f"{where}: expected a whole number, got {value!r}") from None


def _client(service: str, endpoint_url: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **FAKE_CREDENTIALS)


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
