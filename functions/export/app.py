"""Exports from their FIFO queue: one job per message, written to S3 (coach.services.exports).

Thin handler: powertools' FIFO batch processor, one service call per record. A failed attempt comes back
after a minute, not the queue's visibility timeout (which must outlast the function's 15 minutes); the job
counts its attempts and the last allowed one records it failed, so a broken export ends with a reason
instead of circling. A record that still fails lands in the export dead-letter queue, which has an alarm.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.adapters.sqs_queue import SqsRedelivery
from coach.bootstrap import export_service
from coach.observability import logger, metrics, tracer

RETRY_AFTER_SECONDS = 60
_redelivery = SqsRedelivery()  # its client is built on first use


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    export_id = str(json.loads(record.body)["export_id"])
    logger.set_correlation_id(export_id)
    logger.thread_safe_append_keys(export_id=export_id)
    try:
        job = export_service().run(export_id)
    except Exception:
        logger.exception("export attempt failed; it comes back in %s s", RETRY_AFTER_SECONDS)
        try:
            _redelivery.return_after(record.event_source_arn, record.receipt_handle, RETRY_AFTER_SECONDS)
        except Exception:  # the queue's own visibility timeout brings it back anyway
            logger.exception("could not shorten the record's visibility timeout")
        raise
    logger.info("export finished", extra={"status": job.status.value, "participants": job.participants})


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    processor = SqsFifoPartialProcessor()
    processor.raise_on_entire_batch_failure = False  # the failed record comes back; the DLQ's alarm says when not
    response: dict[str, Any] = process_partial_response(  # type: ignore[assignment]
        event=event, record_handler=handle_record, processor=processor, context=context
    )
    return response
