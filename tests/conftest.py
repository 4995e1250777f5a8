"""Settings every test needs: no real AWS account, region or tracing, whatever the shell has."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator

import pytest

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
