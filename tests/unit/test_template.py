"""template.yaml as CloudFormation will see it: transformed offline by samtranslator, then read.

The routes and their API-key rule, least privilege per function, the data resources, the alarms and
the outputs are asserted on the transformed template, so a change SAM would expand differently from
what we meant (a stray wildcard, a route without a key) fails here rather than in a deployment.
"""

from __future__ import annotations

import copy
import graphlib
import re
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from samtranslator.translator.transform import transform

from coach.domain.outbox import ATTEMPT_LEASE
from coach.settings import MAX_SEND_INTERVAL_SECONDS, PromptGeneratorSettings
from infra.local.environment import env_name
from infra.template import ROOT, load_template, read_template

FUNCTIONS = (
    "EnrollmentFunction",
    "WebhookFunction",
    "ConversationFunction",
    "PromptGeneratorFunction",
    "ExportFunction",
    "RetentionFunction",
)

RESEARCHER_ROUTES = {
    ("/conversation/participants", "POST"),
    ("/conversation/participants", "GET"),
    ("/conversation/participants/{id}", "GET"),
    ("/conversation/participants/{id}", "PUT"),
    ("/conversation/participants/{id}", "DELETE"),
    ("/conversation/participants/{id}/reset", "POST"),
    ("/conversation/participants/{id}/safety-flag", "DELETE"),
    ("/conversation/participants/{id}/messages", "GET"),
    ("/conversation/participants/{id}/events", "GET"),
    ("/conversation/participants/{id}/decisions", "GET"),
    ("/conversation/audit", "GET"),
    ("/conversation/participants/bulk", "POST"),
    ("/conversation/participants/{id}/messages", "POST"),
    ("/conversation/messages", "POST"),
    ("/conversation/exports", "POST"),
    ("/conversation/exports", "GET"),
    ("/conversation/exports/{id}", "GET"),
    ("/conversation/openapi.json", "GET"),
}
TWILIO_ROUTES = {("/twilio/sms", "POST"), ("/twilio/status", "POST")}


def route_id(route: tuple[str, str]) -> str:
    return f"{route[1]} {route[0]}"


