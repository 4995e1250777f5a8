"""Composition root: real adapters by default; tests pass fakes to the build_* functions."""

from __future__ import annotations

from functools import cache

from aws_lambda_powertools.metrics import MetricUnit

from coach.adapters.clock import SystemClock
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.sqs_queue import SqsWorkQueue
from coach.observability import logger, metrics
from coach.ports import Clock, ParticipantStore, WorkQueue
from coach.services.enrollment import EnrollmentService
from coach.settings import EnrollmentSettings, enrollment_settings


def _report_queue_failure(kind: str, exc: Exception) -> None:
    # The participant is stored; only the queued work is missing. POST .../reset queues it again.
    logger.error("could not queue conversation work", extra={"work_kind": kind, "error_type": type(exc).__name__})
    metrics.add_metric(name="WorkNotQueued", unit=MetricUnit.Count, value=1)


def build_enrollment_service(
    settings: EnrollmentSettings,
    *,
    store: ParticipantStore | None = None,
    queue: WorkQueue | None = None,
    clock: Clock | None = None,
) -> EnrollmentService:
    return EnrollmentService(
        store=store or DynamoDBParticipantStore(settings.table_name),
        queue=queue or SqsWorkQueue(settings.queue_url),
        clock=clock or SystemClock(),
        default_phone_region=settings.default_phone_region,
        default_timezone=settings.default_timezone,
        on_queue_failure=_report_queue_failure,
    )


@cache
def enrollment_service() -> EnrollmentService:
    """The service of the enrollment function, built once per Lambda container."""
    return build_enrollment_service(enrollment_settings())


def forget_built_services() -> None:
    """Drop what was built, so the next call reads the environment again (tests, the local stack)."""
    enrollment_service.cache_clear()
    enrollment_settings.cache_clear()
