"""API Gateway REST proxy events for the real handlers, built from tests/events/*.json."""

from __future__ import annotations

import copy
import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

EVENTS = Path(__file__).resolve().parent.parent / "events"


@cache
def _load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An event as API Gateway sends it for `method path` (resource and path parameters filled in)."""
    event = copy.deepcopy(_load("api_create_participant.json"))
    resource, params = _resource_of(path)
    event.update(
        httpMethod=method,
        path=path,
        resource=resource,
        pathParameters=params or None,
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
        body=raw_body if raw_body is not None else (None if body is None else json.dumps(body)),
    )
    event["requestContext"].update(
        httpMethod=method,
        resourcePath=resource,
        path=f"/dev{path}" + (f"?{urlencode(query, errors='surrogatepass')}" if query else ""),
        requestId=str(uuid.uuid4()),
    )
    for name, value in (headers or {}).items():
        event["headers"][name] = value
        event["multiValueHeaders"][name] = [value]
    return event


def _resource_of(path: str) -> tuple[str, dict[str, str]]:
    parts = path.strip("/").split("/")
    if len(parts) >= 3 and parts[:2] == ["conversation", "participants"] and parts[2] != "bulk":
        params = {"id": parts[2]}
        return "/" + "/".join([*parts[:2], "{id}", *parts[3:]]), params
    if len(parts) == 3 and parts[:2] == ["conversation", "exports"]:
        return "/conversation/exports/{id}", {"id": parts[2]}
    return path, {}


class LambdaContext:
    function_name = "EnrollmentFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:EnrollmentFunction"
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/EnrollmentFunction"
    log_stream_name = "local"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000  # a fresh invocation of the conversation function (its Timeout)


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None
