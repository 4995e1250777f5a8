"""Researchers' API: enroll, list, inspect, update, reset and delete participants; read transcripts,
decision points, events and the audit trail; send one-off messages; ask for exports.

Thin handler: powertools parses and validates, one service call per route, domain errors map to
HTTP statuses in coach.http.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseContentModel
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from coach.bootstrap import enrollment_service, export_service, researcher, researcher_messages
from coach.domain.audit import Actor, AuditEntry
from coach.domain.decisions import DecisionPoint
from coach.domain.deletion import Deletion
from coach.domain.exports import ExportJob, ExportRequest, ExportView
from coach.domain.message import Message, ResearchEvent
from coach.domain.participant import Participant, ParticipantStatus
from coach.http import csv_body_as_json, error_responses, guard_json_request, register_error_handlers
from coach.observability import logger, metrics, tracer
from coach.services.bulk_enrollment import MAX_ROWS, BulkEnroll, BulkEnrollment, BulkResult
from coach.services.deletion import within
from coach.services.enrollment import ConversationView, EnrollParticipant, ParticipantDetail, UpdateParticipant
from coach.services.messages import Broadcast, MessageQueued, SendMessage
from coach.settings import enrollment_settings

BULK_PATH = "/conversation/participants/bulk"
BULK_MAX_BODY_BYTES = 256_000  # BulkEnroll.csv's own limit: MAX_ROWS rows of about 1,200 bytes
# A DELETE removes a long history for this long, then answers 202 (the researcher does not wait for 3,000 items).
DELETE_SECONDS = 8.0
DELETE_MARGIN_SECONDS = 3.0  # of the invocation's time: counting what is left and answering

API_TITLE = "SMS Habit Coach - researchers' API"
API_VERSION = "1.0.0"

app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app)

ParticipantId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The participant's id")
]
Limit = Annotated[int, Query(ge=1, le=100, description="Items per page")]
NextToken = Annotated[str | None, Query(max_length=2048, description="`next_token` of the previous page")]


class ParticipantPage(BaseModel):
    items: list[Participant]
    next_token: str | None = None


class MessagePage(BaseModel):
    items: list[Message]
    next_token: str | None = None


class DecisionPage(BaseModel):
    items: list[DecisionPoint]
    next_token: str | None = None


class EventPage(BaseModel):
    items: list[ResearchEvent]
    next_token: str | None = None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_token: str | None = None


class ExportPage(BaseModel):
    items: list[ExportJob]
    next_token: str | None = None


def _actor() -> Actor:
    """The researcher behind this request (their API key's name goes on the audit trail)."""
    identity = app.current_event.request_context.identity
    return researcher(identity.api_key_id, identity.source_ip)


def _json(status: int, body: BaseModel) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body.model_dump(mode="json"))


@app.post(
    "/conversation/participants",
    summary="Enroll a participant",
    description="Creates the participant in intake and queues the coach's greeting. 409 when the number is taken.",
    responses={
        201: OpenAPIResponse(
            description="Enrolled",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=Participant)},
        ),
        **error_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.CONFLICT,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
        ),
    },
)
def create_participant(body: Annotated[EnrollParticipant, Body()]) -> Response[Participant]:
    participant = enrollment_service().enroll(body, _actor())
    logger.info("participant enrolled", extra={"participant_id": participant.id})
    return _json(201, participant)


@app.post(
    BULK_PATH,
    summary="Enroll many participants: a CSV (text/csv, or JSON {csv}) or a JSON list",
    description=(
        "Each row is validated and enrolled on its own (audited and greeted as one enrollment): the answer "
        "reports every row, created, exists (that number is enrolled: its id) or error (what to fix). A bad "
        f"row does not stop the good ones; sending the same rows again enrolls nobody twice. At most {MAX_ROWS} rows. "
        "Rows not reached before the request's time runs out are answered not_attempted: send them again."
    ),
    responses={
        200: OpenAPIResponse(
            description="Every row's result",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=BulkResult)},
        ),
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.UNPROCESSABLE_ENTITY),
    },
)
def bulk_enroll(body: Annotated[BulkEnroll, Body()]) -> BulkResult:
    context = app.lambda_context
    result = BulkEnrollment(enrollment_service()).enroll(
        body, _actor(), time_left=lambda: context.get_remaining_time_in_millis() / 1000
    )
    logger.info(
        "bulk enrollment",
        extra={
            "rows_created": result.created,
            "rows_existing": result.exists,
            "rows_failed": result.errors,
            "rows_not_attempted": result.not_attempted,
        },
    )
    return result


