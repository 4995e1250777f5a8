"""The retention job, every hour from its schedule (coach.services.retention): deletions left unfinished are
carried on, and once a day what is older than RetentionDays moves to the archive.

Thin handler: one service call within the invocation's time (a margin kept for the last writes). What the run
did is logged and returned; a run that raises is retried by Lambda and alarmed on, and the next hour's run
carries on anyway.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.bootstrap import retention_service
from coach.observability import logger, metrics, tracer

MARGIN_SECONDS = 20.0  # of the invocation's time: saving where the pass stands, and the report


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS

    run = retention_service().run(time_left)
    return run.model_dump(mode="json")
