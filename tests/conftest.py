"""Settings every test needs: no real AWS account, region or tracing, whatever the shell has."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

for name, value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "SmsHabitCoach",
    "POWERTOOLS_SERVICE_NAME": "tests",
    "POWERTOOLS_DEV": "false",
}.items():
    os.environ[name] = value
os.environ.pop("AWS_ENDPOINT_URL", None)  # a local stack's endpoint must not leak into moto tests
os.environ.pop("AWS_PROFILE", None)

# The moto the tests use is the local stack's: as fast, and answering the same (tests/integration/test_moto_speed.py)
from infra.local import moto_speed  # noqa: E402

moto_speed.install()

# botocore's service models are parsed once per process, not once per test's new session
from tests.support import botocore_models  # noqa: E402

botocore_models.install()

# Hypothesis: `dev` (the default) draws new examples every run; CI (HYPOTHESIS_PROFILE=ci, set by .ci/run) draws
# the same ones every run, so a red build is a defect that reproduces, never a draw; `thorough` draws ten times
# as many (for a change to the parsers). A test's own @settings(max_examples=...) still sets its budget.
settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("thorough", deadline=None, max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SUITE_RECORD = Path(__file__).resolve().parent.parent / ".pytest_cache" / "suite-last.json"
_started = time.monotonic()


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """What the functions log, formatted as in Lambda (powertools' JSON formatter)."""
    from coach.observability import logger

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules marked runs_first go first (the rest keep their order): pytest-xdist hands out modules in
    this order, so the longest starts at once beside the others instead of last, alone."""
    items.sort(key=lambda item: item.get_closest_marker("runs_first") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """How long the last run of the whole suite took, and in how many processes: `make bench` prints it against
    its goal (a time measured here, never asserted by a test)."""
    config = session.config
    if hasattr(config, "workerinput") or config.args_source is not pytest.Config.ArgsSource.TESTPATHS:
        return  # an xdist worker, or a run of the files named
    if config.getoption("keyword") or config.getoption("markexpr"):
        return
    SUITE_RECORD.parent.mkdir(exist_ok=True)
    record = {
        "seconds": round(time.monotonic() - _started, 1),
        "workers": config.getoption("numprocesses", None) or 0,
        "tests": session.testscollected,
        "failed": session.testsfailed,
        "exit_status": int(exitstatus),
        "cpus": os.cpu_count(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    SUITE_RECORD.write_text(json.dumps(record) + "\n")
