"""S3 on the local stack (issue 10): the template's buckets in moto with their settings, their names and
attributes for intrinsics, and presigned URLs a handler makes that plain urllib downloads, until they expire.

Given a small template with an export bucket and a function that exports through boto3 as a handler does
(its client built from the environment alone), when it uploads and presigns, then the URL points at moto's
server on 127.0.0.1, path-style, and serves the object until its time is up, after which S3's 403 comes.
One stack at a time per process (moto's state is process-wide): each class below has its own.
"""

from __future__ import annotations

import copy
import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.config import Config

from infra.local import LocalConfig, LocalStack
from infra.local.intrinsics import Intrinsics, TemplateError
from infra.local.resources import bucket_name, presigned_url_refusal, provision
from infra.template import load_template
from tests.support.aws import local_client as aws

STACK = "sms-habit-coach-local"
EXPORT_BUCKET = f"{STACK}-export"
NAMED_BUCKET = f"{STACK}-named-123456789012"
RETENTION_DAYS = "7"

SMALL_TEMPLATE: dict[str, Any] = {
    "Parameters": {"ExportRetentionDays": {"Type": "Number", "Default": 30}},
    "Resources": {
        "ExportBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "LifecycleConfiguration": {
                    "Rules": [
                        {
                            "Id": "expire-exports",
                            "Status": "Enabled",
                            "ExpirationInDays": {"Ref": "ExportRetentionDays"},
                        }
                    ]
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            },
        },
        "NamedBucket": {
            "Type": "AWS::S3::Bucket",
            "Properties": {"BucketName": {"Fn::Sub": "${AWS::StackName}-named-${AWS::AccountId}"}},
        },
        "ExportFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "functions/export/",
                "Handler": "app.lambda_handler",
                "Environment": {
                    "Variables": {
                        "EXPORT_BUCKET": {"Ref": "ExportBucket"},
                        "EXPORT_BUCKET_ARN": {"Fn::GetAtt": ["ExportBucket", "Arn"]},
                        "EXPORT_BUCKET_DOMAIN": {"Fn::GetAtt": "ExportBucket.DomainName"},
                        "NAMED_BUCKET": {"Ref": "NamedBucket"},
                    }
                },
                "Events": {"Export": {"Type": "Api", "Properties": {"Path": "/exports", "Method": "post"}}},
            },
        },
    },
}


class WallClock:
    """The time moto's S3 checks presigned URLs against: now, or as far ahead as a test moves it."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead


@contextmanager
def handlers_environment() -> Iterator[MutableMapping[str, str]]:
    """os.environ for a stack whose stand-ins build boto3 clients as the handlers do (from the environment),
    put back as it was afterwards (the stack rewrites it)."""
    saved = dict(os.environ)
    try:
        yield os.environ
    finally:
        os.environ.clear()
        os.environ.update(saved)


def export(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A stand-in export: upload, then presign a GET, with a client configured by the environment only."""
    asked = json.loads(event["body"])
    config = Config(signature_version="s3v4") if asked.get("signature") == "s3v4" else None
    s3 = boto3.session.Session().client("s3", config=config)
    bucket = os.environ["EXPORT_BUCKET"]
    s3.put_object(Bucket=bucket, Key=asked["key"], Body=asked["text"].encode(), ContentType="text/csv")
    url = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": asked["key"]}, ExpiresIn=asked.get("expires_in", 3600)
    )
    return {"statusCode": 201, "body": json.dumps({"url": url})}


@contextmanager
def running_stack(
    template: dict[str, Any], wall_clock: WallClock | None = None, handlers: dict[str, Any] | None = None, **shell: str
) -> Iterator[LocalStack]:
    with handlers_environment() as environ:
        stack = LocalStack(
            LocalConfig.from_environ({"PORT": "0", **shell}),
            template,
            extensions=[],
            handlers=handlers or {},
            environ=environ,
            log=io.StringIO(),
            wall_clock=wall_clock,
        )
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


