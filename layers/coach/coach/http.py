"""What every JSON API of ours shares: one error shape, domain errors mapped to statuses, body limits.

Errors are `{"error": "...", "details": [{"field": ..., "message": ...}]}` with a 4xx that fits.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseContentModel
from pydantic import BaseModel, Field

from coach.domain.errors import (
    Conflict,
    ExportUnavailable,
    InvalidField,
    InvalidPageToken,
    NotFound,
    PhoneNumberTaken,
    ScheduleUnavailable,
)
from coach.observability import logger


class ErrorDetail(BaseModel):
    field: str = Field(description="The body field, query or path parameter to fix; `body` for the whole body")
    message: str


class ErrorBody(BaseModel):
    """Every error this API answers, whatever its status."""

    error: str
    details: list[ErrorDetail]


_ERROR_MEANINGS = {
    HTTPStatus.BAD_REQUEST: "The body is not JSON or not UTF-8, or next_token was not issued by this API",
    HTTPStatus.NOT_FOUND: "No such participant (or export)",
    HTTPStatus.CONFLICT: "The phone number is enrolled already, or a concurrent change won",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The body is too large",
    HTTPStatus.UNPROCESSABLE_ENTITY: "A field is invalid; details name each one",
    HTTPStatus.SERVICE_UNAVAILABLE: (
        "Stored, but a step after it failed (the participant's schedules, or queuing an export): repeat it"
    ),
}


def error_responses(*statuses: HTTPStatus) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` entries for the errors a route can answer, all in the ErrorBody shape."""
    return {
        status.value: OpenAPIResponse(
            description=_ERROR_MEANINGS[status],
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=ErrorBody)},
        )
        for status in statuses
    }


def error_response(status: HTTPStatus, error: str, details: Sequence[dict[str, Any]] = ()) -> Response[Any]:
    return Response(
        status_code=status.value,
        content_type=content_types.APPLICATION_JSON,
        body={"error": error, "details": list(details)},
    )


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _validation_response(exc: RequestValidationError) -> Response[Any]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(
            HTTPStatus.BAD_REQUEST,
            "The body is not valid JSON",
            [{"field": "body", "message": "send a JSON object"}],
        )
    details = []
    for e in errors:
        field = _field_of(e.get("loc", ()))
        message = str(e.get("msg", "invalid")).removeprefix("Value error, ")  # pydantic's prefix for our own
        if field == "body" and e.get("type") == "missing":
            message = "a JSON object is required"
        details.append({"field": field, "message": message})
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "The request is not valid", details)


def register_error_handlers(app: APIGatewayRestResolver) -> None:
    """Map every domain error to its status. Never by message text: by type."""

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[Any]:
        return _validation_response(exc)

    @app.exception_handler(InvalidField)
    def _invalid_field(exc: InvalidField) -> Response[Any]:
        return error_response(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            "The request is not valid",
            [{"field": exc.field, "message": exc.message}],
        )

    @app.exception_handler(InvalidPageToken)
    def _bad_token(exc: InvalidPageToken) -> Response[Any]:
        return error_response(HTTPStatus.BAD_REQUEST, str(exc), [{"field": "next_token", "message": str(exc)}])

    @app.exception_handler(NotFound)
    def _not_found(exc: NotFound) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, str(exc))

    @app.exception_handler(NotFoundError)
    def _no_route(exc: NotFoundError) -> Response[Any]:
        return error_response(HTTPStatus.NOT_FOUND, "No such route")

    @app.exception_handler(PhoneNumberTaken)
    def _phone_taken(exc: PhoneNumberTaken) -> Response[Any]:
        return error_response(
            HTTPStatus.CONFLICT,
            "This phone number is already enrolled",
            [
                {
                    "field": "phone_number",
                    "message": "already enrolled; update or delete that participant first",
                }
            ],
        )

    @app.exception_handler(Conflict)
    def _conflict(exc: Conflict) -> Response[Any]:
        return error_response(HTTPStatus.CONFLICT, f"{exc}; try again")

    @app.exception_handler(ScheduleUnavailable)
    def _schedules_unavailable(exc: ScheduleUnavailable) -> Response[Any]:
        logger.error("schedules not reconciled", extra={"error": str(exc)})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            "The change is stored, but the participant's schedules could not be updated now",
            [{"field": "body", "message": "repeat the same request in a minute; it is safe to repeat"}],
        )

    @app.exception_handler(ExportUnavailable)
    def _export_unavailable(exc: ExportUnavailable) -> Response[Any]:
        logger.error("export not queued", extra={"error": str(exc)})
        return error_response(
            HTTPStatus.SERVICE_UNAVAILABLE,
            str(exc),
            [{"field": "body", "message": "the export is recorded as failed; ask for it again in a minute"}],
        )


