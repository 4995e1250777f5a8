"""How domain models are laid out as items of the one table (docs/architecture.md, 3.1 "The table"), and back."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from pydantic import BaseModel

from coach.domain.errors import InvalidPageToken

PROFILE_SK = "PROFILE"
FLOW_SK = "FLOW#conversation"
PHONE_SK = "PHONE"
# Profiles are indexed by status (GSI1PK = PARTICIPANTS#<status>), so listing one status reads one partition
# and no partition holds every participant. An earlier version keyed them all by the bare prefix.
PARTICIPANTS_GSI1PK = "PARTICIPANTS"
MESSAGE_PREFIX = "MSG#"
MESSAGE_ID_PREFIX = "MSGID#"
EVENT_PREFIX = "EVT#"
DECISION_PREFIX = "DECISION#"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def participant_pk(participant_id: str) -> str:
    return f"PARTICIPANT#{participant_id}"


def phone_pk(phone_number: str) -> str:
    return f"PHONE#{phone_number}"


def participants_gsi1pk(status: str) -> str:
    """The index partition of the participants with `status`."""
    return f"{PARTICIPANTS_GSI1PK}#{status}"


def sortable_time(at: datetime) -> str:
    """Fixed-width UTC time, so sort keys order by time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_attributes(model: BaseModel, **keys: str | int) -> dict[str, Any]:
    """A model as a DynamoDB item in the low-level format, with the given key attributes added.

    JSON first: datetimes become ISO strings and floats become Decimals, which DynamoDB needs.
    """
    plain = json.loads(model.model_dump_json(exclude_none=True), parse_float=Decimal)
    plain.update(keys)
    return {name: _serializer.serialize(value) for name, value in plain.items()}


def set_attributes(changes: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`SET #a0 = :a0, ...` for `changes` (plain values), with its names and low-level values."""
    plain = json.loads(json.dumps(changes, default=_json_default), parse_float=Decimal)
    names = {f"#a{n}": name for n, name in enumerate(plain)}
    values = {f":a{n}": _serializer.serialize(value) for n, value in enumerate(plain.values())}
    return "SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(plain))), names, values


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    raise TypeError(f"cannot store {type(value).__name__}")


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def from_attributes(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level item as plain Python (Decimals back to int or float), ready for model_validate."""
    return {name: _plain(_deserializer.deserialize(value)) for name, value in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def encode_page_token(last_key: dict[str, Any]) -> str:
    plain = {name: value["S"] for name, value in last_key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, sort_keys=True).encode()).decode().rstrip("=")


def decode_page_token(token: str, expected: dict[str, str | None]) -> dict[str, Any]:
    """The DynamoDB start key inside `token`, checked against `expected` (name -> required value or None).

    A token must have exactly the expected key names, string values, and the required values: a token
    from another list (or another participant) is refused rather than handed to DynamoDB.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        plain = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidPageToken("next_token is not a token this API issued") from exc
    if not isinstance(plain, dict) or set(plain) != set(expected):
        raise InvalidPageToken("next_token is not a token this API issued")
    for name, value in plain.items():
        if not isinstance(value, str) or not value or len(value) > 1024:
            raise InvalidPageToken("next_token is not a token this API issued")
        if expected[name] is not None and value != expected[name]:
            raise InvalidPageToken("next_token belongs to another list")
    return {name: {"S": value} for name, value in plain.items()}
