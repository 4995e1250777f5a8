"""The environment the handlers see locally: what the template gives each function, resolved against
local values, plus what makes every boto3 client in this process talk to moto and nothing else."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from typing import Any

from infra.local.config import TwilioAccount
from infra.local.intrinsics import Intrinsics, TemplateError
from infra.template import resources_of_type

# powertools reads its variables when a handler module builds its Logger, Metrics and decorators,
# i.e. at import: each function's own POWERTOOLS_* values are in place while its module is imported
# (see functions.py), so these may differ between functions. The shared value is only a fallback.
PER_FUNCTION_PREFIX = "POWERTOOLS_"
LOCAL_SERVICE_NAME = "local"

# Anything that could send a client elsewhere than moto, or pick up a real identity.
_AWS_VARIABLES_TO_DROP = re.compile(
    r"^AWS_(PROFILE|DEFAULT_PROFILE|SESSION_TOKEN|SECURITY_TOKEN|ROLE_ARN|ROLE_SESSION_NAME"
    r"|WEB_IDENTITY_TOKEN_FILE|CONTAINER_CREDENTIALS_.*|CONTAINER_AUTHORIZATION_TOKEN.*"
    r"|ENDPOINT_URL_.*|IGNORE_CONFIGURED_ENDPOINT_URLS|USE_FIPS_ENDPOINT|USE_DUALSTACK_ENDPOINT)$"
)


def env_name(parameter: str) -> str:
    """The variable that overrides a template parameter locally: PublicBaseUrl -> PUBLIC_BASE_URL."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", parameter).upper()


# What the local stack runs with unless the shell says otherwise. The fake Twilio has no send rate to keep
# to; SEND_RATE=1 NUDGE_CONCURRENCY=1 paces as on AWS, in real seconds (the prompt generator's invocations
# share one process, so one pacer, where AWS gives each container its own). A few invocations at once are
# plenty in one process (each is a thread; each of the conversation function's is a queue poller).
LOCAL_PARAMETERS = {"SendRate": "1000", "WebhookConcurrency": "10", "ConversationConcurrency": "10"}


def parameter_values(
    template: Mapping[str, Any], shell: Mapping[str, str], local_defaults: Mapping[str, str]
) -> dict[str, str]:
    """Each parameter's value: the shell's variable of the same name wins, then the local default (the
    caller's, else LOCAL_PARAMETERS), then the template's Default. The variables are the ones an operator
    would set in AWS."""
    local_defaults = {**LOCAL_PARAMETERS, **local_defaults}
    values: dict[str, str] = {}
    for name, spec in template.get("Parameters", {}).items():
        from_shell = shell.get(env_name(name), "")
        if from_shell:
            values[name] = from_shell
        elif name in local_defaults:
            values[name] = local_defaults[name]
        elif "Default" in spec:
            default = spec["Default"]
            values[name] = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        else:
            raise TemplateError(f"parameter {name} has no Default; set {env_name(name)}")
    return values


def function_environment(intrinsics: Intrinsics, logical_id: str) -> dict[str, str]:
    """Globals.Function.Environment.Variables merged with the function's own, evaluated."""
    template = intrinsics.template
    global_vars = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    props = template["Resources"][logical_id].get("Properties", {})
    own_vars = props.get("Environment", {}).get("Variables", {})
    evaluated = intrinsics.evaluate({**global_vars, **own_vars})
    return {name: _as_env_value(value, f"{logical_id} {name}") for name, value in evaluated.items()}


def function_environments(intrinsics: Intrinsics) -> dict[str, dict[str, str]]:
    functions = resources_of_type(dict(intrinsics.template), "AWS::Serverless::Function")
    return {logical_id: function_environment(intrinsics, logical_id) for logical_id in functions}


def shared_environment(environments: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The union of the functions' variables, for the one process they all run in.

    Two functions giving one variable different values would make one of them run misconfigured,
    so that is an error, except for powertools' variables, which each function gets at import time.
    """
    shared: dict[str, str] = {}
    owner: dict[str, str] = {}
    for logical_id, variables in environments.items():
        for name, value in variables.items():
            if name in shared and shared[name] != value:
                if name.startswith(PER_FUNCTION_PREFIX):
                    continue
                raise TemplateError(
                    f"{name} is {shared[name]!r} for {owner[name]} but {value!r} for {logical_id}; "
                    "the local stack runs every function in one process and needs one value"
                )
            shared[name], owner[name] = value, logical_id
    shared["POWERTOOLS_SERVICE_NAME"] = LOCAL_SERVICE_NAME
    return shared


def aws_client_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """Fake credentials and moto's endpoint, so no request can reach (or be signed for) real AWS.

    S3 needs nothing more: botocore sends every service, S3 included, to AWS_ENDPOINT_URL, and addresses
    buckets by path when the endpoint's host is an IP address (http://127.0.0.1:<port>/<bucket>/<key>), so
    presigned URLs point at moto's server too. There is no variable for S3's addressing style (it lives only
    in the config file, which is /dev/null here); a client built with Config(s3={"addressing_style":
    "virtual"}) would ask for <bucket>.127.0.0.1 and fail, so the handlers keep botocore's default."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ENDPOINT_URL": endpoint_url,
        # A developer's ~/.aws files may name profiles, SSO or per-service endpoints: ignore them.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def twilio_environment(account: TwilioAccount, *, api_base_url: str, public_base_url: str) -> dict[str, str]:
    """Point the handlers' Twilio client at the fake Twilio with its account. These win over the template's
    TWILIO_SECRET_NAME (direct credentials come first), so no secret is needed locally."""
    return {
        "TWILIO_ACCOUNT_SID": account.account_sid,
        "TWILIO_AUTH_TOKEN": account.auth_token,
        "TWILIO_FROM_NUMBER": account.from_number,
        "TWILIO_API_BASE_URL": api_base_url,
        "STATUS_CALLBACK_URL": f"{public_base_url}/twilio/status",
    }


def apply(environ: MutableMapping[str, str], variables: Mapping[str, str]) -> None:
    """Write `variables` into `environ` after dropping what could lead a client away from moto."""
    for name in [name for name in environ if _AWS_VARIABLES_TO_DROP.match(name)]:
        del environ[name]
    environ.update(variables)


def _as_env_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    raise TemplateError(f"{where}: an environment variable must be a string, got {value!r}")
