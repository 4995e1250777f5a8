"""Each function starts light: importing its handler module loads none of the heavy modules it does not need
at start (the X-Ray SDK, openai, twilio's REST client, powertools' parameters and AppConfig, pydantic-settings).
The tracer, the LLM client and the Twilio REST client load at their first use. One fresh interpreter per
function."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Never at any function's start: each costs a tenth of a second or more, and none is needed to start.
NEVER_AT_START = (
    "aws_xray_sdk",  # powertools' Tracer builds it; coach.observability builds the Tracer at the first traced call
    "openai",  # coach.adapters.openai_llm, at the first LLM call
    "httpx",  # openai's HTTP client
    "twilio.rest",  # coach.adapters.twilio_sms, at the first send
    "requests",  # twilio's REST client's HTTP
    "aws_lambda_powertools.utilities.parameters",  # secrets: one GetSecretValue (coach.adapters.secrets)
    "aws_lambda_powertools.utilities.parameters.appconfig",
    "pydantic_settings",  # coach.settings reads the environment itself
    "dotenv",
)

# Per function: what it must not load at start besides the above, and what shows the import really ran.
FUNCTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # The webhook checks signatures with twilio's validator alone (no twilio.rest), looks Twilio's E.164 numbers
    # up as they are (phonenumbers only for another sender), and enrolls only with AUTO_ENROLL.
    "webhook": (
        (
            "aws_lambda_powertools.utilities.batch",
            "phonenumbers",
            "coach.services.enrollment",
            "coach.domain.arms",
            "coach.domain.exports",
            "coach.domain.chat",
        ),
        ("twilio.request_validator", "coach.bootstrap"),
    ),
    # The conversation function sends through twilio's REST client and asks the LLM: both at first use.
    "conversation": (("twilio", "aws_lambda_powertools.event_handler"), ("coach.bootstrap",)),
    "prompt_generator": (("twilio", "aws_lambda_powertools.event_handler"), ("coach.bootstrap",)),
    "enrollment": (("twilio",), ("aws_lambda_powertools.event_handler", "coach.bootstrap")),
    "export": (("twilio", "aws_lambda_powertools.event_handler"), ("coach.bootstrap",)),
    "retention": (("twilio", "aws_lambda_powertools.event_handler"), ()),
}


def test_every_function_has_its_list() -> None:
    functions = {path.parent.name for path in (ROOT / "functions").glob("*/app.py")}
    assert functions == set(FUNCTIONS)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_a_function_loads_no_heavy_module_at_start(function: str) -> None:
    banned, expected = FUNCTIONS[function]
    watched = sorted({*NEVER_AT_START, *banned, *expected})
    # Given a fresh interpreter, with tracing on as on AWS (the Tracer must still not be built at import)
    code = (
        f"import json, sys, functions.{function}.app; "
        f"print(json.dumps([name for name in {watched!r} if name in sys.modules]))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    env["LAMBDA_TASK_ROOT"] = str(ROOT / "functions" / function)
    # When it imports the function's handler module
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    # Then none of the heavy modules was loaded, and the modules of its start were
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert sorted(loaded & {*NEVER_AT_START, *banned}) == []
    assert sorted(set(expected) - loaded) == []
