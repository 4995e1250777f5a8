"""Conversation turns from the FIFO queue: one participant's work at a time, in order.

Thin handler: powertools' FIFO batch processor (a failure skips the rest of that participant's group, so
order holds, and is reported per message), one service call per record. Each record gets the invocation's
time left (minus a margin for saving and sending) as the LLM's deadline; one too late to start goes back to
the queue at once, and one that fails comes back after a short backoff, not the queue's whole visibility
timeout (coach.services.redelivery). The template gives the function one record per invocation, so no
participant waits behind another's turn.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.bootstrap import conversation_service, redelivery
from coach.domain.work import ConversationWork
from coach.observability import logger, metrics, tracer
from coach.services.redelivery import InvocationBudget, NotStarted
from coach.settings import conversation_settings


@tracer.capture_method
def handle_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    work = ConversationWork.model_validate_json(record.body)
    logger.set_correlation_id(work.deduplication_id())
    # Per thread: the local stack runs several invocations in one process, as Lambda runs several containers.
    logger.thread_safe_append_keys(participant_id=work.participant_id, work_kind=work.kind.value)
    settings = conversation_settings()
    budget = InvocationBudget(
        lambda: lambda_context.get_remaining_time_in_millis() / 1000,
        margin=settings.turn_margin_seconds,
        start_at_least=settings.turn_start_seconds,
    )
    policy, queue = redelivery()
    if not budget.can_start():
        queue.return_after(record.event_source_arn, record.receipt_handle, 0)
        metrics.add_metric(name="RecordNotStarted", unit=MetricUnit.Count, value=1)
        raise NotStarted(f"{budget.remaining():.1f} s left: returned to the queue")
    try:
        conversation_service().handle(work, time_left=budget.time_left)
    except Exception as exc:
        delay = policy.delay(int(record.attributes.approximate_receive_count or 1))
        logger.warning("turn failed, back in %s s", delay, extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="TurnFailed", unit=MetricUnit.Count, value=1)
        try:
            queue.return_after(record.event_source_arn, record.receipt_handle, delay)
        except Exception:  # the queue's own visibility timeout brings it back anyway
            logger.exception("could not shorten the record's visibility timeout")
        raise


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = SqsFifoPartialProcessor(skip_group_on_error=True)  # per invocation: it holds the batch's results
    # A batch whose every record failed is reported like any other, not raised: the records come back on
    # their own backoff, and the DLQ's alarm, not the errors alarm, says when retries ran out.
    processor.raise_on_entire_batch_failure = False
    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event, record_handler=handle_record, processor=processor, context=context
    )
    return response