def _header_names(headers: dict[str, Any] | None, name: str) -> list[str]:
    return [h for h in (headers or {}) if h.lower() == name]


def _refusal(status: HTTPStatus, error: str, message: str) -> dict[str, Any]:
    """An error in API Gateway's proxy-response shape, for refusals made before routing."""
    return {
        "statusCode": status.value,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps({"error": error, "details": [{"field": "body", "message": message}]}),
        "isBase64Encoded": False,
    }


def _body_text(event: dict[str, Any]) -> str:
    """The body as text; raises ValueError when it is not UTF-8 (or not base64 when flagged so)."""
    body: str = event["body"]
    if event.get("isBase64Encoded"):
        return base64.b64decode(body, validate=True).decode("utf-8")
    body.encode("utf-8")  # a lone surrogate cannot be stored anywhere: refuse it here
    return body


def guard_json_request(event: dict[str, Any], max_body_bytes: int) -> dict[str, Any] | None:
    """Check an API Gateway event before routing; return an error response for API Gateway, or None.

    Bodies are read as JSON whatever Content-Type says (curl -d sends form encoding). A body larger
    than `max_body_bytes`, not UTF-8, or nested too deeply for the JSON parser is refused here, so
    no input can make a route fail with 500.
    """
    if not event.get("body"):
        return None
    if len(event["body"]) > max_body_bytes * 4 // 3 + 4:
        return _refusal(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"The body is larger than {max_body_bytes} bytes",
            "send a smaller JSON object",
        )
    try:
        text = _body_text(event)
    except (ValueError, UnicodeError, binascii.Error):
        return _refusal(HTTPStatus.BAD_REQUEST, "The body is not UTF-8 text", "send a JSON object")
    if len(text.encode("utf-8")) > max_body_bytes:
        return _refusal(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"The body is larger than {max_body_bytes} bytes",
            "send a smaller JSON object",
        )
    try:
        # Escaped lone surrogates ("\\ud800") parse but could never be stored: refuse them too.
        json.dumps(json.loads(text), ensure_ascii=False).encode("utf-8")
    except RecursionError:
        return _refusal(HTTPStatus.BAD_REQUEST, "The body is nested too deeply", "send a flat JSON object")
    except UnicodeError:
        return _refusal(HTTPStatus.BAD_REQUEST, "The body is not UTF-8 text", "send a JSON object")
    except ValueError:
        pass  # the resolver's validation reports invalid JSON in the usual shape
    for section in ("headers", "multiValueHeaders"):
        headers = event.get(section)
        if headers is None:
            headers = event[section] = {}
        for name in _header_names(headers, "content-type"):
            del headers[name]
        value = content_types.APPLICATION_JSON
        headers["Content-Type"] = [value] if section == "multiValueHeaders" else value
    return None


def log_request_failure(exc: Exception) -> None:
    logger.exception("request failed", extra={"error_type": type(exc).__name__})


def csv_body_as_json(event: dict[str, Any]) -> dict[str, Any]:
    """A text/csv request as the JSON `{"csv": <text>}` the route reads (bulk enrollment takes either); any
    other request as it is. A body that is not UTF-8 is left for guard_json_request to refuse."""
    headers = event.get("headers") or {}
    kind = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
    if not kind.lower().startswith("text/csv") or not event.get("body"):
        return event
    try:
        text = _body_text(event)
    except (ValueError, UnicodeError, binascii.Error):
        return event
    return {**event, "body": json.dumps({"csv": text}), "isBase64Encoded": False}
