"""How the local stack reads template.yaml: intrinsic functions, each function's environment, the
routes and their API-key rule. Pure: no moto, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.environment import (
    apply,
    aws_client_environment,
    env_name,
    function_environments,
    parameter_values,
    shared_environment,
)
from infra.local.functions import functions_from_template, handler_location, layer_directories
from infra.local.intrinsics import NO_VALUE, Intrinsics, PhysicalResource, TemplateError
from infra.local.resources import exists, plausible_resources
from infra.local.routes import ApiRoute, rest_api_from_template
from infra.template import ROOT, load_template

BASE_URL = "http://127.0.0.1:3000"


def local_intrinsics(shell: dict[str, str] | None = None, template: dict[str, Any] | None = None) -> Intrinsics:
    template = template or load_template()
    parameters = parameter_values(template, shell or {}, {"Stage": "local", "PublicBaseUrl": BASE_URL})
    naming = Intrinsics.for_stack(template, parameters, {}, stack_name="stk", region="us-east-1", account_id="123")
    physical = {
        **plausible_resources(naming, stack_name="stk"),
        "CoachTable": PhysicalResource("stk", {"Arn": "arn:table"}),
        "InboundQueue": PhysicalResource("http://moto/123/stk-inbound.fifo", {"Arn": "arn:aws:sqs:q"}),
        "NudgeScheduleGroup": PhysicalResource("stk-nudges", {"Arn": "arn:group"}),
        "NudgeDeadLetterQueue": PhysicalResource("http://moto/123/stk-nudge-dlq", {"Arn": "arn:aws:sqs:dlq"}),
    }
    return Intrinsics(template, parameters, physical, naming.pseudo)


def tiny(**intrinsics_args: Any) -> Intrinsics:
    template = {
        "Conditions": {
            "IsProd": {"Fn::Equals": [{"Ref": "Stage"}, "prod"]},
            "NotProd": {"Fn::Not": [{"Condition": "IsProd"}]},
        },
        "Resources": {},
    }
    return Intrinsics.for_stack(
        template,
        {"Stage": "local"},
        {"Q": PhysicalResource("url", {"Arn": "arn:q"})},
        stack_name="stk",
        region="eu-west-1",
        account_id="123",
    )


def test_intrinsic_functions_evaluate_against_local_values() -> None:
    i = tiny()

    assert i.evaluate({"Ref": "Stage"}) == "local"
    assert i.evaluate({"Ref": "Q"}) == "url"
    assert i.evaluate({"Fn::GetAtt": ["Q", "Arn"]}) == "arn:q"
    assert i.evaluate({"Fn::Sub": "${AWS::StackName}-${Stage}-${Q.Arn}-${!Literal}"}) == "stk-local-arn:q-${Literal}"
    assert (
        i.evaluate({"Fn::Sub": ["${A}.${AWS::URLSuffix}", {"A": {"Ref": "AWS::Region"}}]}) == "eu-west-1.amazonaws.com"
    )
    assert i.evaluate({"Fn::If": ["IsProd", "p", "np"]}) == "np"
    assert i.evaluate({"Fn::If": ["NotProd", "np", "p"]}) == "np"
    assert i.evaluate({"Fn::And": [{"Condition": "NotProd"}, {"Fn::Or": [{"Condition": "IsProd"}, True]}]}) is True
    assert i.evaluate({"Fn::Join": ["/", ["a", {"Ref": "Stage"}]]}) == "a/local"
    assert i.evaluate({"Fn::Select": [1, ["a", "b"]]}) == "b"
    assert i.evaluate({"Ref": "AWS::NoValue"}) is NO_VALUE


def test_no_value_removes_the_key_or_element_that_holds_it() -> None:
    i = tiny()

    value = {"keep": 1, "drop": {"Fn::If": ["IsProd", "x", {"Ref": "AWS::NoValue"}]}}
    assert i.evaluate(value) == {"keep": 1}
    assert i.evaluate([1, {"Ref": "AWS::NoValue"}, 2]) == [1, 2]


@pytest.mark.parametrize(
    "expression",
    [
        {"Ref": "Nothing"},
        {"Fn::GetAtt": ["Q", "StreamArn"]},
        {"Fn::GetAtt": "Missing.Arn"},
        {"Fn::If": ["NoSuchCondition", 1, 2]},
        {"Fn::Not": [True, False]},
        {"Fn::Not": ["not a condition"]},
        {"Fn::Sub": "${AWS::NoValue}"},
    ],
)
def test_what_cannot_be_evaluated_fails_loudly(expression: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        tiny().evaluate(expression)


def test_parameters_take_the_shell_variable_then_the_local_default_then_the_template_default() -> None:
    template = load_template()
    shell = {"DEFAULT_TIMEZONE": "Europe/Paris", "PUBLIC_BASE_URL": "", "LOG_LEVEL": "DEBUG"}

    values = parameter_values(template, shell, {"Stage": "local", "PublicBaseUrl": BASE_URL})

    assert values["DefaultTimezone"] == "Europe/Paris"
    assert values["LogLevel"] == "DEBUG"
    assert values["PublicBaseUrl"] == BASE_URL  # an empty variable counts as unset
    assert values["Stage"] == "local"
    assert values["DefaultPhoneRegion"] == "US"
    assert [env_name(p) for p in ("PublicBaseUrl", "OpenAISecretName", "Stage")] == [
        "PUBLIC_BASE_URL",
        "OPEN_AI_SECRET_NAME",
        "STAGE",
    ]


def test_reserved_concurrency_and_the_send_rate_come_from_their_parameters_with_local_defaults() -> None:
    def local_stack(shell: dict[str, str]) -> tuple[dict[str, int], dict[str, str]]:
        intrinsics = local_intrinsics(shell)
        functions = functions_from_template(
            load_template(), plausible_resources(intrinsics, stack_name="s"), {}, intrinsics
        )
        return {name: f.concurrency for name, f in functions.items()}, function_environments(intrinsics)[
            "PromptGeneratorFunction"
        ]

    concurrency, prompt_generator = local_stack({})
    assert concurrency["PromptGeneratorFunction"] == 5  # NudgeConcurrency's default, as on AWS
    assert (concurrency["WebhookFunction"], concurrency["ConversationFunction"]) == (10, 10)  # a few, locally
    assert (prompt_generator["SEND_RATE"], prompt_generator["NUDGE_CONCURRENCY"]) == ("1000", "5")

    concurrency, prompt_generator = local_stack(
        {"SEND_RATE": "1", "NUDGE_CONCURRENCY": "2", "WEBHOOK_CONCURRENCY": "3"}
    )
    assert (concurrency["PromptGeneratorFunction"], concurrency["WebhookFunction"]) == (2, 3)
    assert (prompt_generator["SEND_RATE"], prompt_generator["NUDGE_CONCURRENCY"]) == ("1", "2")


def test_a_parameter_without_default_must_come_from_the_shell() -> None:
    with pytest.raises(TemplateError, match="SECRET_NAME"):
        parameter_values({"Parameters": {"SecretName": {"Type": "String"}}}, {}, {})


def test_each_function_gets_the_globals_and_its_own_variables_resolved_locally() -> None:
    environments = function_environments(local_intrinsics({"PUBLIC_BASE_URL": "https://abc.ngrok.app"}))

    enrollment = environments["EnrollmentFunction"]
    assert enrollment["TABLE_NAME"] == "stk"
    assert enrollment["QUEUE_URL"] == "http://moto/123/stk-inbound.fifo"
    assert enrollment["SCHEDULE_GROUP_NAME"] == "stk-nudges"
    assert enrollment["STAGE"] == "local"
    assert enrollment["POWERTOOLS_SERVICE_NAME"] == "enrollment"
    assert environments["WebhookFunction"]["PUBLIC_BASE_URL"] == "https://abc.ngrok.app"
    conversation = environments["ConversationFunction"]
    assert conversation["STATUS_CALLBACK_URL"] == "https://abc.ngrok.app/twilio/status"
    assert conversation["SCHEDULER_ROLE_ARN"] == "arn:aws:iam::123:role/stk-SchedulerInvokeRole"
    # The prompt generator's ARN, named from its fixed FunctionName, is the one its local function answers to.
    arn = "arn:aws:lambda:us-east-1:123:function:stk-prompt-generator"
    assert enrollment["PROMPT_GENERATOR_ARN"] == conversation["PROMPT_GENERATOR_ARN"] == arn
    assert local_intrinsics().resources["PromptGeneratorFunction"].attributes["Arn"] == arn


def test_the_shared_environment_is_the_union_with_one_service_name() -> None:
    shared = shared_environment(function_environments(local_intrinsics()))

    assert shared["POWERTOOLS_SERVICE_NAME"] == "local"
    assert shared["PUBLIC_BASE_URL"] == BASE_URL
    assert shared["QUEUE_URL"].endswith("stk-inbound.fifo")
    assert shared["STATUS_CALLBACK_URL"] == f"{BASE_URL}/twilio/status"


def test_functions_that_disagree_on_a_variable_cannot_share_a_process() -> None:
    environments = {"A": {"TABLE_NAME": "one", "POWERTOOLS_LOG_LEVEL": "INFO"}, "B": {"TABLE_NAME": "two"}}
    with pytest.raises(TemplateError, match="TABLE_NAME"):
        shared_environment(environments)
    # powertools' variables may differ: each function gets its own while its module is imported.
    assert shared_environment({"A": {"POWERTOOLS_LOG_LEVEL": "INFO"}, "B": {"POWERTOOLS_LOG_LEVEL": "DEBUG"}})


def test_applying_the_aws_environment_drops_what_could_reach_real_aws() -> None:
    environ = {"AWS_PROFILE": "work", "AWS_ENDPOINT_URL_DYNAMODB": "https://real", "HOME": "/home/me"}

    apply(environ, aws_client_environment("http://127.0.0.1:5000", "us-east-1"))

    assert "AWS_PROFILE" not in environ
    assert "AWS_ENDPOINT_URL_DYNAMODB" not in environ
    assert environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert environ["AWS_ACCESS_KEY_ID"] == "testing"
    assert environ["HOME"] == "/home/me"


def test_resources_whose_condition_is_false_do_not_exist() -> None:
    present = exists(local_intrinsics())

    assert "CoachTable" in present
    assert "ApiAccessLogGroup" not in present  # ApiAccessLogs defaults to disabled


def test_routes_and_their_api_key_rule_come_from_the_template() -> None:
    api = rest_api_from_template(load_template())

    routes = {(r.method, r.resource): r for r in api.routes}
    assert routes["POST", "/conversation/participants"].api_key_required
    assert routes["DELETE", "/conversation/participants/{id}"].function_id == "EnrollmentFunction"
    assert not routes["POST", "/twilio/sms"].api_key_required
    assert not routes["POST", "/twilio/status"].api_key_required
    assert api.stage_name == {"Ref": "Stage"}
    assert api.binary_media_types == ("application/x-www-form-urlencoded", "application/octet-stream")


def test_the_most_specific_resource_wins_and_parameters_are_decoded() -> None:
    template = {
        "Resources": {
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Events": {
                        name: {"Type": "Api", "Properties": {"Path": path, "Method": method}}
                        for name, path, method in [
                            ("Literal", "/items/special", "get"),
                            ("Param", "/items/{id}", "get"),
                            ("Greedy", "/{proxy+}", "any"),
                        ]
                    }
                },
            }
        }
    }
    api = rest_api_from_template(template)

    def resource(method: str, path: str) -> tuple[str, dict[str, str]] | None:
        match = api.match(method, path)
        return None if match is None else (match.route.resource, match.path_parameters)

    assert resource("GET", "/items/special") == ("/items/special", {})
    assert resource("GET", "/items/a%40b") == ("/items/{id}", {"id": "a@b"})
    assert resource("POST", "/items/x") is None  # the resource exists, the method does not
    assert resource("DELETE", "/other/deep/path") == ("/{proxy+}", {"proxy": "other/deep/path"})
    assert resource("GET", "/") is None
    assert ApiRoute("/a/{b}", "GET", "F", False).path_parameters("/a/b/c") is None


def test_templates_the_gateway_cannot_serve_are_rejected() -> None:
    event = {"Type": "Api", "Properties": {"Path": "/x", "Method": "get"}}
    twice = {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"A": event, "B": event}}}
    with pytest.raises(TemplateError, match="declared by"):
        rest_api_from_template({"Resources": {"F": twice}})
    other_api = {"Type": "Api", "Properties": {"Path": "/y", "Method": "get", "RestApiId": {"Ref": "Other"}}}
    two_apis = {"Type": "AWS::Serverless::Function", "Properties": {"Events": {"A": event, "B": other_api}}}
    with pytest.raises(TemplateError, match="one REST API"):
        rest_api_from_template({"Resources": {"F": two_apis}})


def test_handlers_are_imported_from_the_code_directory_as_a_package() -> None:
    intrinsics = local_intrinsics()
    functions = functions_from_template(
        load_template(), plausible_resources(intrinsics, stack_name="s"), {}, intrinsics
    )

    enrollment = functions["EnrollmentFunction"]
    assert (enrollment.module, enrollment.handler_name) == ("functions.enrollment.app", "lambda_handler")
    assert enrollment.arn.endswith(":function:s-EnrollmentFunction")
    assert enrollment.memory_mb == 512
    assert functions["ConversationFunction"].timeout_seconds == 60
    assert handler_location("F", {"CodeUri": "./src/", "Handler": "pkg.mod.run"}) == ("src.pkg.mod", "run")
    with pytest.raises(TemplateError):
        handler_location("F", {"CodeUri": "src/", "Handler": "no_dot"})
    assert layer_directories(load_template(), ROOT) == [(ROOT / "layers" / "coach").resolve()]
