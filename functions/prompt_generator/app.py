"""Daily nudges, follow-up reminders and delayed transitions, fired by EventBridge Scheduler.

Thin handler: the schedule's input is the event; one service call. A failure raises, so Scheduler's
retry policy tries again; the firing's key makes a repeat harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.bootstrap import nudge_service
from coach.observability import logger, metrics, tracer
from coach.services.nudges import ScheduledEvent
from coach.settings import prompt_generator_settings


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    scheduled = ScheduledEvent.model_validate(event)
    logger.thread_safe_append_keys(participant_id=scheduled.participant_id, firing=scheduled.kind)
    # The prompt generator schedules its own one-time reminders: it targets itself.
    margin = prompt_generator_settings().turn_margin_seconds
    nudge_service(context.invoked_function_arn).fire(
        scheduled, time_left=lambda: context.get_remaining_time_in_millis() / 1000 - margin
    )
    return {"participant_id": scheduled.participant_id, "kind": scheduled.kind}