TABLE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
}
SCHEDULE_ACTIONS = {
    "scheduler:CreateSchedule",
    "scheduler:UpdateSchedule",
    "scheduler:DeleteSchedule",
    "scheduler:GetSchedule",
}
# What each function may do, and to what: service prefix -> the template names its resources use.
COACH_REACH = {
    "dynamodb": {"CoachTable"},
    "secretsmanager": {"TwilioSecretName", "OpenAISecretName"},
    "scheduler": {"NudgeScheduleGroup"},
    "iam": {"SchedulerInvokeRole"},
    "sns": {"SafetyAlertTopic"},  # a safety flag's alert, from the participant's outbox
}
EXPECTED_REACH: dict[str, dict[str, set[str]]] = {
    "EnrollmentFunction": {
        "dynamodb": {"CoachTable"},
        "sqs": {"InboundQueue", "ExportQueue"},
        "scheduler": {"NudgeScheduleGroup"},
        "iam": {"SchedulerInvokeRole"},
        "apigateway": set(),  # its keys: arn:...:apigateway:<region>::/apikeys/*
        "s3": {"ExportBucket"},  # it signs the download URLs, and a delete erases the participant's archive
    },
    "WebhookFunction": {
        "dynamodb": {"CoachTable"},
        "sqs": {"InboundQueue"},
        "secretsmanager": {"TwilioSecretName"},
    },
    "ConversationFunction": COACH_REACH,
    # SAM's policy for the on-failure destination names the queue by its name.
    "PromptGeneratorFunction": {**COACH_REACH, "sqs": {"NudgeDeadLetterQueue"}},
    "ExportFunction": {"dynamodb": {"CoachTable"}, "s3": {"ExportBucket"}, "sqs": {"ExportQueue"}},
    "RetentionFunction": {"dynamodb": {"CoachTable"}, "s3": {"ExportBucket"}},
}
EXPECTED_ACTIONS: dict[str, set[str]] = {
    # Every function that changes a participant reconciles its schedules (DESIGN: derived, then reconciled).
    "EnrollmentFunction": TABLE_ACTIONS
    | SCHEDULE_ACTIONS
    | {"sqs:SendMessage", "iam:PassRole", "apigateway:GET", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"},
    "WebhookFunction": TABLE_ACTIONS - {"dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    | {"sqs:SendMessage", "secretsmanager:GetSecretValue"},
    "ConversationFunction": TABLE_ACTIONS
    | SCHEDULE_ACTIONS
    | {"secretsmanager:GetSecretValue", "iam:PassRole", "sns:Publish"},
    "PromptGeneratorFunction": TABLE_ACTIONS
    | SCHEDULE_ACTIONS
    | {"secretsmanager:GetSecretValue", "iam:PassRole", "sqs:SendMessage", "sns:Publish"},
    # It reads what it exports and writes only its job item and its files: no update, delete or send.
    "ExportFunction": {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "s3:PutObject",
        "s3:GetObject",  # the archive, read back (archive/ only: the test below)
        "s3:ListBucket",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueUrl",
    },
    # It never texts, queues or schedules: it moves old items to the archive and finishes deletions.
    "RetentionFunction": TABLE_ACTIONS - {"dynamodb:ConditionCheckItem"}
    | {"s3:PutObject", "s3:DeleteObject", "s3:ListBucket"},
}

# The texts the study sends (coach.domain.study_texts): parameter -> its variable, and the functions that send
# it. The others never say it, so they are not given it: their settings check the built-in text.
STUDY_TEXTS: dict[str, tuple[str, set[str]]] = {
    "StudyName": ("STUDY_NAME", {"WebhookFunction", "ConversationFunction"}),
    "GreetingText": ("GREETING_TEXT", {"ConversationFunction"}),
    "ConsentExplanation": ("CONSENT_EXPLANATION", {"ConversationFunction"}),
    "HelpText": ("HELP_TEXT", {"WebhookFunction"}),
    "NotEnrolledText": ("NOT_ENROLLED_TEXT", {"WebhookFunction"}),
    "OptOutConfirmation": ("OPT_OUT_CONFIRMATION", {"WebhookFunction"}),
    "CrisisText": ("CRISIS_TEXT", {"ConversationFunction", "PromptGeneratorFunction"}),
}

BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
XRAY_WRITE = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
SQS_POLLER = "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole"


class OfflineManagedPolicies:
    """Stands in for samtranslator's ManagedPolicyLoader, which would ask IAM over the network."""

    def load(self) -> dict[str, str]:
        return {arn.rsplit("/", 1)[-1]: arn for arn in (BASIC_EXECUTION, XRAY_WRITE, SQS_POLLER)}


def _with_placeholder_code_uris(sam: dict[str, Any]) -> dict[str, Any]:
    # `sam build` replaces local code paths with S3 locations before the transform; so do we.
    sam = copy.deepcopy(sam)
    for resource in sam["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://artifacts/{properties[key].strip('/')}.zip"
    return sam


@pytest.fixture(scope="module")
def cfn() -> Iterator[dict[str, Any]]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield transform(_with_placeholder_code_uris(load_template()), {}, OfflineManagedPolicies())


# --- reading the transformed template ------------------------------------------------------------


def resource(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    assert logical_id in cfn["Resources"], f"{logical_id} is missing from the transformed template"
    found: dict[str, Any] = cfn["Resources"][logical_id]
    return found


def properties(cfn: dict[str, Any], logical_id: str) -> dict[str, Any]:
    found: dict[str, Any] = resource(cfn, logical_id).get("Properties", {})
    return found


def of_type(cfn: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in cfn["Resources"].items() if res["Type"] == resource_type}


def api_operations(cfn: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(path, METHOD) -> the OpenAPI operation SAM wrote into the RestApi body."""
    body = properties(cfn, "CoachApi")["Body"]
    return {
        (path, method.upper()): operation for path, item in body["paths"].items() for method, operation in item.items()
    }


def api_key_scheme(cfn: dict[str, Any]) -> dict[str, Any]:
    body = properties(cfn, "CoachApi")["Body"]
    schemes = body.get("components", {}).get("securitySchemes") or body.get("securityDefinitions", {})
    scheme: dict[str, Any] = schemes["api_key"]
    return scheme


def requires_api_key(operation: dict[str, Any]) -> bool:
    return {"api_key": []} in operation.get("security", [])


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(cfn: dict[str, Any], function_id: str) -> dict[str, Any]:
    role_ref = properties(cfn, function_id)["Role"]
    return resource(cfn, role_ref["Fn::GetAtt"][0])


def inline_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in role["Properties"].get("Policies", [])
        for statement in as_list(policy["PolicyDocument"]["Statement"])
    ]


def every_policy_statement(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity policy in the stack, with the resource that holds it."""
    for name, res in cfn["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::IAM::Role":
            for statement in inline_statements(res):
                yield name, statement
        elif res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for statement in as_list(props["PolicyDocument"]["Statement"]):
                yield name, statement


_SUB_NAME = re.compile(r"\$\{(?!!)([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}")


def referenced_names(value: Any) -> set[str]:
    """Logical ids and parameters a value points at through Ref, GetAtt or Sub (pseudo params left out)."""
    names: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value:
            names.add(value["Ref"])
        elif "Fn::GetAtt" in value:
            names.add(as_list(value["Fn::GetAtt"])[0].split(".")[0])
        elif "Fn::Sub" in value:
            template, variables = (value["Fn::Sub"], {}) if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"]
            names |= set(_SUB_NAME.findall(template)) - set(variables)
            names |= referenced_names(list(variables.values()))
        else:
            for item in value.values():
                names |= referenced_names(item)
    elif isinstance(value, list):
        for item in value:
            names |= referenced_names(item)
    return {name for name in names if not name.startswith("AWS::")}


def reach(statements: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Service prefix -> the template names the statements granting that service's actions point at."""
    by_service: dict[str, set[str]] = {}
    for statement in statements:
        for action in as_list(statement["Action"]):
            by_service.setdefault(action.split(":")[0], set()).update(referenced_names(statement["Resource"]))
    return by_service


def actions(statements: list[dict[str, Any]]) -> set[str]:
    return {action for statement in statements for action in as_list(statement["Action"])}


def env_of(cfn: dict[str, Any], function_id: str) -> dict[str, Any]:
    variables: dict[str, Any] = properties(cfn, function_id)["Environment"]["Variables"]
    return variables


def queue_trigger_of(cfn: dict[str, Any], function_id: str) -> dict[str, Any]:
    """The (one) SQS event source mapping that invokes the function, as a resource."""
    (mapping,) = [
        m
        for m in of_type(cfn, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return mapping


def alarms_on(cfn: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in of_type(cfn, "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == metric
    ]


# --- the API --------------------------------------------------------------------------------------


def test_the_api_has_exactly_the_researcher_and_twilio_routes(cfn: dict[str, Any]) -> None:
    # When SAM expands the function events into the REST API
    routes = set(api_operations(cfn))
    # Then every route is there, and no other
    assert routes == RESEARCHER_ROUTES | TWILIO_ROUTES


@pytest.mark.parametrize("route", sorted(RESEARCHER_ROUTES), ids=route_id)
def test_researcher_routes_require_the_api_key_header(cfn: dict[str, Any], route: tuple[str, str]) -> None:
    assert api_key_scheme(cfn) == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert requires_api_key(api_operations(cfn)[route]), f"{route} is reachable without an API key"


@pytest.mark.parametrize("route", sorted(TWILIO_ROUTES), ids=route_id)
def test_twilio_routes_need_no_api_key(cfn: dict[str, Any], route: tuple[str, str]) -> None:
    # Twilio cannot send a key; the webhook checks X-Twilio-Signature instead.
    assert api_operations(cfn)[route].get("security", []) == []


def test_routes_reach_the_function_that_serves_them(cfn: dict[str, Any]) -> None:
    for (path, method), operation in api_operations(cfn).items():
        target = referenced_names(operation["x-amazon-apigateway-integration"]["uri"])
        expected = "WebhookFunction" if path.startswith("/twilio/") else "EnrollmentFunction"
        assert target == {expected}, f"{method} {path} goes to {target}"


def test_a_usage_plan_ties_an_api_key_to_the_deployed_stage(cfn: dict[str, Any]) -> None:
    plan = properties(cfn, "CoachApiUsagePlan")
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "CoachApi"}, "Stage": {"Ref": "CoachApiStage"}}]
    assert resource(cfn, "CoachApiApiKey")["Type"] == "AWS::ApiGateway::ApiKey"
    assert properties(cfn, "CoachApiUsagePlanKey")["KeyId"] == {"Ref": "CoachApiApiKey"}
    assert properties(cfn, "CoachApiUsagePlanKey")["UsagePlanId"] == {"Ref": "CoachApiUsagePlan"}


def test_only_the_configured_stage_is_deployed(cfn: dict[str, Any]) -> None:
    # Without OpenApiVersion SAM also deploys a stage named "Stage", outside the usage plan.
    for deployment in of_type(cfn, "AWS::ApiGateway::Deployment").values():
        assert "StageName" not in deployment["Properties"]
    assert [stage["Properties"]["StageName"] for stage in of_type(cfn, "AWS::ApiGateway::Stage").values()] == [
        {"Ref": "Stage"}
    ]


def test_twilios_form_posts_arrive_base64_and_json_as_text(cfn: dict[str, Any]) -> None:
    body = properties(cfn, "CoachApi")["Body"]
    binary = body["x-amazon-apigateway-binary-media-types"]
    assert "application/x-www-form-urlencoded" in binary
    assert not any("json" in media_type for media_type in binary)


# --- least privilege ------------------------------------------------------------------------------


def test_no_policy_statement_grants_every_action_of_a_service(cfn: dict[str, Any]) -> None:
    wildcards = [
        (holder, action)
        for holder, statement in every_policy_statement(cfn)
        for action in as_list(statement.get("Action", []))
        if action == "*" or action.endswith(":*")
    ]
    assert wildcards == []


def test_no_inline_policy_statement_applies_to_every_resource(cfn: dict[str, Any]) -> None:
    unbounded = [holder for holder, statement in every_policy_statement(cfn) if "*" in as_list(statement["Resource"])]
    assert unbounded == []


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_each_function_reaches_only_its_own_resources(cfn: dict[str, Any], function_id: str) -> None:
    # Given the statements SAM put in the function's role
    statements = inline_statements(role_of(cfn, function_id))
    # Then each service's actions point only at the resources this function uses
    assert reach(statements) == EXPECTED_REACH[function_id]
    # And only the actions it needs are granted
    assert actions(statements) == EXPECTED_ACTIONS[function_id]


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_table_access_covers_the_table_and_its_indexes_only(cfn: dict[str, Any], function_id: str) -> None:
    table_statements = [s for s in inline_statements(role_of(cfn, function_id)) if "dynamodb:GetItem" in s["Action"]]
    assert len(table_statements) == 1
    assert table_statements[0]["Resource"] == [
        {"Fn::GetAtt": ["CoachTable", "Arn"]},
        {"Fn::Sub": "${CoachTable.Arn}/index/*"},
    ]


@pytest.mark.parametrize("function_id", ["EnrollmentFunction", "ConversationFunction", "PromptGeneratorFunction"])
def test_the_scheduler_role_can_be_passed_to_scheduler_only(cfn: dict[str, Any], function_id: str) -> None:
    (pass_role,) = [s for s in inline_statements(role_of(cfn, function_id)) if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_managed_policies_are_only_logs_tracing_and_the_queue_poller(cfn: dict[str, Any], function_id: str) -> None:
    polls = function_id in ("ConversationFunction", "ExportFunction")
    expected = {BASIC_EXECUTION, XRAY_WRITE} | ({SQS_POLLER} if polls else set())
    assert set(role_of(cfn, function_id)["Properties"]["ManagedPolicyArns"]) == expected


def policies_attached_to(cfn: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    """The statements of every AWS::IAM::Policy resource that names the role."""
    return [
        statement
        for policy in of_type(cfn, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in as_list(policy["Properties"]["PolicyDocument"]["Statement"])
    ]


def test_the_scheduler_role_is_assumed_by_scheduler_and_invokes_only_the_prompt_generator_and_retention(
    cfn: dict[str, Any],
) -> None:
    # Given the role EventBridge Scheduler uses to fire the participants' schedules
    role = resource(cfn, "SchedulerInvokeRole")["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    # Then only Scheduler can assume it
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Action"] == "sts:AssumeRole"
    # And all it may do is invoke the prompt generator (or a version or alias of it), and hand what it could
    # not invoke to the nudge dead-letter queue
    assert "Policies" not in role
    assert "ManagedPolicyArns" not in role
    invoke, dead_letter = policies_attached_to(cfn, "SchedulerInvokeRole")
    assert invoke["Action"] == "lambda:InvokeFunction"
    assert invoke["Resource"] == [
        {"Fn::GetAtt": ["PromptGeneratorFunction", "Arn"]},
        {"Fn::Sub": "${PromptGeneratorFunction.Arn}:*"},
        {"Fn::GetAtt": ["RetentionFunction", "Arn"]},
        {"Fn::Sub": "${RetentionFunction.Arn}:*"},
    ]
    assert dead_letter["Action"] == "sqs:SendMessage"
    assert dead_letter["Resource"] == {"Fn::GetAtt": ["NudgeDeadLetterQueue", "Arn"]}


def test_resources_do_not_depend_on_each_other_in_a_cycle(cfn: dict[str, Any]) -> None:
    # cfn-lint's E3004 does not see cycles that run through the roles SAM generates; CloudFormation would.
    resources = cfn["Resources"]
    graph = {
        name: (referenced_names(res) | set(as_list(res.get("DependsOn", [])))) & set(resources)
        for name, res in resources.items()
    }
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"circular dependency: {' -> '.join(cycle.args[1])}")


# --- functions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_functions_share_runtime_layer_and_observability_settings(cfn: dict[str, Any], function_id: str) -> None:
    props = properties(cfn, function_id)
    (layer_id,) = of_type(cfn, "AWS::Lambda::LayerVersion")
    assert props["Runtime"] == "python3.12"
    assert props["Architectures"] == ["arm64"]
    assert props["Layers"] == [{"Ref": layer_id}]
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert env_of(cfn, function_id)["POWERTOOLS_SERVICE_NAME"]
    assert env_of(cfn, function_id)["TABLE_NAME"] == {"Ref": "CoachTable"}


def test_scheduling_functions_know_the_group_the_role_the_target_and_the_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    for function_id in ("EnrollmentFunction", "ConversationFunction", "PromptGeneratorFunction"):
        env = env_of(cfn, function_id)
        assert env["SCHEDULE_GROUP_NAME"] == {"Ref": "NudgeScheduleGroup"}
        assert env["SCHEDULER_ROLE_ARN"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}
        assert env["SCHEDULER_DLQ_ARN"] == {"Fn::GetAtt": ["NudgeDeadLetterQueue", "Arn"]}
    # The others name the prompt generator's ARN from its fixed name (a GetAtt would close a cycle through
    # the API); the prompt generator targets itself through its Lambda context's invoked_function_arn.
    expected_arn = {
        "Fn::Sub": "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"
        "${AWS::StackName}-prompt-generator"
    }
    assert properties(cfn, "PromptGeneratorFunction")["FunctionName"] == {
        "Fn::Sub": "${AWS::StackName}-prompt-generator"
    }
    for function_id in ("EnrollmentFunction", "ConversationFunction"):
        assert env_of(cfn, function_id)["PROMPT_GENERATOR_ARN"] == expected_arn
    assert "PROMPT_GENERATOR_ARN" not in env_of(cfn, "PromptGeneratorFunction")


def test_a_failed_firing_is_retried_by_lambda_then_kept_in_the_nudge_dead_letter_queue(cfn: dict[str, Any]) -> None:
    # Scheduler invokes the prompt generator asynchronously: Lambda's own retries and destination apply.
    (config,) = of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
    props = config["Properties"]
    assert props["FunctionName"] == {"Ref": "PromptGeneratorFunction"}
    assert props["MaximumRetryAttempts"] == 2
    assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["NudgeDeadLetterQueue", "Arn"]}
    # A standard queue (Scheduler takes no FIFO queue as a dead-letter queue), kept 14 days
    queue = properties(cfn, "NudgeDeadLetterQueue")
    assert "FifoQueue" not in queue
    assert queue["MessageRetentionPeriod"] == 1209600


def test_the_watchdog_runs_daily_on_its_own_schedule_with_retries_and_a_dead_letter_queue(
    cfn: dict[str, Any],
) -> None:
    schedule = properties(cfn, "WatchdogSchedule")
    assert resource(cfn, "WatchdogSchedule")["Type"] == "AWS::Scheduler::Schedule"
    assert schedule["GroupName"] == {"Ref": "NudgeScheduleGroup"}
    assert re.fullmatch(r"cron\(\d{1,2} \d{1,2} \* \* \? \*\)", schedule["ScheduleExpression"])  # once a day
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["PromptGeneratorFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}
    assert '"kind": "watchdog"' in target["Input"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["NudgeDeadLetterQueue", "Arn"]}}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1


def test_the_retention_job_runs_hourly_with_retries_and_a_dead_letter_queue(cfn: dict[str, Any]) -> None:
    schedule = properties(cfn, "RetentionSchedule")
    assert resource(cfn, "RetentionSchedule")["Type"] == "AWS::Scheduler::Schedule"
    assert schedule["ScheduleExpression"] == "rate(1 hour)"  # a 202 deletion is finished within the hour
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["RetentionFunction", "Arn"]}
    assert target["RoleArn"] == {"Fn::GetAtt": ["SchedulerInvokeRole", "Arn"]}
    assert '"kind": "retention"' in target["Input"]
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["NudgeDeadLetterQueue", "Arn"]}}
    # Its whole 15 minutes, so a long pass stops by itself (a margin kept) rather than being cut off
    assert properties(cfn, "RetentionFunction")["Timeout"] == 900


def test_retention_is_a_parameter_off_by_default_and_only_the_retention_job_reads_it(cfn: dict[str, Any]) -> None:
    parameter = cfn["Parameters"]["RetentionDays"]
    assert (parameter["Type"], parameter["Default"], parameter["MinValue"]) == ("Number", 0, 0)
    readers = {f for f in FUNCTIONS if "RETENTION_DAYS" in env_of(cfn, f)}
    assert readers == {"RetentionFunction"}
    assert env_of(cfn, "RetentionFunction")["RETENTION_DAYS"] == {"Ref": "RetentionDays"}
    for function_id in ("RetentionFunction", "EnrollmentFunction", "ExportFunction"):
        assert env_of(cfn, function_id)["EXPORT_BUCKET"] == {"Ref": "ExportBucket"}


@pytest.mark.parametrize("function_id", ["EnrollmentFunction", "ExportFunction", "RetentionFunction"])
def test_the_archive_is_listed_and_erased_under_its_own_prefix_only(cfn: dict[str, Any], function_id: str) -> None:
    s3 = [s for s in inline_statements(role_of(cfn, function_id)) if as_list(s["Action"])[0].startswith("s3:")]
    (listing,) = [s for s in s3 if "s3:ListBucket" in as_list(s["Action"])]
    assert as_list(listing["Action"]) == ["s3:ListBucket"]
    assert listing["Resource"] == {"Fn::GetAtt": ["ExportBucket", "Arn"]}
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "archive/*"}}
    for statement in s3:
        if "s3:DeleteObject" in as_list(statement["Action"]) or function_id == "RetentionFunction":
            assert statement["Resource"] in (
                {"Fn::Sub": "${ExportBucket.Arn}/archive/*"},
                {"Fn::GetAtt": ["ExportBucket", "Arn"]},
            )


def test_the_prompt_generator_knows_the_validity_window(cfn: dict[str, Any]) -> None:
    assert env_of(cfn, "PromptGeneratorFunction")["NUDGE_VALIDITY_MINUTES"] == {"Ref": "NudgeValidityMinutes"}
    parameter = cfn["Parameters"]["NudgeValidityMinutes"]
    assert (parameter["Default"], parameter["MinValue"]) == (60, 1)


# --- paced sending and reserved concurrency --------------------------------------------------------

# Lambda keeps this much of an account's concurrency unreserved; 1,000 is an established account's quota.
UNRESERVED_MINIMUM, DEFAULT_ACCOUNT_CONCURRENCY = 100, 1000
LAMBDA_MAXIMUM_EVENT_AGE = 21600


def reserved_concurrency(cfn: dict[str, Any]) -> dict[str, Any]:
    return {
        function_id: properties(cfn, function_id)["ReservedConcurrentExecutions"]
        for function_id in FUNCTIONS
        if "ReservedConcurrentExecutions" in properties(cfn, function_id)
    }


def test_the_prompt_generators_containers_are_reserved_and_share_the_send_rate(cfn: dict[str, Any]) -> None:
    assert properties(cfn, "PromptGeneratorFunction")["ReservedConcurrentExecutions"] == {"Ref": "NudgeConcurrency"}
    env = env_of(cfn, "PromptGeneratorFunction")
    assert env["SEND_RATE"] == {"Ref": "SendRate"}
    assert env["NUDGE_CONCURRENCY"] == {"Ref": "NudgeConcurrency"}
    # Only the prompt generator paces: the local stack runs every function in one process with one value each.
    for function_id in set(FUNCTIONS) - {"PromptGeneratorFunction"}:
        assert "SEND_RATE" not in properties(cfn, function_id).get("Environment", {}).get("Variables", {})
    rate, concurrency = cfn["Parameters"]["SendRate"], cfn["Parameters"]["NudgeConcurrency"]
    assert (rate["Default"], concurrency["Default"]) == (1, 5)  # a long code, five containers
    assert rate["MinValue"] > 0
    assert concurrency["MinValue"] >= 1  # 0 would stop every nudge
    # The defaults pass the function's own check at start (each container waits at most its interval).
    configured = PromptGeneratorSettings(
        table_name="coach", send_rate=rate["Default"], nudge_concurrency=concurrency["Default"]
    )
    assert configured.nudge_concurrency / configured.send_rate <= MAX_SEND_INTERVAL_SECONDS


def test_the_webhook_and_the_conversation_function_have_capacity_no_burst_can_take(cfn: dict[str, Any]) -> None:
    def reserved_unless_zero(condition: str, parameter: str) -> dict[str, Any]:
        assert cfn["Conditions"][condition] == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, 0]}]}
        return {"Fn::If": [condition, {"Ref": parameter}, {"Ref": "AWS::NoValue"}]}

    assert reserved_concurrency(cfn) == {
        "WebhookFunction": reserved_unless_zero("ReservesWebhook", "WebhookConcurrency"),
        "ConversationFunction": reserved_unless_zero("ReservesConversation", "ConversationConcurrency"),
        "PromptGeneratorFunction": {"Ref": "NudgeConcurrency"},  # always: the send rate is shared among them
    }
    # The queue's poller keeps within the reservation: a turn over it waits in the queue, never throttled
    # (a throttled record would count a receive towards the dead-letter queue). SQS's minimum is 2.
    mapping = queue_trigger_of(cfn, "ConversationFunction")
    assert mapping["Properties"]["ScalingConfig"] == {
        "Fn::If": [
            "ReservesConversation",
            {"MaximumConcurrency": {"Ref": "ConversationConcurrency"}},
            {"Ref": "AWS::NoValue"},
        ]
    }
    # 0 reserves nothing, for an account whose quota is still below 100 + the reservations.
    assert cfn["Parameters"]["ConversationConcurrency"]["MinValue"] == 0
    assert cfn["Parameters"]["WebhookConcurrency"]["MinValue"] == 0
    assert cfn["Parameters"]["ConversationConcurrency"]["Default"] >= 2
    defaults = sum(cfn["Parameters"][p]["Default"] for p in ("WebhookConcurrency", "ConversationConcurrency"))
    defaults += cfn["Parameters"]["NudgeConcurrency"]["Default"]
    assert defaults + UNRESERVED_MINIMUM <= DEFAULT_ACCOUNT_CONCURRENCY


