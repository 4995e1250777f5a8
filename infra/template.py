"""Read `template.yaml` so tests and the local stack build exactly the resources a deployment has."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """A SafeLoader that keeps CloudFormation's short-form tags (`!Ref X` -> {"Ref": "X"})."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def read_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as written, intrinsic functions and all."""
    with path.open(encoding="utf-8") as handle:
        loaded = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - _CfnLoader is a SafeLoader
    assert isinstance(loaded, dict)
    return loaded


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template with its static mappings resolved (what the local stack and the tests read)."""
    loaded = read_template(path)
    resolved: dict[str, Any] = _with_static_mappings(loaded, loaded.get("Mappings", {}))
    return resolved


def _with_static_mappings(value: Any, mappings: dict[str, Any]) -> Any:
    """The template with every Fn::FindInMap of literal keys replaced by its value, as CloudFormation would:
    the numbers the template derives in its Mappings (the conversation function's timing) read as numbers."""
    if isinstance(value, list):
        return [_with_static_mappings(item, mappings) for item in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Fn::FindInMap"}:
        keys = value["Fn::FindInMap"]
        if isinstance(keys, list) and len(keys) == 3 and all(isinstance(k, str) for k in keys):
            return mappings[keys[0]][keys[1]][keys[2]]
    return {key: _with_static_mappings(item, mappings) for key, item in value.items()}


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: resource for name, resource in template["Resources"].items() if resource.get("Type") == resource_type}


def table_create_kwargs(template: dict[str, Any], table_name: str, logical_id: str = "CoachTable") -> dict[str, Any]:
    """`dynamodb.create_table` arguments for the table the template declares."""
    props = template["Resources"][logical_id]["Properties"]
    kwargs: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return kwargs


def create_table(dynamodb: Any, template: dict[str, Any], table_name: str) -> None:
    """Create the template's table with `dynamodb` (a boto3 client) and turn on its TTL attribute."""
    dynamodb.create_table(**table_create_kwargs(template, table_name))
    ttl = template["Resources"]["CoachTable"]["Properties"].get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=table_name, TimeToLiveSpecification=ttl)


def queue_attributes(template: dict[str, Any], logical_id: str) -> dict[str, str]:
    """SQS `CreateQueue` attributes for a queue the template declares (RedrivePolicy left to the caller)."""
    props = template["Resources"][logical_id]["Properties"]
    names = {
        "FifoQueue": "FifoQueue",
        "ContentBasedDeduplication": "ContentBasedDeduplication",
        "DeduplicationScope": "DeduplicationScope",
        "FifoThroughputLimit": "FifoThroughputLimit",
        "VisibilityTimeout": "VisibilityTimeout",
        "MessageRetentionPeriod": "MessageRetentionPeriod",
    }
    return {
        attr: str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        for key, attr in names.items()
        if key in props
    }
