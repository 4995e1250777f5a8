"""Composition root: real adapters by default; tests pass fakes to the build_* functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from coach.adapters.clock import SystemClock
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.adapters.sqs_queue import SqsWorkQueue
from coach.domain.audit import Actor
from coach.observability import logger, metrics
from coach.ports import (
    AuditLog,
    Clock,
    ConversationStore,
    EnrollmentSequence,
    ExportFiles,
    ExportJobs,
    ExportQueue,
    LanguageModel,
    LlmBudget,
    ParticipantArchive,
    ParticipantStore,
    ResearchAlerts,
    ResearcherNames,
    RetentionStore,
    Scheduler,
    SmsSender,
    WorkQueue,
)
from coach.settings import (
    CoachSettings,
    ConversationSettings,
    EnrollmentSettings,
    PromptGeneratorSettings,
    RetentionSettings,
    SchedulerSettings,
    WebhookSettings,
    coach_settings,
    conversation_settings,
    enrollment_settings,
    prompt_generator_settings,
    retention_settings,
    twilio_settings,
    webhook_settings,
)

if TYPE_CHECKING:
    from coach.adapters.sqs_queue import SqsRedelivery
    from coach.services.conversation import ConversationService
    from coach.services.enrollment import EnrollmentService
    from coach.services.exports import ExportService
    from coach.services.inbound import InboundService
    from coach.services.messages import ResearcherMessages
    from coach.services.nudges import NudgeService
    from coach.services.redelivery import RedeliveryPolicy
    from coach.services.retention import RetentionService
    from coach.services.turns import SavedTurns, TurnRunner


def default_clock(virtual: bool) -> Clock:
    """The system clock; the local stack's virtual clock when VIRTUAL_CLOCK=true (it installs it: see
    coach.adapters.clock)."""
    from coach.adapters.clock import installed_clock

    return installed_clock() if virtual else SystemClock()


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
    scheduler: Scheduler | None = None,
    audit: AuditLog | None = None,
    sequence: EnrollmentSequence | None = None,
) -> EnrollmentService:
    from coach.adapters.dynamodb_audit import DynamoDBAuditLog
    from coach.adapters.dynamodb_budget import DynamoDBEnrollmentSequence
    from coach.services.enrollment import EnrollmentService

    return EnrollmentService(
        store=store or DynamoDBParticipantStore(settings.table_name),
        audit=audit or DynamoDBAuditLog(settings.table_name),
        arms=settings.arms,
        seed=settings.study_seed,
        sequence=sequence or DynamoDBEnrollmentSequence(settings.table_name),
        queue=queue or SqsWorkQueue(settings.queue_url),
        clock=clock or default_clock(settings.virtual_clock),
        default_phone_region=settings.default_phone_region,
        default_timezone=settings.default_timezone,
        on_queue_failure=_report_queue_failure,
        scheduler=scheduler or _scheduler(settings),
        archive=_archive(settings.export_bucket),
    )


def _archive(bucket: str) -> ParticipantArchive | None:
    """What retention archived, in the export bucket; None without a bucket (nothing can have been archived)."""
    if not bucket:
        return None
    from coach.adapters.s3_archive import S3ParticipantArchive

    return S3ParticipantArchive(bucket)


def _scheduler(settings: SchedulerSettings, target_arn: str = "") -> Scheduler:
    from coach.adapters.eventbridge_scheduler import EventBridgeScheduler

    return EventBridgeScheduler(
        settings.schedule_group_name,
        settings.scheduler_role_arn,
        settings.prompt_generator_arn or target_arn,
        settings.scheduler_dlq_arn,
    )


@cache
def researcher_messages() -> ResearcherMessages:
    """The researchers' one-off messages, on the enrollment function's service."""
    from coach.services.messages import ResearcherMessages

    return ResearcherMessages(enrollment_service(), segment_budget=coach_settings().sms_segment_budget)


def build_export_service(
    settings: EnrollmentSettings,
    *,
    enrollment: EnrollmentService | None = None,
    jobs: ExportJobs | None = None,
    files: ExportFiles | None = None,
    queue: ExportQueue | None = None,
) -> ExportService:
    """Exports: asked for through the enrollment function, written by the export function."""
    from coach.adapters.dynamodb_exports import DynamoDBExportJobs
    from coach.adapters.s3_exports import S3ExportFiles
    from coach.adapters.sqs_queue import SqsExportQueue
    from coach.services.exports import ExportService

    return ExportService(
        jobs=jobs or DynamoDBExportJobs(settings.table_name),
        files=files or S3ExportFiles(settings.export_bucket),
        queue=queue or SqsExportQueue(settings.export_queue_url),
        enrollment=enrollment or build_enrollment_service(settings),
        url_seconds=settings.export_url_seconds,
        max_attempts=settings.export_max_attempts,
        on_event=_report_conversation_event,
        archive=_archive(settings.export_bucket),
    )


@cache
def export_service() -> ExportService:
    """The export service of the enrollment and export functions, built once per Lambda container."""
    return build_export_service(enrollment_settings(), enrollment=enrollment_service())


def build_retention_service(
    settings: RetentionSettings,
    *,
    participants: ParticipantStore | None = None,
    store: RetentionStore | None = None,
    archive: ParticipantArchive | None = None,
    audit: AuditLog | None = None,
    clock: Clock | None = None,
) -> RetentionService:
    """The retention job: archive what is older than RETENTION_DAYS, finish deletions left unfinished."""
    from coach.adapters.dynamodb_audit import DynamoDBAuditLog
    from coach.adapters.dynamodb_retention import DynamoDBRetentionStore
    from coach.services.deletion import ParticipantDeletion
    from coach.services.retention import RetentionService

    participants = participants or DynamoDBParticipantStore(settings.table_name)
    archive = archive or _archive(settings.export_bucket)
    return RetentionService(
        participants=participants,
        store=store or DynamoDBRetentionStore(settings.table_name),
        archive=archive,
        deletion=ParticipantDeletion(participants, audit or DynamoDBAuditLog(settings.table_name), archive),
        clock=clock or default_clock(settings.virtual_clock),
        days=settings.retention_days,
        on_event=_report_conversation_event,
    )


@cache
def retention_service() -> RetentionService:
    """The service of the retention function, built once per Lambda container."""
    return build_retention_service(retention_settings())


@cache
def researcher_names() -> ResearcherNames:
    from coach.adapters.apigateway_keys import ApiGatewayKeyNames

    return ApiGatewayKeyNames()


def researcher(key_id: str | None, source_ip: str | None) -> Actor:
    """Who sent a request to the researchers' API: their key's name (the audit trail's `researcher`)."""
    name = researcher_names().name_of(key_id) if key_id else None
    return Actor(name=name or (f"key {key_id}" if key_id else "unknown"), key_id=key_id, source_ip=source_ip)


@cache
def enrollment_service() -> EnrollmentService:
    """The service of the enrollment function, built once per Lambda container."""
    return build_enrollment_service(enrollment_settings())


def build_conversation_service(
    settings: ConversationSettings,
    *,
    participants: ParticipantStore | None = None,
    conversation: ConversationStore | None = None,
    sender: SmsSender | None = None,
    scheduler: Scheduler | None = None,
    clock: Clock | None = None,
    language_model: Callable[[], LanguageModel | None] | None = None,
    budget: LlmBudget | None = None,
    alerts: ResearchAlerts | None = None,
) -> ConversationService:
    from coach.domain.reachability import QuietHours
    from coach.services.conversation import ConversationService

    turns, coach = _saved_turns(
        settings,
        participants=participants,
        conversation=conversation,
        sender=sender,
        scheduler=scheduler or _scheduler(settings),
        clock=clock,
        language_model=language_model,
        budget=budget,
        alerts=alerts,
    )
    return ConversationService(
        turns=turns,
        conversation=turns.conversation,
        coach=coach,
        max_texts_per_turn=settings.max_texts_per_turn,
        quiet_hours=QuietHours.parse(settings.quiet_hours_start, settings.quiet_hours_end),
        on_event=_report_conversation_event,
    )


def _research_alerts(settings: ConversationSettings) -> ResearchAlerts | None:
    """The safety alerts' topic, or None when the stack has none (each flag then records that it went unsent)."""
    if not settings.safety_alert_topic_arn:
        return None
    from coach.adapters.sns_alerts import SnsResearchAlerts

    return SnsResearchAlerts(settings.safety_alert_topic_arn, settings.stage)


def _saved_turns(
    settings: ConversationSettings,
    *,
    participants: ParticipantStore | None,
    conversation: ConversationStore | None,
    sender: SmsSender | None,
    scheduler: Scheduler,
    clock: Clock | None,
    language_model: Callable[[], LanguageModel | None] | None,
    budget: LlmBudget | None,
    alerts: ResearchAlerts | None,
) -> tuple[SavedTurns, TurnRunner]:
    """The unit of work and the engine runner the conversation function and the prompt generator share."""
    # Imported here, not at the top: the webhook shares this module and must start fast.
    from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
    from coach.adapters.twilio_sms import TwilioSmsSender
    from coach.services.outbox import OutboxDispatcher
    from coach.services.turns import SavedTurns, TurnRunner

    clock = clock or default_clock(settings.virtual_clock)
    participants = participants or DynamoDBParticipantStore(settings.table_name)
    conversation = conversation or DynamoDBConversationStore(settings.table_name)
    dispatcher = OutboxDispatcher(
        participants=participants,
        conversation=conversation,
        sender=sender or TwilioSmsSender(twilio_settings(), clock=clock),
        scheduler=scheduler,
        clock=clock,
        alerts=alerts if alerts is not None else _research_alerts(settings),
        on_event=_report_conversation_event,
    )
    turns = SavedTurns(
        participants=participants,
        conversation=conversation,
        outbox=dispatcher,
        clock=clock,
        on_event=_report_conversation_event,
    )
    from coach.adapters.dynamodb_budget import DynamoDBLlmBudget

    coach = TurnRunner(
        language_model=language_model or _configured_language_model(settings),
        segment_budget=coach_settings().sms_segment_budget,
        daily_llm_calls=settings.daily_llm_calls,
        daily_llm_tokens=settings.daily_llm_tokens,
        study_daily_tokens=settings.study_daily_llm_tokens,
        budget=budget or DynamoDBLlmBudget(settings.table_name),
        intensity_check=settings.intensity_check,
        crisis_text=settings.crisis_text,
        consent_texts=settings.consent_texts,
        arms=settings.arms,
        on_event=_report_conversation_event,
        on_metric=_report_metric,
    )
    return turns, coach


def build_nudge_service(
    settings: PromptGeneratorSettings,
    *,
    target_arn: str = "",
    participants: ParticipantStore | None = None,
    conversation: ConversationStore | None = None,
    sender: SmsSender | None = None,
    scheduler: Scheduler | None = None,
    clock: Clock | None = None,
    language_model: Callable[[], LanguageModel | None] | None = None,
    budget: LlmBudget | None = None,
    alerts: ResearchAlerts | None = None,
) -> NudgeService:
    """`target_arn`: what the schedules invoke (the prompt generator itself, from its Lambda context)."""
    from coach.domain.reachability import QuietHours
    from coach.services.nudges import NudgeService

    scheduler = scheduler or _scheduler(settings, target_arn)
    if sender is None:  # nudges due at one minute leave at the sender's rate (coach.adapters.paced_sender)
        from coach.adapters.paced_sender import paced_twilio_sender

        sender = paced_twilio_sender(settings, clock or default_clock(settings.virtual_clock))
    turns, coach = _saved_turns(
        settings,
        participants=participants,
        conversation=conversation,
        sender=sender,
        scheduler=scheduler,
        clock=clock,
        language_model=language_model,
        budget=budget,
        alerts=alerts,
    )
    return NudgeService(
        turns=turns,
        participants=turns.participants,
        conversation=turns.conversation,
        scheduler=scheduler,
        clock=turns.clock,
        coach=coach,
        quiet_hours=QuietHours.parse(settings.quiet_hours_start, settings.quiet_hours_end),
        reminder_delay=timedelta(minutes=settings.reminder_delay_minutes),
        probability=settings.nudge_probability,
        seed=settings.study_seed,
        validity=timedelta(minutes=settings.nudge_validity_minutes),
        outcome_window=timedelta(minutes=settings.outcome_window_minutes),
        arms=settings.arms,
        on_event=_report_conversation_event,
    )


@cache
def nudge_service(target_arn: str = "") -> NudgeService:
    """The service of the prompt-generator function, built once per Lambda container."""
    return build_nudge_service(prompt_generator_settings(), target_arn=target_arn)


def _configured_language_model(settings: ConversationSettings) -> Callable[[], LanguageModel | None]:
    """The LLM of the settings (OPENAI_API_KEY / OPENAI_BASE_URL, else the OpenAI secret), asked for every
    turn: the same model while the settings and the secret's key stay the same."""

    def build() -> LanguageModel | None:
        configured = coach_settings()
        if not configured.llm_configured and settings.openai_secret_name:
            from coach.adapters.openai_llm import secret_api_key

            api_key = secret_api_key(settings.openai_secret_name)  # kept for 5 minutes: a rotated key is seen
            if api_key is None:
                return None
            configured = configured.model_copy(update={"openai_api_key": api_key})
        return _language_model(configured)

    return build


@cache
def _language_model(settings: CoachSettings) -> LanguageModel | None:
    """One model per container and settings: its HTTP client and connection pool serve every turn."""
    from coach.adapters.openai_llm import language_model

    return language_model(settings)


def _report_metric(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def _report_conversation_event(kind: str, data: dict[str, object]) -> None:
    logger.info(kind.replace("_", " "), extra=data)
    metrics.add_metric(name=kind, unit=MetricUnit.Count, value=1)


@cache
def redelivery() -> tuple[RedeliveryPolicy, SqsRedelivery]:
    """How the conversation function brings a failed record back (coach.services.redelivery)."""
    from coach.adapters.sqs_queue import SqsRedelivery
    from coach.services.redelivery import RedeliveryPolicy

    settings = conversation_settings()
    return RedeliveryPolicy(settings.redelivery_base_seconds, settings.redelivery_max_seconds), SqsRedelivery()


@cache
def conversation_service() -> ConversationService:
    """The service of the conversation function, built once per Lambda container."""
    return build_conversation_service(conversation_settings())


def forget_built_services() -> None:
    """Drop what was built, so the next call reads the environment again (tests, the local stack)."""
    enrollment_service.cache_clear()
    export_service.cache_clear()
    researcher_names.cache_clear()
    researcher_messages.cache_clear()
    enrollment_settings.cache_clear()
    webhook_service.cache_clear()
    webhook_verifier.cache_clear()
    webhook_settings.cache_clear()
    conversation_service.cache_clear()
    redelivery.cache_clear()
    conversation_settings.cache_clear()
    nudge_service.cache_clear()
    prompt_generator_settings.cache_clear()
    retention_service.cache_clear()
    retention_settings.cache_clear()
    coach_settings.cache_clear()
    twilio_settings.cache_clear()
    _language_model.cache_clear()
    # The SDK clients and the secrets read are kept per container: a client made for an earlier environment
    # (a local stack's endpoint, gone) would answer every later call.
    from coach.adapters import aws_clients
    from coach.adapters.secrets import container_secrets

    aws_clients.forget()
    container_secrets().forget()


# -- the Twilio webhook ------------------------------------------------------------------------


def build_webhook_service(
    settings: WebhookSettings,
    *,
    participants: ParticipantStore | None = None,
    conversations: ConversationStore | None = None,
    queue: WorkQueue | None = None,
    clock: Clock | None = None,
    audit: AuditLog | None = None,
    sequence: EnrollmentSequence | None = None,
) -> InboundService:
    from coach.adapters.dynamodb_conversation import DynamoDBConversationStore
    from coach.services.inbound import InboundService

    clock = clock or default_clock(settings.virtual_clock)
    participants = participants or DynamoDBParticipantStore(settings.table_name)
    queue = queue or SqsWorkQueue(settings.queue_url)
    enrollment = None
    if settings.auto_enroll:
        from coach.adapters.dynamodb_audit import DynamoDBAuditLog
        from coach.adapters.dynamodb_budget import DynamoDBEnrollmentSequence
        from coach.services.enrollment import EnrollmentService

        enrollment = EnrollmentService(
            store=participants,
            queue=queue,
            clock=clock,
            audit=audit or DynamoDBAuditLog(settings.table_name),
            arms=settings.arms,
            seed=settings.study_seed,
            sequence=sequence or DynamoDBEnrollmentSequence(settings.table_name),
            default_phone_region=settings.default_phone_region,
            default_timezone=settings.default_timezone,
            on_queue_failure=_report_queue_failure,
        )
    return InboundService(
        participants=participants,
        conversations=conversations or DynamoDBConversationStore(settings.table_name),
        queue=queue,
        clock=clock,
        help_text=settings.help_text,
        not_enrolled_text=settings.not_enrolled_text,
        not_enrolled_window=timedelta(hours=settings.not_enrolled_reply_hours),
        opt_out_confirmation=settings.opt_out_confirmation,
        default_phone_region=settings.default_phone_region,
        enrollment=enrollment,
    )


def build_webhook_verifier(
    settings: WebhookSettings, *, auth_token: Callable[[], str] | None = None
) -> Callable[[Mapping[str, Any]], Mapping[str, str]]:
    """API Gateway event -> the form fields Twilio signed; raises twilio_signature.ForgedWebhook."""
    # Imported here: only the webhook pays for twilio's validator and the secrets client.
    from coach.adapters.twilio_signature import TwilioSignature, webhook_request
    from coach.adapters.twilio_signature import auth_token as configured_token

    signature = TwilioSignature(auth_token or (lambda: configured_token(twilio_settings())))

    def verified_form(event: Mapping[str, Any]) -> Mapping[str, str]:
        return signature.verify(webhook_request(event, settings.public_base_url, settings.max_body_bytes))

    return verified_form


@cache
def webhook_service() -> InboundService:
    """The service of the webhook function, built once per Lambda container."""
    return build_webhook_service(webhook_settings())


@cache
def webhook_verifier() -> Callable[[Mapping[str, Any]], Mapping[str, str]]:
    return build_webhook_verifier(webhook_settings())