def presigned_url(stack: LocalStack, key: str, text: str, **asked: Any) -> str:
    body = json.dumps({"key": key, "text": text, **asked}).encode()
    req = urllib.request.Request(f"{stack.base_url}/exports", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 201
        url: str = json.loads(resp.read())["url"]
        return url


def download(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read()


SIGNATURES = [pytest.param({}, id="sigv2-default"), pytest.param({"signature": "s3v4"}, id="sigv4")]


# Class-scoped: the stack stops when the class's tests are done, before the tests below start their own.
@pytest.fixture(scope="class")
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture(scope="class")
def stack(wall_clock: WallClock) -> Iterator[LocalStack]:
    handlers = {"ExportFunction": export}
    with running_stack(SMALL_TEMPLATE, wall_clock, handlers, EXPORT_RETENTION_DAYS=RETENTION_DAYS) as stack:
        yield stack


class TestASmallTemplatesExportBucket:
    @pytest.fixture(autouse=True)
    def clock_at_now(self, wall_clock: WallClock) -> None:
        wall_clock.ahead = 0.0

    def test_buckets_are_named_from_the_stack_or_by_bucketname(self, stack: LocalStack) -> None:
        names = {bucket["Name"] for bucket in aws(stack, "s3").list_buckets()["Buckets"]}

        assert names == {EXPORT_BUCKET, NAMED_BUCKET}
        assert stack.physical["ExportBucket"].ref == EXPORT_BUCKET
        assert f"{EXPORT_BUCKET}, " in stack.banner()

    def test_ref_and_getatt_give_the_name_arn_and_domain(self, stack: LocalStack) -> None:
        env = stack.environment

        assert env["EXPORT_BUCKET"] == EXPORT_BUCKET
        assert env["EXPORT_BUCKET_ARN"] == f"arn:aws:s3:::{EXPORT_BUCKET}"
        assert env["EXPORT_BUCKET_DOMAIN"] == f"{EXPORT_BUCKET}.s3.amazonaws.com"
        assert env["NAMED_BUCKET"] == NAMED_BUCKET
        attributes = stack.physical["ExportBucket"].attributes
        assert attributes["RegionalDomainName"] == f"{EXPORT_BUCKET}.s3.us-east-1.amazonaws.com"

    def test_the_bucket_has_the_templates_encryption_access_block_lifecycle_and_ownership(
        self, stack: LocalStack
    ) -> None:
        s3 = aws(stack, "s3")

        [rule] = s3.get_bucket_encryption(Bucket=EXPORT_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rule == {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}, "BucketKeyEnabled": True}
        block = s3.get_public_access_block(Bucket=EXPORT_BUCKET)["PublicAccessBlockConfiguration"]
        assert block == dict.fromkeys(
            ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
        )
        [lifecycle] = s3.get_bucket_lifecycle_configuration(Bucket=EXPORT_BUCKET)["Rules"]
        # The days come from the parameter, which the shell set (EXPORT_RETENTION_DAYS).
        assert lifecycle == {
            "ID": "expire-exports",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"Days": int(RETENTION_DAYS)},
        }
        ownership = s3.get_bucket_ownership_controls(Bucket=EXPORT_BUCKET)["OwnershipControls"]
        assert ownership == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}

    @pytest.mark.parametrize("signature", SIGNATURES)
    def test_a_handlers_presigned_url_downloads_with_plain_urllib(
        self, stack: LocalStack, signature: dict[str, str]
    ) -> None:
        url = presigned_url(stack, "exports/study.csv", "id,phone\n1,***0100\n", **signature)

        # Path-style on moto's own address: botocore picks it for an IP endpoint, nothing else configures it.
        assert url.startswith(f"{stack.endpoint_url}/{EXPORT_BUCKET}/exports/study.csv?")
        assert download(url) == (200, b"id,phone\n1,***0100\n")
        head = aws(stack, "s3").head_object(Bucket=EXPORT_BUCKET, Key="exports/study.csv")
        assert head["ServerSideEncryption"] == "AES256"  # the bucket's default encryption applied

    @pytest.mark.parametrize("signature", SIGNATURES)
    def test_an_expired_presigned_url_is_refused_as_s3_refuses_it(
        self, stack: LocalStack, wall_clock: WallClock, signature: dict[str, str]
    ) -> None:
        url = presigned_url(stack, "exports/soon.csv", "x", expires_in=60, **signature)
        assert download(url)[0] == 200

        wall_clock.ahead = 61
        status, body = download(url)

        assert status == 403
        assert b"<Code>AccessDenied</Code><Message>Request has expired</Message>" in body
        wall_clock.ahead = 55
        assert download(url) == (200, b"x")  # still within its minute

    def test_a_sigv4_url_valid_for_more_than_a_week_is_refused(self, stack: LocalStack) -> None:
        url = presigned_url(stack, "exports/long.csv", "x", expires_in=7 * 24 * 3600 + 1, signature="s3v4")

        status, body = download(url)

        assert status == 400
        assert b"<Code>AuthorizationQueryParametersError</Code>" in body

    def test_bucket_properties_the_local_stack_cannot_apply_fail_loudly(self, stack: LocalStack) -> None:
        # Against this stack's moto: a second LocalStack would reset it.
        for properties, message in (
            ({"NotificationConfiguration": {}}, "cannot create a bucket with NotificationConfiguration"),
            ({"LifecycleConfiguration": {"Rules": [{"Status": "Enabled", "Transitions": []}]}}, "Transitions"),
            ({"BucketName": "Not_A_Bucket"}, "is 3-63 of a-z 0-9"),
        ):
            template: dict[str, Any] = {"Resources": {"Odd": {"Type": "AWS::S3::Bucket", "Properties": properties}}}
            with pytest.raises(TemplateError, match=message):
                provision(intrinsics(template, "odd-stack"), endpoint_url=stack.endpoint_url, stack_name="odd-stack")

    def test_a_bucket_outside_us_east_1_has_its_region(self, stack: LocalStack) -> None:
        template = {"Resources": {"ExportBucket": {"Type": "AWS::S3::Bucket"}}}

        created = provision(
            intrinsics(template, "eu-stack", region="eu-west-1"), endpoint_url=stack.endpoint_url, stack_name="eu-stack"
        )

        assert created["ExportBucket"].ref == "eu-stack-export"
        location = aws(stack, "s3").get_bucket_location(Bucket="eu-stack-export")
        assert location["LocationConstraint"] == "eu-west-1"
        assert created["ExportBucket"].attributes["RegionalDomainName"] == "eu-stack-export.s3.eu-west-1.amazonaws.com"


