from __future__ import annotations

from collections.abc import Iterator

import pytest

from coach.bootstrap import forget_built_services
from tests.support.aws import Resources, template_resources
from tests.support.twilio import ServedFake, serve_fake_twilio


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """moto with the template's resources, and the environment the functions get from the template."""
    with template_resources() as resources:
        monkeypatch.setenv("TABLE_NAME", resources.table_name)
        monkeypatch.setenv("QUEUE_URL", resources.queue_url)
        monkeypatch.setenv("DEFAULT_PHONE_REGION", "US")
        monkeypatch.setenv("DEFAULT_TIMEZONE", "America/New_York")
        monkeypatch.setenv("SCHEDULE_GROUP_NAME", resources.schedule_group)
        monkeypatch.setenv("SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/coach-test-scheduler")
        monkeypatch.setenv("PROMPT_GENERATOR_ARN", "arn:aws:lambda:us-east-1:123456789012:function:coach-test-pg")
        forget_built_services()
        yield resources
        forget_built_services()


@pytest.fixture(scope="module")
def served_once() -> Iterator[ServedFake]:
    """The fake Twilio on a real port, once per test module (starting it costs a thread and a socket)."""
    with serve_fake_twilio() as served:
        yield served


@pytest.fixture
def served(served_once: ServedFake) -> ServedFake:
    """The module's fake Twilio, idle, with no messages and no faults left by the previous test."""
    assert served_once.fake.wait_idle()
    served_once.fake.forget_messages()
    served_once.fake.clear_faults()
    return served_once