def test_a_firing_waiting_behind_a_busy_minute_still_runs_and_one_lambda_drops_is_kept_and_alarmed(
    cfn: dict[str, Any],
) -> None:
    (config,) = [
        c
        for c in of_type(cfn, "AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == {"Ref": "PromptGeneratorFunction"}
    ]
    age = config["Properties"]["MaximumEventAgeInSeconds"]
    # Long enough that a firing held up by the send rate runs and records its nudge expired, not dropped.
    assert age == LAMBDA_MAXIMUM_EVENT_AGE
    assert age > cfn["Parameters"]["NudgeValidityMinutes"]["Default"] * 60
    dropped_to = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms_on(cfn, "ApproximateNumberOfMessagesVisible")
    }
    assert dropped_to in watched


def test_the_conversation_function_takes_the_inbound_queue_with_partial_failures(cfn: dict[str, Any]) -> None:
    mapping = queue_trigger_of(cfn, "ConversationFunction")
    assert mapping["Properties"]["FunctionName"] == {"Ref": "ConversationFunction"}
    assert mapping["Properties"]["EventSourceArn"] == {"Fn::GetAtt": ["InboundQueue", "Arn"]}
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


# --- data -----------------------------------------------------------------------------------------


def test_the_table_has_recovery_encryption_ttl_and_gsi1(cfn: dict[str, Any]) -> None:
    table = properties(cfn, "CoachTable")
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert {"AttributeName": "PK", "KeyType": "HASH"} in table["KeySchema"]
    (gsi1,) = [index for index in table["GlobalSecondaryIndexes"] if index["IndexName"] == "GSI1"]
    assert [key["AttributeName"] for key in gsi1["KeySchema"]] == ["GSI1PK", "GSI1SK"]


