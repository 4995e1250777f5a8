"""One Logger, Metrics and Tracer for the whole package (service name from POWERTOOLS_SERVICE_NAME).

Logs never carry a full phone number, a message body or a secret: log ids and `mask_phone(...)`.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

F = TypeVar("F", bound=Callable[..., Any])

NAMESPACE = "SmsHabitCoach"


class _GuardedEMFProvider(AmazonCloudWatchEMFProvider):
    """powertools' EMF metrics with their one process-wide metric set guarded by a lock.

    On Lambda one invocation runs per process; the local stack runs several in threads of one process, where
    an invocation's flush could meet another's metric half-added and fail it."""

    _lock = threading.RLock()

    def add_metric(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_metric(*args, **kwargs)

    def add_dimension(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_dimension(*args, **kwargs)

    def add_metadata(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().add_metadata(*args, **kwargs)

    def flush_metrics(self, *args: Any, **kwargs: Any) -> None:
        with self._lock:
            super().flush_metrics(*args, **kwargs)

    def clear_metrics(self) -> None:
        with self._lock:
            super().clear_metrics()


def _metrics() -> Metrics:
    built = Metrics(namespace=NAMESPACE)
    built.provider = _GuardedEMFProvider(
        namespace=NAMESPACE,
        metric_set=built.metric_set,
        dimension_set=built.dimension_set,
        metadata_set=built.metadata_set,
        default_dimensions=built.default_dimensions,
    )
    return built


def _tracing_on() -> bool:
    # powertools' own rule: off with POWERTOOLS_TRACE_DISABLED, outside Lambda, and under SAM local
    return not Tracer._is_tracer_disabled()


class LazyTracer:
    """powertools' Tracer, built at the first traced call instead of at import.

    Building it imports the X-Ray SDK, whose recorder makes its own botocore clients: about a quarter of
    the webhook's import. With tracing off (the tests and the local stack) powertools' Tracer would only
    wrap each call in X-Ray's dummy segments, so a decorated function then runs as it is and the SDK is
    never loaded. The decorators are for plain (not async) functions, which is all the handlers use.
    """

    def __init__(self, build: Callable[[], Tracer] = Tracer, tracing_on: Callable[[], bool] = _tracing_on) -> None:
        self._build = build
        self._tracing_on = tracing_on
        self._tracer: Tracer | None = None
        self._decided = False
        self._lock = threading.Lock()

    @property
    def real(self) -> Tracer | None:
        """The Tracer (built now if it is the first use), or None while tracing is off."""
        if not self._decided:
            with self._lock:
                if not self._decided:
                    self._tracer = self._build() if self._tracing_on() else None
                    self._decided = True
        return self._tracer

    def capture_lambda_handler(
        self, handler: F | None = None, *, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Any:
        """powertools' decorator of the same name, applied at the first call."""
        if handler is None:
            return functools.partial(
                self.capture_lambda_handler, capture_response=capture_response, capture_error=capture_error
            )
        return self._traced(
            handler,
            lambda real: real.capture_lambda_handler(
                handler, capture_response=capture_response, capture_error=capture_error
            ),
        )

    def capture_method(
        self, method: F | None = None, *, capture_response: bool | None = None, capture_error: bool | None = None
    ) -> Any:
        """powertools' decorator of the same name, applied at the first call."""
        if method is None:
            return functools.partial(
                self.capture_method, capture_response=capture_response, capture_error=capture_error
            )
        return self._traced(
            method,
            lambda real: real.capture_method(capture_response=capture_response, capture_error=capture_error)(method),
        )

    def _traced(self, function: F, trace: Callable[[Tracer], Callable[..., Any]]) -> F:
        chosen: list[Callable[..., Any]] = []  # the function to call, once the first call has chosen it

        @functools.wraps(function)
        def call(*args: Any, **kwargs: Any) -> Any:
            if not chosen:
                real = self.real
                chosen.append(function if real is None else trace(real))
            return chosen[0](*args, **kwargs)

        return call  # type: ignore[return-value]


logger = Logger()
metrics = _metrics()
tracer = LazyTracer()
