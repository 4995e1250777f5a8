"""API Gateway's REST (v1) Lambda proxy integration: request -> event -> handler -> response, with
the answers API Gateway itself gives (unknown route, missing or unknown API key, failing handler).

A route that requires a key takes any of the API's keys (one per researcher, created in moto's API Gateway
at start) and tells the handler which one came, in requestContext.identity.apiKeyId and .apiKey."""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hmac
import sys
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from infra.local.functions import LocalFunction
from infra.local.routes import RestApi, RouteMatch
from infra.local.web import HttpRequest, HttpResponse, json_response

# API Gateway's payload limit; bigger requests never reach the function.
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024


def missing_authentication_token() -> HttpResponse:
    """What API Gateway answers for a path or method it has no route for (not a 404)."""
    return json_response(
        403,
        {"message": "Missing Authentication Token"},
        (("x-amzn-ErrorType", "MissingAuthenticationTokenException"),),
    )


def forbidden() -> HttpResponse:
    return json_response(403, {"message": "Forbidden"}, (("x-amzn-ErrorType", "ForbiddenException"),))


def internal_server_error() -> HttpResponse:
    return json_response(
        502, {"message": "Internal server error"}, (("x-amzn-ErrorType", "InternalServerErrorException"),)
    )


@dataclass(frozen=True)
class ApiKey:
    """A key the API accepts, as API Gateway holds it (here: in moto): its id, its name (the researcher's)
    and its value, which a request sends as x-api-key."""

    id: str
    name: str
    value: str = field(repr=False)


@dataclass(frozen=True)
class ApiGatewayContext:
    """Deployment facts that go into every event's requestContext."""

    stage: str
    api_keys: tuple[ApiKey, ...]
    account_id: str
    api_id: str = "local"


class ApiGatewayEmulator:
    def __init__(
        self,
        api: RestApi,
        functions: Mapping[str, LocalFunction],
        context: ApiGatewayContext,
        errors: TextIO | None = None,
    ) -> None:
        self.api = api
        self.functions = functions
        self.context = context
        self._errors = errors

    def handle(self, request: HttpRequest) -> HttpResponse:
        match = self.api.match(request.method, request.path)
        if match is None or match.route.function_id not in self.functions:
            return missing_authentication_token()
        api_key = None
        if match.route.api_key_required:
            api_key = self._matching_key(request.header("x-api-key"))
            if api_key is None:
                return forbidden()
        if len(request.body) > MAX_PAYLOAD_BYTES:
            return json_response(413, {"message": "Request Entity Too Large"})
        request_id = str(uuid.uuid4())
        event = proxy_event(request, match, self.context, self.api.binary_media_types, request_id, api_key=api_key)
        try:
            result = self.functions[match.route.function_id].invoke(event, request_id)
            response = proxy_response(result)
        except Exception:
            # As in AWS: the caller learns nothing, the function's log has the traceback.
            print(f"{match.route.function_id} failed on {request.method} {request.path}:", file=self._stream())
            traceback.print_exc(file=self._stream())
            return internal_server_error()
        return HttpResponse(response.status, (*response.headers, ("x-amzn-RequestId", request_id)), response.body)

    def _matching_key(self, given: str | None) -> ApiKey | None:
        """The key `given` is, compared in constant time with every key (a miss takes as long as a hit)."""
        if given is None:
            return None
        sent = given.encode()
        matches = [key for key in self.context.api_keys if hmac.compare_digest(sent, key.value.encode())]
        return matches[0] if matches else None

    def _stream(self) -> TextIO:
        return self._errors or sys.stderr