def intrinsics(template: dict[str, Any], stack_name: str, region: str = "us-east-1") -> Intrinsics:
    return Intrinsics.for_stack(template, {}, {}, stack_name=stack_name, region=region, account_id="123456789012")


def test_default_bucket_names_are_lower_case_kebab_and_at_most_63_characters() -> None:
    assert bucket_name("sms-habit-coach-local", "ExportBucket") == "sms-habit-coach-local-export"
    assert bucket_name("MyStack", "RawDataBucket") == "mystack-raw-data"
    long_name = bucket_name("a-very-long-stack-name-" + "x" * 40, "ResearchExportsBucket")
    assert len(long_name) <= 63
    assert long_name == long_name.lower()
    assert not long_name.endswith("-")
    assert bucket_name("s", "B", given="explicit.name-1") == "explicit.name-1"
    for bad in ("ab", "UPPER", "-dash", "dots..twice", "192.168.0.1", "x" * 64):
        with pytest.raises(TemplateError):
            bucket_name("s", "B", given=bad)


def test_only_presigned_urls_past_their_time_are_refused() -> None:
    now = float(int(time.time()))  # X-Amz-Date has whole seconds
    signed_at = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))

    def sigv4(date: str = signed_at, expires: str = "60") -> str:
        credential = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=t%2F20261202%2Fus-east-1%2Fs3%2Faws4_request"
        return f"{credential}&X-Amz-SignedHeaders=host&X-Amz-Signature=abc&X-Amz-Date={date}&X-Amz-Expires={expires}"

    def refusal(query: str, at: float) -> tuple[str, bytes] | None:
        answer = presigned_url_refusal(query, at)
        return None if answer is None else (answer.status.split()[0], answer.body)

    assert refusal("list-type=2&prefix=Expires", now) is None  # not presigned
    assert refusal(sigv4(), now + 60) is None
    expired = refusal(sigv4(), now + 61)
    assert expired is not None
    assert expired[0] == "403"
    assert b"<Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires>" in expired[1]
    for malformed in (sigv4(date="yesterday"), sigv4(expires="-1"), sigv4(expires="soon"), "X-Amz-Expires=60"):
        refused = refusal(malformed, now)
        assert refused is not None
        assert refused[0] == "400", malformed
        assert b"<Code>AuthorizationQueryParametersError</Code>" in refused[1]
    sigv2 = f"AWSAccessKeyId=testing&Signature=abc&Expires={int(now) + 60}"
    assert refusal(sigv2, now + 60) is None
    expired_v2 = refusal(sigv2, now + 61)
    assert expired_v2 is not None
    assert expired_v2[0] == "403"
    assert b"<Message>Request has expired</Message>" in expired_v2[1]
    bad_v2 = refusal("AWSAccessKeyId=testing&Signature=abc&Expires=later", now)
    assert bad_v2 is not None
    assert b"Invalid date (should be seconds since epoch): later" in bad_v2[1]


def test_the_real_template_starts_with_an_export_bucket_added() -> None:
    template = copy.deepcopy(load_template())
    template["Resources"]["ExportBucket"] = copy.deepcopy(SMALL_TEMPLATE["Resources"]["ExportBucket"])
    template["Resources"]["ExportBucket"]["Properties"]["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] = 30
    variables = template["Resources"]["EnrollmentFunction"]["Properties"]["Environment"]["Variables"]
    variables["EXPORT_BUCKET"] = {"Ref": "ExportBucket"}

    with running_stack(template) as stack:
        assert stack.environment["EXPORT_BUCKET"] == EXPORT_BUCKET
        s3 = aws(stack, "s3")
        assert EXPORT_BUCKET in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        [rule] = s3.get_bucket_lifecycle_configuration(Bucket=EXPORT_BUCKET)["Rules"]
        assert rule["Expiration"] == {"Days": 30}
        table = aws(stack, "dynamodb").describe_table(TableName=STACK)["Table"]
        assert table["TableStatus"] == "ACTIVE"  # the rest of the stack is there as always


def test_the_real_template_as_it_is_starts_with_the_buckets_it_declares() -> None:
    template = load_template()
    declared = [logical_id for logical_id, r in template["Resources"].items() if r.get("Type") == "AWS::S3::Bucket"]

    with running_stack(template) as stack:
        names = sorted(b["Name"] for b in aws(stack, "s3").list_buckets()["Buckets"])
        assert names == sorted(stack.physical[logical_id].ref for logical_id in declared)  # none, until issue 10's