@app.get(
    "/conversation/participants",
    summary="List participants, oldest first",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_participants(
    status: Annotated[ParticipantStatus | None, Query(description="Only participants with this status")] = None,
    limit: Limit = 25,
    next_token: NextToken = None,
) -> ParticipantPage:
    page = enrollment_service().list(status=status, limit=limit, next_token=next_token)
    return ParticipantPage(items=list(page.items), next_token=page.next_token)


@app.get(
    "/conversation/participants/<id>",
    summary="Get a participant, with where their conversation and intervention stand",
    responses=error_responses(HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def get_participant(id: ParticipantId) -> ParticipantDetail:
    return enrollment_service().detail(id)


@app.put(
    "/conversation/participants/<id>",
    summary="Update a participant",
    description=(
        "Only the fields present change. status: active, paused, completed or withdrawn. A new timezone or "
        "status moves, removes or restores the participant's schedules; 503 when that step failed (the "
        "change is stored: repeat the request)."
    ),
    responses=error_responses(
        HTTPStatus.BAD_REQUEST,
        HTTPStatus.NOT_FOUND,
        HTTPStatus.CONFLICT,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        HTTPStatus.SERVICE_UNAVAILABLE,
    ),
)
def update_participant(id: ParticipantId, body: Annotated[UpdateParticipant, Body()]) -> Participant:
    participant = enrollment_service().update(id, body, _actor())
    logger.info("participant updated", extra={"participant_id": id, "fields": sorted(body.model_fields_set)})
    return participant


@app.delete(
    "/conversation/participants/<id>",
    summary="Delete a participant and every item of theirs",
    description=(
        "Their schedules, record, transcript, events, decision points and archived items go; the audit trail "
        "keeps their entries without personal values, and one tombstone. From the first request on the "
        "participant is gone (no texts, no nudges, not listed, 404). A long history is removed in batches for "
        f"about {DELETE_SECONDS:.0f} s per request: 202 says what is left, and the rest goes on its own within "
        "the hour (the retention job) or at once with the same DELETE again. 204 when nothing is left; 404 "
        "when there is no such participant (or its deletion finished)."
    ),
    responses={
        202: OpenAPIResponse(
            description="Gone for every reader; the rest of the history is still being removed",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=Deletion)},
        ),
        # No body: without `content`, the document would give it the route's return type.
        204: OpenAPIResponse(description="Deleted: nothing of the participant is left", content={}),
        **error_responses(
            HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE
        ),
    },
)
def delete_participant(id: ParticipantId) -> Response[Deletion | None]:
    context = app.lambda_context

    def invocation_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - DELETE_MARGIN_SECONDS

    deletion = enrollment_service().delete(id, _actor(), within(DELETE_SECONDS, invocation_left))
    logger.info("participant deleted" if deletion.done else "participant deletion goes on", extra=deletion.model_dump())
    if not deletion.done:
        return _json(202, deletion)
    return Response(status_code=204, content_type=None, body=None)


@app.post(
    "/conversation/participants/<id>/reset",
    summary="Put the conversation back to intake",
    description="Clears the habit profile and the coach's working history; the transcript is kept.",
    responses=error_responses(
        HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE
    ),
)
def reset_participant(id: ParticipantId) -> ConversationView:
    return enrollment_service().reset(id, _actor())


@app.delete(
    "/conversation/participants/<id>/safety-flag",
    summary="Clear a safety flag after review: nudges resume",
    description=(
        "A text that screened as a safety concern (self-harm, a medical emergency, abuse, eating-disorder risk) "
        "got the crisis text, alerted the research team and flagged the participant: no nudges, reminders or "
        "checks go out while `needs_review` is true. Clearing it is on the audit trail (with the optional "
        "note); 404 when there is no flag."
    ),
    responses=error_responses(HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def clear_safety_flag(
    id: ParticipantId,
    note: Annotated[str | None, Query(max_length=500, description="What the review found (audit trail)")] = None,
) -> ParticipantDetail:
    detail = enrollment_service().clear_safety_flag(id, _actor(), note)
    logger.info("safety flag cleared", extra={"participant_id": id})
    return detail


@app.get(
    "/conversation/participants/<id>/messages",
    summary="The participant's transcript, oldest first",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_messages(id: ParticipantId, limit: Limit = 50, next_token: NextToken = None) -> MessagePage:
    page = enrollment_service().transcript(id, limit=limit, next_token=next_token)
    return MessagePage(items=list(page.items), next_token=page.next_token)


@app.post(
    "/conversation/participants/<id>/messages",
    summary="Send the participant a one-off message",
    description=(
        "Queued, then sent through the same outbox as the coach's texts: not to an opted-out, withdrawn or "
        "completed participant, nor in their quiet hours unless override_quiet_hours; a text over the study's "
        "segment budget is 422. The transcript and the audit trail show it; a withheld one is a "
        "message_withheld event with its reasons."
    ),
    responses={
        202: OpenAPIResponse(
            description="Queued",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=MessageQueued)},
        ),
        **error_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.NOT_FOUND,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
        ),
    },
)
def send_message(id: ParticipantId, body: Annotated[SendMessage, Body()]) -> Response[MessageQueued]:
    return _json(202, researcher_messages().send(id, body, _actor()))


@app.post(
    "/conversation/messages",
    summary="Send a one-off message to an arm's participants, or to every participant of a status",
    description="As a one-off message to each participant (status active unless given).",
    responses={
        202: OpenAPIResponse(
            description="Queued for each participant it names",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=MessageQueued)},
        ),
        **error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, HTTPStatus.UNPROCESSABLE_ENTITY),
    },
)
def broadcast(body: Annotated[Broadcast, Body()]) -> Response[MessageQueued]:
    return _json(202, researcher_messages().broadcast(body, _actor()))


