"""Conversation turns from the FIFO queue: one participant's work at a time, in order.

Thin handler: powertools' FIFO batch processor (a failure skips the rest of that participant's group,
so order holds, and is reported per message), one service call per record.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.bootstrap import conversation_service
from coach.domain.work import ConversationWork
from coach.observability import logger, metrics, tracer

processor = SqsFifoPartialProcessor(skip_group_on_error=True)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    work = ConversationWork.model_validate_json(record.body)
    logger.set_correlation_id(work.deduplication_id())
    logger.append_keys(participant_id=work.participant_id, work_kind=work.kind.value)
    conversation_service().handle(work)


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event, record_handler=handle_record, processor=processor, context=context
    )
    return response