def test_the_inbound_queue_is_fifo_and_redrives_to_a_fifo_dead_letter_queue(cfn: dict[str, Any]) -> None:
    queue = properties(cfn, "InboundQueue")
    assert queue["FifoQueue"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["InboundDeadLetterQueue", "Arn"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 1
    assert properties(cfn, "InboundDeadLetterQueue")["FifoQueue"] is True


def test_the_schedule_group_exists(cfn: dict[str, Any]) -> None:
    assert resource(cfn, "NudgeScheduleGroup")["Type"] == "AWS::Scheduler::ScheduleGroup"


# --- alarms and outputs ---------------------------------------------------------------------------


def test_a_message_in_any_dead_letter_queue_raises_an_alarm(cfn: dict[str, Any]) -> None:
    alarms = alarms_on(cfn, "ApproximateNumberOfMessagesVisible")
    watched = {alarm["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for alarm in alarms}
    assert watched == {"InboundDeadLetterQueue", "NudgeDeadLetterQueue", "ExportDeadLetterQueue"}
    for alarm in alarms:
        assert alarm["Dimensions"][0]["Name"] == "QueueName"
        assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_a_missed_decision_point_found_by_the_watchdog_raises_an_alarm(cfn: dict[str, Any]) -> None:
    (alarm,) = alarms_on(cfn, "decision_missed")
    assert alarm["Namespace"] == "SmsHabitCoach"
    # powertools' EMF metrics carry the function's service name as their one dimension
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "prompt_generator"}]
    assert env_of(cfn, "PromptGeneratorFunction")["POWERTOOLS_SERVICE_NAME"] == "prompt_generator"
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")


def test_every_function_has_an_errors_alarm(cfn: dict[str, Any]) -> None:
    watched = {
        dimension["Value"]["Ref"]
        for alarm in alarms_on(cfn, "Errors")
        if (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        for dimension in alarm["Dimensions"]
        if dimension["Name"] == "FunctionName"
    }
    assert watched == set(FUNCTIONS)


def test_alarms_notify_the_topic_that_exists_only_with_an_alarm_email(cfn: dict[str, Any]) -> None:
    assert resource(cfn, "AlarmTopic")["Condition"] == "HasAlarmEmail"
    assert resource(cfn, "AlarmEmailSubscription")["Condition"] == "HasAlarmEmail"
    assert cfn["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    for name, alarm in of_type(cfn, "AWS::CloudWatch::Alarm").items():
        assert alarm["Properties"]["AlarmActions"] == {
            "Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}], {"Ref": "AWS::NoValue"}]
        }, name


def test_outputs_give_the_urls_the_key_and_the_resource_names(cfn: dict[str, Any]) -> None:
    outputs = cfn["Outputs"]
    assert {
        "ApiBaseUrl",
        "TwilioWebhookUrl",
        "TwilioStatusCallbackUrl",
        "ApiKeyId",
        "TableName",
        "InboundQueueUrl",
        "DeadLetterQueueUrl",
        "ScheduleGroupName",
    } <= set(outputs)
    assert outputs["ApiKeyId"]["Value"] == {"Ref": "CoachApiApiKey"}
    assert (
        "get-api-key --api-key ${CoachApiApiKey} --include-value" in outputs["ApiKeyValueCommand"]["Value"]["Fn::Sub"]
    )
    assert outputs["TwilioWebhookUrl"]["Value"]["Fn::Sub"].endswith("/${Stage}/twilio/sms")
    assert outputs["TwilioStatusCallbackUrl"]["Value"]["Fn::Sub"].endswith("/${Stage}/twilio/status")


# --- samconfig.toml -------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "stage"), [("default", "dev"), ("dev", "dev"), ("prod", "prod")])
def test_samconfig_deploys_each_environment_to_its_own_stack(env: str, stage: str) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text(encoding="utf-8"))
    deploy = config[env]["deploy"]["parameters"]
    assert config[env]["global"]["parameters"]["stack_name"] == f"sms-habit-coach-{stage}"
    assert deploy["parameter_overrides"] == f"Stage={stage}"
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True
    assert deploy["confirm_changeset"] is (stage == "prod")
    assert config[env]["validate"]["parameters"]["lint"] is True


def test_the_conversation_functions_timing_comes_from_one_mappings_block(cfn: dict[str, Any]) -> None:
    raw = read_template()  # as written: the values are references to the Timing mapping
    timing = {"Fn::FindInMap": ["Timing", "Conversation"]}
    conversation = raw["Resources"]["ConversationFunction"]["Properties"]
    queue = raw["Resources"]["InboundQueue"]["Properties"]
    env = conversation["Environment"]["Variables"]
    resolved = properties(cfn, "ConversationFunction")
    assert resolved["Timeout"] == raw["Mappings"]["Timing"]["Conversation"]["FunctionTimeout"]
    assert conversation["Timeout"] == {"Fn::FindInMap": [*timing["Fn::FindInMap"], "FunctionTimeout"]}
    assert queue["VisibilityTimeout"] == {"Fn::FindInMap": [*timing["Fn::FindInMap"], "QueueVisibility"]}
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Fn::FindInMap": [*timing["Fn::FindInMap"], "MaxReceives"]}
    for variable, entry in [
        ("TURN_MARGIN_SECONDS", "TurnMargin"),
        ("TURN_START_SECONDS", "TurnStart"),
        ("REDELIVERY_BASE_SECONDS", "RedeliveryBase"),
        ("REDELIVERY_MAX_SECONDS", "RedeliveryMax"),
    ]:
        assert env[variable] == {"Fn::FindInMap": [*timing["Fn::FindInMap"], entry]}


def test_each_invocation_takes_one_record_so_no_participant_waits_behind_another(cfn: dict[str, Any]) -> None:
    mapping = queue_trigger_of(cfn, "ConversationFunction")
    assert mapping["Properties"]["BatchSize"] == 1


def test_llm_caps_and_the_study_budget_are_parameters(cfn: dict[str, Any]) -> None:
    for function_id in ("ConversationFunction", "PromptGeneratorFunction"):
        env = env_of(cfn, function_id)
        assert env["DAILY_LLM_CALLS"] == {"Ref": "DailyLlmCalls"}
        assert env["DAILY_LLM_TOKENS"] == {"Ref": "DailyLlmTokens"}
        assert env["STUDY_DAILY_LLM_TOKENS"] == {"Ref": "StudyDailyLlmTokens"}


@pytest.mark.parametrize("parameter", sorted(STUDY_TEXTS))
def test_each_study_text_is_a_parameter_that_reaches_the_functions_that_send_it(
    cfn: dict[str, Any], parameter: str
) -> None:
    variable, senders = STUDY_TEXTS[parameter]
    # Given the parameter: empty by default (the built-in text), overridden locally by the variable's name
    spec = cfn["Parameters"][parameter]
    assert (spec["Type"], spec["Default"]) == ("String", "")
    assert spec["MaxLength"] <= 1000
    assert env_name(parameter) == variable
    # Then exactly the functions that send the text are given it, from the parameter
    given = {function_id for function_id in FUNCTIONS if variable in env_of(cfn, function_id)}
    assert given == senders
    for function_id in senders:
        assert env_of(cfn, function_id)[variable] == {"Ref": parameter}


# --- exports --------------------------------------------------------------------------------------


def test_the_export_bucket_is_private_encrypted_tls_only_and_expires_exports(cfn: dict[str, Any]) -> None:
    bucket = properties(cfn, "ExportBucket")
    [rule] = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    [expiry] = bucket["LifecycleConfiguration"]["Rules"]
    assert (expiry["Status"], expiry["Prefix"]) == ("Enabled", "exports/")
    assert expiry["ExpirationInDays"] == {"Ref": "ExportRetentionDays"}
    assert cfn["Parameters"]["ExportRetentionDays"]["Default"] == 30
    [deny] = properties(cfn, "ExportBucketPolicy")["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_the_export_queue_outlasts_the_function_and_redrives_after_the_jobs_own_attempts(cfn: dict[str, Any]) -> None:
    timing = cfn["Mappings"]["Timing"]["Export"]
    queue = properties(cfn, "ExportQueue")
    assert queue["FifoQueue"] is True
    assert properties(cfn, "ExportDeadLetterQueue")["FifoQueue"] is True
    assert properties(cfn, "ExportFunction")["Timeout"] == timing["FunctionTimeout"] == 900
    assert timing["QueueVisibility"] > timing["FunctionTimeout"]
    # The job records itself failed on its last attempt, before the queue gives up on the record.
    assert timing["MaxReceives"] > int(timing["MaxAttempts"])
    assert queue["RedrivePolicy"]["maxReceiveCount"] == timing["MaxReceives"]
    assert env_of(cfn, "ExportFunction")["EXPORT_MAX_ATTEMPTS"] == timing["MaxAttempts"]
    mapping = queue_trigger_of(cfn, "ExportFunction")["Properties"]
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_api_knows_where_exports_go_and_how_long_their_urls_last(cfn: dict[str, Any]) -> None:
    env = env_of(cfn, "EnrollmentFunction")
    assert env["EXPORT_BUCKET"] == {"Ref": "ExportBucket"} == env_of(cfn, "ExportFunction")["EXPORT_BUCKET"]
    assert env["EXPORT_QUEUE_URL"] == {"Ref": "ExportQueue"}
    assert env["EXPORT_URL_SECONDS"] == {"Ref": "ExportUrlSeconds"}
    assert cfn["Parameters"]["ExportUrlSeconds"]["MaxValue"] == 7 * 24 * 3600  # SigV4's longest


def test_an_export_that_fails_every_attempt_raises_an_alarm(cfn: dict[str, Any]) -> None:
    (alarm,) = alarms_on(cfn, "export_failed")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "export"}]
    assert env_of(cfn, "ExportFunction")["POWERTOOLS_SERVICE_NAME"] == "export"


def test_an_attempt_lease_outlasts_every_function_that_sends(cfn: dict[str, Any]) -> None:
    """A text is saved as being sent; another run leaves it alone while its attempt may still be live
    (coach.domain.outbox.ATTEMPT_LEASE), so the lease must outlast the longest invocation that sends."""

    def timeout(function_id: str) -> int:
        value = properties(cfn, function_id)["Timeout"]  # the transform has applied the Globals
        if isinstance(value, dict):
            mapping, group, key = value["Fn::FindInMap"]
            value = cfn["Mappings"][mapping][group][key]
        return int(value)

    for function_id in ("ConversationFunction", "PromptGeneratorFunction"):  # the two that build an outbox
        assert timedelta(seconds=timeout(function_id)) < ATTEMPT_LEASE, function_id
