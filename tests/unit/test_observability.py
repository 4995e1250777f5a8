"""The package's metrics: EMF lines with the function's service as their dimension (what the alarms watch); its
tracer, built at the first traced call (never at import, never with tracing off)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools import Tracer
from aws_lambda_powertools.metrics import MetricUnit

from coach.observability import LazyTracer, metrics


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


# -- the tracer, built at the first traced call --------------------------------------------------------------


@dataclass
class RecordedSegment:
    name: str
    annotations: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def put_annotation(self, key: str, value: Any) -> None:
        self.annotations[key] = value

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None:
        self.metadata[key] = value

    def add_exception(self, exception: BaseException, stack: Any, remote: bool = False) -> None:
        self.metadata["exception"] = exception


@dataclass
class RecordingProvider:
    """Stands in for the X-Ray recorder under powertools' real Tracer: records the subsegments opened."""

    segments: list[RecordedSegment] = field(default_factory=list)

    @contextlib.contextmanager
    def in_subsegment(self, name: str | None = None, **kwargs: Any) -> Iterator[RecordedSegment]:
        segment = RecordedSegment(str(name))
        self.segments.append(segment)
        yield segment

    def in_subsegment_async(self, name: str | None = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    def put_annotation(self, key: str, value: Any) -> None: ...

    def put_metadata(self, key: str, value: Any, namespace: str = "default") -> None: ...

    def patch(self, modules: Any) -> None: ...

    def patch_all(self) -> None: ...


@pytest.fixture
def provider() -> Iterator[RecordingProvider]:
    recording = RecordingProvider()
    yield recording
    Tracer._reset_config()  # powertools keeps a Tracer's settings in class state, shared by every Tracer


def lazy_on(provider: RecordingProvider, builds: list[Tracer]) -> LazyTracer:
    """A LazyTracer with tracing on, whose real Tracer records into `provider`; `builds` lists each built."""

    def build() -> Tracer:
        built = Tracer(service="webhook", disabled=False, auto_patch=False, provider=provider)  # type: ignore[arg-type]
        builds.append(built)
        return built

    return LazyTracer(build=build, tracing_on=lambda: True)


def test_the_tracer_is_built_at_the_first_traced_call_and_then_traces_every_call(provider: RecordingProvider) -> None:
    # Given a handler and a method decorated at import, with tracing on
    builds: list[Tracer] = []
    tracer = lazy_on(provider, builds)

    @tracer.capture_method
    def lookup(key: str) -> str:
        return key.upper()

    @tracer.capture_lambda_handler
    def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        return {"found": lookup(event["key"])}

    assert builds == []  # decorating builds nothing: importing a handler loads no X-Ray SDK
    # When the handler is invoked twice
    first = lambda_handler({"key": "a"}, None)
    second = lambda_handler({"key": "b"}, None)
    # Then one Tracer served both invocations, and each ran inside its handler's and its method's subsegments
    assert (first, second) == ({"found": "A"}, {"found": "B"})
    assert len(builds) == 1
    names = [s.name for s in provider.segments]
    assert names[0::2] == ["## lambda_handler"] * 2
    assert all(name.startswith(f"## {lookup.__module__}.") and name.endswith(".lookup") for name in names[1::2])
    assert len(names) == 4
    handler_segment = provider.segments[0]
    assert handler_segment.annotations["Service"] == "webhook"
    assert handler_segment.metadata["lambda_handler response"] == {"found": "A"}


def test_a_failing_handler_is_traced_with_its_error_and_the_error_still_raised(provider: RecordingProvider) -> None:
    tracer = lazy_on(provider, [])

    @tracer.capture_lambda_handler(capture_response=False)
    def lambda_handler(event: dict[str, Any], context: object) -> None:
        raise ValueError("broken record")

    with pytest.raises(ValueError, match="broken record"):
        lambda_handler({}, None)

    [segment] = provider.segments
    assert isinstance(segment.metadata["lambda_handler error"], ValueError)


def test_with_tracing_off_the_function_runs_as_it_is_and_no_tracer_is_built() -> None:
    # Given tracing off (POWERTOOLS_TRACE_DISABLED, as in the tests and the local stack)
    builds: list[str] = []

    def build() -> Tracer:
        builds.append("built")
        raise AssertionError("no Tracer is built with tracing off")

    tracer = LazyTracer(build=build, tracing_on=lambda: False)

    @tracer.capture_method(capture_response=False)
    def double(value: int) -> int:
        return value * 2

    @tracer.capture_lambda_handler
    def lambda_handler(event: int, context: object) -> int:
        if event < 0:
            raise ValueError("negative")
        return double(event)

    # When it is called, and fails, and is called again
    assert lambda_handler(2, None) == 4
    with pytest.raises(ValueError, match="negative"):
        lambda_handler(-1, None)
    assert lambda_handler(3, None) == 6
    # Then it answered as the undecorated function would, and the tracer was never built
    assert builds == []
    assert tracer.real is None
    assert lambda_handler.__name__ == "lambda_handler"  # the decorators keep the function's name


def test_the_package_tracer_follows_powertools_rule_for_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []

    def build() -> Tracer:
        built.append("tracer")
        return Tracer  # type: ignore[return-value]  # stands for one: building a real one loads the X-Ray SDK

    # The suite runs with POWERTOOLS_TRACE_DISABLED=true (tests/conftest.py): off
    assert LazyTracer(build=build).real is None
    # On Lambda with tracing on: the real Tracer is built, once
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    tracer = LazyTracer(build=build)
    assert tracer.real is tracer.real is not None
    assert built == ["tracer"]
