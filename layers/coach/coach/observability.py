"""One Logger, Metrics and Tracer for the whole package (service name from POWERTOOLS_SERVICE_NAME).

Logs never carry a full phone number, a message body or a secret: log ids and `mask_phone(...)`.
"""

from __future__ import annotations

import threading
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

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


logger = Logger()
metrics = _metrics()
tracer = Tracer()