@app.get(
    "/conversation/participants/<id>/events",
    summary="The participant's research events, oldest first",
    description=(
        "Every decision point (nudge_decision, decision_missed, nudge_expired), consent, profile and status "
        "change, and every message withheld or cancelled with its reason."
    ),
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_events(id: ParticipantId, limit: Limit = 50, next_token: NextToken = None) -> EventPage:
    page = enrollment_service().events(id, limit=limit, next_token=next_token)
    return EventPage(items=list(page.items), next_token=page.next_token)


@app.get(
    "/conversation/participants/<id>/decisions",
    summary="The participant's decision points, oldest first",
    description=(
        "One row per daily decision point, whether or not a nudge was sent: availability and its reasons, "
        "the randomisation probability and draw, the treatment given, its delivery, and the proximal outcome."
    ),
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_decisions(id: ParticipantId, limit: Limit = 50, next_token: NextToken = None) -> DecisionPage:
    page = enrollment_service().decisions(id, limit=limit, next_token=next_token)
    return DecisionPage(items=list(page.items), next_token=page.next_token)


@app.get(
    "/conversation/audit",
    summary="The audit trail, oldest first: every researcher action, who, when and from where",
    description=(
        "Append-only: no route changes it. A deleted participant's entries keep their pseudonymous id, with "
        "the personal values erased, and end with the delete's tombstone."
    ),
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_audit(
    participant_id: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="Only this participant's")
    ] = None,
    limit: Limit = 50,
    next_token: NextToken = None,
) -> AuditPage:
    page = enrollment_service().audit_entries(participant_id=participant_id, limit=limit, next_token=next_token)
    return AuditPage(items=list(page.items), next_token=page.next_token)


ExportId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="The export's id")]


@app.post(
    "/conversation/exports",
    summary="Ask for an export: decision points, messages, research events, participants, audit trail",
    description=(
        "Recorded and queued; the export function writes each table as CSV and JSONL, with the data dictionary "
        "and a manifest, to S3. Poll GET /conversation/exports/{id} until status is done: it then lists a "
        "time-limited download URL per file. Filters: participant_ids, arm, status, and a time window (since, "
        "until) on the rows' times. Phone numbers and names only with include_identifiers. The audit trail "
        "records who asked. 503: the job could not be queued (it is recorded as failed; ask again)."
    ),
    responses={
        202: OpenAPIResponse(
            description="Queued",
            content={content_types.APPLICATION_JSON: OpenAPIResponseContentModel(model=ExportJob)},
        ),
        **error_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            HTTPStatus.SERVICE_UNAVAILABLE,
        ),
    },
)
def request_export(body: Annotated[ExportRequest, Body()]) -> Response[ExportJob]:
    job = export_service().request(body, _actor())
    logger.info("export requested", extra={"export_id": job.id, "kinds": [k.value for k in body.kinds]})
    return _json(202, job)


@app.get(
    "/conversation/exports",
    summary="The exports asked for, newest first",
    responses=error_responses(HTTPStatus.BAD_REQUEST, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def list_exports(limit: Limit = 25, next_token: NextToken = None) -> ExportPage:
    page = export_service().recent(limit=limit, next_token=next_token)
    return ExportPage(items=list(page.items), next_token=page.next_token)


@app.get(
    "/conversation/exports/<id>",
    summary="An export: its status, and once done, a download URL per file (valid until expires_at)",
    responses=error_responses(HTTPStatus.NOT_FOUND, HTTPStatus.UNPROCESSABLE_ENTITY),
)
def get_export(id: ExportId) -> ExportView:
    return export_service().get(id)


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of this API, also committed as docs/openapi.json."""
    schema = app.get_openapi_json_schema(
        title=API_TITLE,
        version=API_VERSION,
        description="Enroll and manage the participants of an SMS Habit Coach study. Every route needs x-api-key.",
        servers=[Server(url="/")],
        security_schemes={"api_key": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        security=[{"api_key": []}],
    )
    document: dict[str, Any] = json.loads(schema)
    return document


@app.get("/conversation/openapi.json", include_in_schema=False)
def get_openapi_document() -> dict[str, Any]:
    return openapi_document()


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    limit = enrollment_settings().max_body_bytes
    if event.get("resource") == BULK_PATH:
        # 200 rows with a background each. A CSV arrives wrapped in JSON, whose escaping of quotes and line
        # ends can double it; the CSV's own length (and the number of rows) is checked by BulkEnroll (422).
        limit = max(limit, 2 * BULK_MAX_BODY_BYTES)
    event = csv_body_as_json(event)
    rejected = guard_json_request(event, limit)
    return rejected or app.resolve(event, context)
