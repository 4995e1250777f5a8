"""moto's server as the local AWS, and the template's stateful resources created in it.

Resources moto holds (table, queues, schedule groups, schedules) are created for real, so the handlers'
boto3 calls find them (and the scheduler emulator fires the template's schedules); the rest (functions,
roles, the API) only get plausible names and ARNs, enough for the environment variables and schedule
targets that mention them.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Mapping
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from infra.local.intrinsics import Intrinsics, PhysicalResource, TemplateError
from infra.template import create_table, queue_attributes, resources_of_type

FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoEndpoint:
    """moto's server on a free loopback port, in a daemon thread of this process."""

    def __init__(self, host: str) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
        self._running = False
        self.url = ""

    def start(self) -> str:
        # werkzeug logs every request moto serves; the gateway's access log already tells the story.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self._running = True
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        # moto keeps its state in module globals that every server (and mock_aws) in this process
        # shares: start from an empty account, as a fresh `python -m infra.local` does.
        reset = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=10):
            pass
        return self.url

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._server.stop()


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
