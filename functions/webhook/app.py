"""Twilio webhooks: POST /twilio/sms (a text arrives) and POST /twilio/status (a delivery callback).

Thin handler: the signature is checked first (coach.adapters.twilio_signature: 403, nothing stored), one
service call per route (coach.services.inbound), and the answer is TwiML at once: the coached reply comes
later from the conversation function. Never imports openai or twilio.rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any
from xml.sax.saxutils import escape

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from coach.adapters.twilio_signature import ForgedWebhook
from coach.bootstrap import webhook_service, webhook_verifier
from coach.domain.errors import InvalidField
from coach.http import error_response
from coach.observability import logger, metrics, tracer

TWIML = "text/xml"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

app = APIGatewayRestResolver()


def twiml(reply: str | None) -> Response[str]:
    """Empty TwiML (Twilio sends nothing), or one <Message> Twilio sends back to the sender."""
    body = EMPTY_TWIML
    if reply is not None:
        body = f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(reply)}</Message></Response>'
    return Response(status_code=HTTPStatus.OK.value, content_type=TWIML, body=body)


def _signed_form() -> Mapping[str, str]:
    fields = webhook_verifier()(app.current_event.raw_event)
    logger.set_correlation_id(fields.get("MessageSid", "")[:64] or None)
    return fields


@app.post("/twilio/sms")
def inbound_sms() -> Response[str]:
    result = webhook_service().receive_sms(_signed_form())
    logger.info(
        "text received",
        extra={
            "outcome": result.outcome.value,
            "participant_id": result.participant_id,
            "duplicate": result.duplicate,
            "sender": result.sender,
            "replied": result.reply is not None,
        },
    )
    metrics.add_metric(name=f"Inbound{result.outcome.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    if result.duplicate:
        metrics.add_metric(name="InboundDuplicate", unit=MetricUnit.Count, value=1)
    return twiml(result.reply)


@app.post("/twilio/status")
def delivery_status() -> Response[str]:
    # The callback URL's query names our outbox item. Read it as the signature check read it (the decoded
    # multi-value form), so what is checked is what is used.
    query = app.current_event.multi_value_query_string_parameters or {}
    reference = {name: values[-1] for name, values in query.items() if values}
    result = webhook_service().record_delivery_status(_signed_form(), reference)
    logger.info(
        "delivery status",
        extra={"participant_id": result.participant_id, "updated": result.updated, "opted_out": result.opted_out},
    )
    metrics.add_metric(
        name="DeliveryStatusUpdated" if result.updated else "DeliveryStatusIgnored", unit=MetricUnit.Count, value=1
    )
    if result.opted_out:
        metrics.add_metric(name="OptedOutByCarrier", unit=MetricUnit.Count, value=1)
    return twiml(None)


@app.exception_handler(ForgedWebhook)
def _forged(exc: ForgedWebhook) -> Response[str]:
    logger.warning("webhook rejected", extra={"reason": exc.reason, "path": app.current_event.path})
    metrics.add_metric(name="SignatureRejected", unit=MetricUnit.Count, value=1)
    return Response(status_code=HTTPStatus.FORBIDDEN.value, content_type=content_types.TEXT_PLAIN, body="Forbidden")


@app.exception_handler(InvalidField)
def _invalid(exc: InvalidField) -> Response[Any]:
    logger.warning("webhook form is incomplete", extra={"field": exc.field})
    return error_response(
        HTTPStatus.BAD_REQUEST, "The Twilio form is not valid", [{"field": exc.field, "message": exc.message}]
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
