"""The API Gateway emulator: the event a handler receives, how its answer becomes the HTTP response,
and API Gateway's own answers. Fake handlers; no sockets."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from infra.local.functions import LocalFunction, LocalLambdaContext
from infra.local.proxy import (
    MAX_PAYLOAD_BYTES,
    ApiGatewayContext,
    ApiGatewayEmulator,
    ApiKey,
    MalformedResponse,
    encode_body,
    proxy_event,
    proxy_response,
)
from infra.local.routes import ApiRoute, RestApi, RouteMatch
from infra.local.web import HttpRequest

KEY = "sekret"
OTHER_KEY = "another-sekret"
ALICE, BOB = ApiKey("id-alice", "alice", KEY), ApiKey("id-bob", "bob", OTHER_KEY)
CONTEXT = ApiGatewayContext(stage="local", api_keys=(ALICE, BOB), account_id="123456789012")
ROUTES = (
    ApiRoute("/items", "POST", "Items", api_key_required=True),
    ApiRoute("/items/{id}", "GET", "Items", api_key_required=True),
    ApiRoute("/hooks/sms", "POST", "Hooks", api_key_required=False),
)


def request(method: str, target: str, body: bytes = b"", **headers: str) -> HttpRequest:
    path, _, query = target.partition("?")
    pairs = (("Host", "127.0.0.1:3000"), *((k.replace("_", "-"), v) for k, v in headers.items()))
    return HttpRequest(method, path, query, pairs, body, "10.0.0.7")


class Recorder:
    def __init__(self, result: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.result = result if result is not None else {"statusCode": 200, "body": "ok"}

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        return self.result


def emulator(handler: Any, binary: tuple[str, ...] = (), errors: io.StringIO | None = None) -> ApiGatewayEmulator:
    functions = {
        name: LocalFunction(name, "unused", "unused", f"fn-{name}", f"arn:fn:{name}", handler=handler)
        for name in ("Items", "Hooks")
    }
    return ApiGatewayEmulator(RestApi(ROUTES, "local", binary), functions, CONTEXT, errors)


def test_the_event_is_a_rest_v1_proxy_event() -> None:
    recorder = Recorder()
    sent = request("GET", "/items/abc%20d?tag=a&tag=b&empty=", x_api_key=KEY, User_Agent="curl/8", X_Multi="1")
    sent = HttpRequest(sent.method, sent.path, sent.query, (*sent.headers, ("X-Multi", "2")), b"", sent.source_ip)

    response = emulator(recorder).handle(sent)

    assert response.status == 200
    event = recorder.events[0]
    assert event["resource"] == "/items/{id}"
    assert event["path"] == "/items/abc%20d"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"id": "abc d"}
    assert event["queryStringParameters"] == {"tag": "b", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "empty": [""]}
    assert event["headers"]["X-Multi"] == "2"
    assert event["multiValueHeaders"]["X-Multi"] == ["1", "2"]
    assert event["headers"]["X-Forwarded-For"] == "10.0.0.7"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["headers"]["X-Forwarded-Port"] == "3000"
    assert event["stageVariables"] is None
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["stage"] == "local"
    assert ctx["path"] == "/local/items/abc%20d"
    assert ctx["resourcePath"] == "/items/{id}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["accountId"] == "123456789012"
    assert ctx["identity"]["sourceIp"] == "10.0.0.7"
    assert ctx["identity"]["userAgent"] == "curl/8"
    assert ctx["identity"]["apiKey"] == KEY
    assert ctx["identity"]["apiKeyId"] == "id-alice"
    assert ctx["requestId"] == recorder.contexts[0].aws_request_id
    assert response.headers[-1] == ("x-amzn-RequestId", ctx["requestId"])


def test_empty_query_and_path_parameters_are_null_as_in_aws() -> None:
    recorder = Recorder()

    emulator(recorder).handle(
        request("POST", "/hooks/sms", b"From=%2B1&Body=hi", Content_Type="application/x-www-form-urlencoded")
    )

    event = recorder.events[0]
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    # Without BinaryMediaTypes in the template, API Gateway hands a form post over as text.
    assert event["body"] == "From=%2B1&Body=hi"
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["identity"]["apiKey"] is None
    assert event["requestContext"]["identity"]["apiKeyId"] is None


def test_binary_media_types_and_non_utf8_bodies_arrive_base64_encoded() -> None:
    assert encode_body(
        b"A=1", "application/x-www-form-urlencoded; charset=utf-8", ("application/x-www-form-urlencoded",)
    ) == (
        base64.b64encode(b"A=1").decode(),
        True,
    )
    assert encode_body(b"\x89PNG", "image/png", ("image/*",)) == (base64.b64encode(b"\x89PNG").decode(), True)
    assert encode_body(b"\xff\xfe", "text/plain", ()) == (base64.b64encode(b"\xff\xfe").decode(), True)
    assert encode_body(b'{"a": 1}', "application/json", ("image/*",)) == ('{"a": 1}', False)
    assert encode_body(b"", "image/png", ("*/*",)) == (None, False)


def test_the_api_key_rule_is_enforced_before_the_handler_runs() -> None:
    recorder = Recorder()
    gateway = emulator(recorder)

    missing = gateway.handle(request("POST", "/items", b"{}"))
    wrong = gateway.handle(request("POST", "/items", b"{}", x_api_key="nope"))
    open_route = gateway.handle(request("POST", "/hooks/sms", b"x"))

    assert (missing.status, json.loads(missing.body)) == (403, {"message": "Forbidden"})
    assert wrong.status == 403
    assert open_route.status == 200
    assert len(recorder.events) == 1


def test_any_of_the_apis_keys_is_let_in_and_the_event_says_which() -> None:
    recorder = Recorder()
    gateway = emulator(recorder)

    as_alice = gateway.handle(request("GET", "/items/1", x_api_key=KEY))
    as_bob = gateway.handle(request("GET", "/items/1", x_api_key=OTHER_KEY))
    # A key sent to a route that needs none identifies no one, as on AWS.
    open_route = gateway.handle(request("POST", "/hooks/sms", b"x", x_api_key=OTHER_KEY))
    almost = gateway.handle(request("GET", "/items/1", x_api_key=OTHER_KEY[:-1]))

    assert [as_alice.status, as_bob.status, open_route.status, almost.status] == [200, 200, 200, 403]
    identities = [event["requestContext"]["identity"] for event in recorder.events]
    assert [(i["apiKeyId"], i["apiKey"]) for i in identities] == [
        ("id-alice", KEY),
        ("id-bob", OTHER_KEY),
        (None, None),
    ]


def test_an_api_without_keys_lets_no_one_into_key_required_routes() -> None:
    recorder = Recorder()
    functions = {"Items": LocalFunction("Items", "unused", "unused", "fn", "arn", handler=recorder)}
    gateway = ApiGatewayEmulator(
        RestApi(ROUTES, "local", ()), functions, ApiGatewayContext("local", (), "123456789012")
    )

    assert gateway.handle(request("POST", "/items", b"{}", x_api_key=KEY)).status == 403
    assert gateway.handle(request("POST", "/items", b"{}", x_api_key="")).status == 403
    assert recorder.events == []


def test_an_api_keys_value_stays_out_of_its_repr() -> None:
    assert KEY not in repr(ALICE)
    assert KEY not in repr(CONTEXT)


def test_unknown_paths_and_methods_get_missing_authentication_token() -> None:
    gateway = emulator(Recorder())

    for sent in (request("GET", "/nowhere"), request("DELETE", "/items", x_api_key=KEY)):
        response = gateway.handle(sent)
        assert response.status == 403
        assert json.loads(response.body) == {"message": "Missing Authentication Token"}
        assert ("x-amzn-ErrorType", "MissingAuthenticationTokenException") in response.headers


def test_a_failing_handler_is_a_502_with_the_traceback_in_the_log() -> None:
    def broken(event: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    errors = io.StringIO()

    response = emulator(broken, errors=errors).handle(request("POST", "/hooks/sms"))

    assert (response.status, json.loads(response.body)) == (502, {"message": "Internal server error"})
    assert "RuntimeError: boom" in errors.getvalue()


def test_a_malformed_handler_answer_is_a_502() -> None:
    errors = io.StringIO()

    response = emulator(Recorder(result=["not", "a", "dict"]), errors=errors).handle(request("POST", "/hooks/sms"))

    assert response.status == 502
    assert "MalformedResponse" in errors.getvalue()


def test_payloads_over_api_gateways_limit_are_refused() -> None:
    recorder = Recorder()

    response = emulator(recorder).handle(request("POST", "/hooks/sms", b"x" * (MAX_PAYLOAD_BYTES + 1)))

    assert response.status == 413
    assert recorder.events == []


def test_the_handler_answer_becomes_the_http_response() -> None:
    response = proxy_response(
        {
            "statusCode": "201",
            "headers": {"X-One": "a", "X-Both": "b"},
            "multiValueHeaders": {"X-Both": ["b", "c"], "Set-Cookie": ["s=1", "t=2"]},
            "body": '{"ok": true}',
        }
    )

    assert response.status == 201
    assert response.body == b'{"ok": true}'
    assert ("X-One", "a") in response.headers
    assert [v for k, v in response.headers if k == "X-Both"] == ["b", "c"]
    assert [v for k, v in response.headers if k == "Set-Cookie"] == ["s=1", "t=2"]
    assert ("Content-Type", "application/json") in response.headers  # API Gateway's default


def test_base64_answers_are_decoded() -> None:
    body = base64.b64encode(b"\x00\x01").decode()

    response = proxy_response(
        {"statusCode": 200, "headers": {"content-type": "image/png"}, "body": body, "isBase64Encoded": True}
    )

    assert response.body == b"\x00\x01"
    assert ("content-type", "image/png") in response.headers


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "two hundred"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
    ],
)
def test_malformed_answers_are_rejected(result: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponse):
        proxy_response(result)


def test_the_context_satisfies_powertools_and_counts_down() -> None:
    logger = Logger(service="test", stream=io.StringIO())
    seen: list[LocalLambdaContext] = []

    @logger.inject_lambda_context
    def handler(event: Any, context: LocalLambdaContext) -> Any:
        seen.append(context)
        logger.info("inside")
        return {"statusCode": 204}

    function = LocalFunction("F", "m", "h", "fn-name", "arn:fn", memory_mb=256, timeout_seconds=5, handler=handler)

    assert function.invoke({}, "req-1") == {"statusCode": 204}
    context = seen[0]
    assert (context.function_name, context.memory_limit_in_mb, context.aws_request_id) == ("fn-name", 256, "req-1")
    assert 0 < context.get_remaining_time_in_millis() <= 5000


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Imported by name below, as the stack imports `functions.<dir>.app`."""
    return {"statusCode": 200, "body": event["path"]}


def test_a_handler_module_is_imported_on_first_use() -> None:
    function = LocalFunction(
        "F", __name__, "lambda_handler", "fn", "arn", import_environment={"POWERTOOLS_SERVICE_NAME": "svc"}
    )

    assert function.invoke({"path": "/p"}) == {"statusCode": 200, "body": "/p"}
    missing = LocalFunction("F", __name__, "no_such_handler", "fn", "arn")
    with pytest.raises(ValueError, match="no callable"):
        missing.invoke({})


def test_a_match_carries_the_route_and_parameters() -> None:
    route = ROUTES[1]
    event = proxy_event(request("GET", "/items/7"), RouteMatch(route, {"id": "7"}), CONTEXT, (), "rid", now=0.0)

    assert event["requestContext"]["requestTimeEpoch"] == 0
    assert event["requestContext"]["requestTime"] == "01/Jan/1970:00:00:00 +0000"
