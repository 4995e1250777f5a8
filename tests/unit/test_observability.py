"""The package's metrics: EMF lines with the function's service as their dimension (what the alarms watch)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from aws_lambda_powertools.metrics import MetricUnit

from coach.observability import metrics


def flushed() -> list[dict[str, object]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics.flush_metrics()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def test_a_metric_carries_the_service_dimension_the_alarms_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh invocation: nothing left over from another test's handler (its metrics and dimensions).
    metrics.clear_metrics()
    monkeypatch.setattr(metrics.provider, "service", "prompt_generator")
    metrics.add_metric(name="decision_missed", unit=MetricUnit.Count, value=1)

    [line] = flushed()

    assert line["service"] == "prompt_generator"
    assert line["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]  # type: ignore[index]
    assert line["decision_missed"] == [1.0]
