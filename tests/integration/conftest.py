from __future__ import annotations

from collections.abc import Iterator

import pytest

from coach.bootstrap import forget_built_services
from tests.support.aws import Resources, template_resources


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Resources]:
    """moto with the template's resources, and the environment the functions get from the template."""
    with template_resources() as resources:
        monkeypatch.setenv("TABLE_NAME", resources.table_name)
        monkeypatch.setenv("QUEUE_URL", resources.queue_url)
        monkeypatch.setenv("DEFAULT_PHONE_REGION", "US")
        monkeypatch.setenv("DEFAULT_TIMEZONE", "America/New_York")
        forget_built_services()
        yield resources
        forget_built_services()