def proxy_event(
    request: HttpRequest,
    match: RouteMatch,
    context: ApiGatewayContext,
    binary_media_types: tuple[str, ...],
    request_id: str,
    now: float | None = None,
    *,
    api_key: ApiKey | None = None,
) -> dict[str, Any]:
    """The event API Gateway's REST Lambda proxy integration would send for `request`.

    `api_key`: the key a key-required route was called with; its id and value go into
    requestContext.identity (apiKeyId, apiKey), as API Gateway puts them, so a handler finds the
    researcher with apigateway.get_api_key(apiKey=<apiKeyId>)["name"]. Routes that need no key get nulls."""
    now = time.time() if now is None else now
    headers = _forwarded_headers(request)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in request.query_pairs():
        multi_query.setdefault(name, []).append(value)
    body, is_base64 = encode_body(request.body, request.header("content-type"), binary_media_types)
    route = match.route
    return {
        "resource": route.resource,
        "path": request.path,
        "httpMethod": request.method,
        # Single-value maps keep the last value of a repeated name, as API Gateway's do.
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": match.path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": context.account_id,
            "apiId": context.api_id,
            "resourceId": route.resource,
            "resourcePath": route.resource,
            "httpMethod": request.method,
            "extendedRequestId": request_id,
            "requestId": request_id,
            "requestTime": _clf_time(now),
            "requestTimeEpoch": int(now * 1000),
            "path": f"/{context.stage}{request.path}",  # unlike the top-level path, it has the stage
            "stage": context.stage,
            "protocol": request.protocol,
            "domainName": request.header("host") or "127.0.0.1",
            "domainPrefix": (request.header("host") or "127").split(".")[0],
            "identity": {
                "sourceIp": request.source_ip,
                "userAgent": request.header("user-agent"),
                "apiKey": api_key.value if api_key is not None else None,
                "apiKeyId": api_key.id if api_key is not None else None,
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "user": None,
                "userArn": None,
            },
        },
        "body": body,
        "isBase64Encoded": is_base64,
    }


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf_time(epoch: float) -> str:
    """$context.requestTime's format, 22/Nov/2026:04:02:33 +0000 (spelled out: %b follows the locale)."""
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def _forwarded_headers(request: HttpRequest) -> list[tuple[str, str]]:
    """The client's headers plus those API Gateway's front end adds on the way to the function."""
    headers = [(name, value) for name, value in request.headers if name.lower() != "x-forwarded-for"]
    forwarded_for = request.header("x-forwarded-for")
    headers.append(("X-Forwarded-For", f"{forwarded_for}, {request.source_ip}" if forwarded_for else request.source_ip))
    host = request.header("host") or ""
    defaults = {
        "X-Forwarded-Proto": "http",
        "X-Forwarded-Port": host.rsplit(":", 1)[1] if ":" in host else "80",
        "X-Amzn-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}",
    }
    # A tunnel in front of the stack (ngrok) sets its own X-Forwarded-Proto; keep what came.
    headers.extend((name, value) for name, value in defaults.items() if request.header(name) is None)
    return headers


def encode_body(body: bytes, content_type: str | None, binary_media_types: tuple[str, ...]) -> tuple[str | None, bool]:
    """The body as API Gateway hands it to Lambda: text unless the content type is one of the API's
    binary media types (the template's BinaryMediaTypes; none by default, so a form post from
    Twilio arrives as text). Bytes that are not UTF-8 cannot travel as text, so they go as base64."""
    if not body:
        return None, False
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type and any(fnmatch.fnmatchcase(media_type, t.lower()) for t in binary_media_types):
        return base64.b64encode(body).decode("ascii"), True
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


class MalformedResponse(ValueError):
    """The handler returned something API Gateway could not turn into a response (it answers 502)."""


def proxy_response(result: Any) -> HttpResponse:
    if not isinstance(result, dict):
        raise MalformedResponse(f"a proxy response must be an object, got {type(result).__name__}")
    status = result.get("statusCode", 200)
    if not (isinstance(status, int) or (isinstance(status, str) and status.isdigit())):
        raise MalformedResponse(f"statusCode must be a number, got {status!r}")
    # API Gateway merges the two maps; a pair given in both appears once.
    headers: dict[str, list[str]] = {
        str(name): [str(v) for v in values] for name, values in (result.get("multiValueHeaders") or {}).items()
    }
    for name, value in (result.get("headers") or {}).items():
        values = headers.setdefault(str(name), [])
        if str(value) not in values:
            values.append(str(value))
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = ["application/json"]  # API Gateway's default
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise MalformedResponse(f"body must be a string, got {type(body).__name__}")
    raw = (body or "").encode("utf-8")
    if result.get("isBase64Encoded") and body:
        try:
            raw = base64.b64decode(body, validate=True)
        except binascii.Error as exc:
            raise MalformedResponse("isBase64Encoded is true but the body is not base64") from exc
    pairs = tuple((name, value) for name, values in headers.items() for value in values)
    return HttpResponse(int(status), pairs, raw)
