"""Validated settings, one model per function. The only module that reads the environment.

Every field reads the environment variable of the same name in upper case (TABLE_NAME, ...).
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from coach.domain.participant import valid_timezone
from coach.domain.study_texts import (
    DEFAULT_CONSENT_EXPLANATION,
    DEFAULT_CRISIS_TEXT,
    DEFAULT_GREETING,
    DEFAULT_HELP_TEXT,
    DEFAULT_NOT_ENROLLED_TEXT,
    DEFAULT_STUDY_NAME,
    ConsentTexts,
    checked_greeting,
    checked_study_name,
    checked_study_text,
    checked_text_of_study,
)

if TYPE_CHECKING:
    from coach.domain.arms import StudyArms


class FromEnvironment(BaseModel):
    """Each field from the environment variable of its name (in any case); keyword arguments win.

    What pydantic-settings' BaseSettings does for these models (flat fields, no prefix, no .env file), without
    its import: 0.1 to 0.2 s of every function's cold start (its CLI, dotenv and cloud-secret sources). Values
    are strings, validated as pydantic validates strings ("true", "20", "1.5"); defaults are validated too, as
    BaseSettings does. A model's validator is built when it is first used: a function uses two or three of
    these models, and need not build the rest.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, validate_default=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _environment_below_arguments(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        environment = {name.lower(): value for name, value in os.environ.items()}
        return {**{name: environment[name] for name in cls.model_fields if name in environment}, **values}

    @classmethod
    def from_environment(cls) -> Self:
        """The settings the environment gives (what a function reads at its first call)."""
        return cls.model_validate({})


class _Base(FromEnvironment):
    virtual_clock: bool = Field(False, description="Local stack only: read time from its virtual clock")

    table_name: str = Field(min_length=3, description="The DynamoDB table of every item")
    stage: str = "local"


class SchedulerSettings(FromEnvironment):
    """Mixin of the functions that reconcile participants' schedules (enrollment, conversation, prompt
    generator): where the schedules live and what they invoke."""

    schedule_group_name: str = "sms-habit-coach-nudges"
    scheduler_role_arn: str = Field("", description="The role EventBridge Scheduler assumes to invoke the target")
    prompt_generator_arn: str = Field("", description="What the participants' schedules invoke")
    scheduler_dlq_arn: str = Field("", description="Where Scheduler puts a firing it could not hand over")


class StudySettings(FromEnvironment):
    """Mixin of the functions that enroll or coach: the study's arms, the seed of its randomisation, and the
    name its texts call it by."""

    study_arms: str | None = Field(None, description="The arms as JSON (coach.domain.arms); unset: one arm")
    study_seed: str = Field("sms-habit-coach", description="Seeds allocation and randomisation, so both reproduce")
    # Declared before the texts that say it: their validators read it (fields validate in order).
    study_name: str = Field(DEFAULT_STUDY_NAME, description="What {study} in the study's texts says; empty: default")

    @field_validator("study_arms")
    @classmethod
    def _valid_arms(cls, value: str | None) -> str | None:
        if value is not None:  # the study's design is imported only where there is one (or it is used)
            from coach.domain.arms import parse_study_arms

            parse_study_arms(value)  # a bad configuration stops the function at start, saying what to fix
        return value

    @field_validator("study_name")
    @classmethod
    def _valid_study_name(cls, value: str) -> str:
        return checked_study_name(value or DEFAULT_STUDY_NAME)

    @property
    def arms(self) -> StudyArms:
        from coach.domain.arms import parse_study_arms

        return parse_study_arms(self.study_arms)


def _study_name(info: ValidationInfo) -> str:
    """The study's name for a text's {study}: validated already, being declared first (the default when it
    failed: its own error is reported)."""
    return str(info.data.get("study_name", DEFAULT_STUDY_NAME))


class EnrollmentSettings(StudySettings, SchedulerSettings, _Base):
    queue_url: str = Field(min_length=1, description="The FIFO queue in front of the conversation function")
    default_phone_region: str = Field("US", min_length=2, max_length=2)
    default_timezone: str = "America/New_York"
    max_body_bytes: int = Field(16_384, gt=0, description="Larger request bodies get 413")
    export_bucket: str = Field("", description="The S3 bucket exports are written to (the template's ExportBucket)")
    export_queue_url: str = Field("", description="The FIFO queue in front of the export function")
    export_url_seconds: int = Field(
        3600, ge=60, le=7 * 24 * 3600, description="How long an export's download URLs work (S3 allows 7 days)"
    )
    export_max_attempts: int = Field(3, ge=1, le=10, description="Runs of an export before it is recorded failed")

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return valid_timezone(value, "DEFAULT_TIMEZONE")


class CoachSettings(FromEnvironment):
    """How the conversation engine talks: the LLM (none configured = offline coach) and SMS shaping."""

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_timeout_seconds: float = Field(20.0, gt=0)
    openai_max_retries: int = Field(2, ge=0)
    sms_segment_budget: int = Field(2, ge=1, le=10)

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)


class TwilioSettings(FromEnvironment):
    """Where Twilio credentials come from and where the REST API is.

    On AWS: TWILIO_SECRET_NAME names a Secrets Manager secret {"account_sid", "auth_token", "from_number"}
    (from_number may be a messaging-service SID, MG...). Locally: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and
    TWILIO_FROM_NUMBER directly, and TWILIO_API_BASE_URL points the REST client at the fake Twilio.
    """

    twilio_secret_name: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = Field(None, description="e.g. http://127.0.0.1:3000 for the local fake")
    status_callback_url: str | None = None
    secret_max_age_seconds: int = Field(300, ge=0, description="How long fetched secrets are cached")
    send_attempts: int = Field(3, ge=1, le=10, description="Tries per SMS on 429/5xx/timeouts before giving up")
    send_timeout_seconds: float = Field(10.0, gt=0)
    send_backoff_seconds: float = Field(0.5, ge=0, description="First wait between tries; it doubles each time")


class ConversationSettings(StudySettings, SchedulerSettings, _Base):
    """The conversation function: where schedules go, and how much LLM a participant may use."""

    openai_secret_name: str | None = Field(None, description='Secrets Manager secret {"api_key": ...}')
    daily_llm_calls: int = Field(
        40, ge=0, description="LLM calls per participant per local day, failed ones included; then offline"
    )
    daily_llm_tokens: int = Field(60_000, ge=0, description="LLM tokens per participant per local day; then offline")
    study_daily_llm_tokens: int = Field(
        2_000_000, ge=0, description="LLM tokens of the whole study per UTC day; then offline; 0 = no budget"
    )
    max_texts_per_turn: int = Field(10, ge=1, le=20, description="Quick texts answered together in one turn")
    quiet_hours_start: str = Field("21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_hours_end: str = Field("08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    turn_margin_seconds: float = Field(
        20, ge=0, description="Of the invocation's time, what the LLM leaves for saving and sending"
    )
    turn_start_seconds: float = Field(
        25, ge=0, description="A record with less time left than this is returned to the queue, not started"
    )
    redelivery_base_seconds: int = Field(10, ge=0, le=900, description="A failed record's first wait; it doubles")
    redelivery_max_seconds: int = Field(
        60, ge=0, le=900, description="The longest wait before a failed record's next try"
    )
    intensity_check: bool = Field(False, description="Ask 'a bit more, the same, or less?' once a day after a success")
    crisis_text: str = Field(
        DEFAULT_CRISIS_TEXT, description="The reply to a text that screens as a safety concern, sent whole"
    )
    greeting_text: str = Field(
        DEFAULT_GREETING, description="The first message, with the consent question; {name} and {study} filled in"
    )
    consent_explanation: str = Field(
        DEFAULT_CONSENT_EXPLANATION, description="The answer to a reply to the greeting that is neither yes nor no"
    )
    safety_alert_topic_arn: str | None = Field(None, description="SNS topic told of every safety flag")

    @field_validator("crisis_text")
    @classmethod
    def _crisis_text_fits(cls, value: str) -> str:
        return checked_study_text("CRISIS_TEXT", value or DEFAULT_CRISIS_TEXT)  # empty: the built-in text

    @field_validator("greeting_text")
    @classmethod
    def _greeting_fits(cls, value: str, info: ValidationInfo) -> str:
        return checked_greeting("GREETING_TEXT", value or DEFAULT_GREETING, _study_name(info))

    @field_validator("consent_explanation")
    @classmethod
    def _consent_explanation_fits(cls, value: str, info: ValidationInfo) -> str:
        return checked_text_of_study("CONSENT_EXPLANATION", value or DEFAULT_CONSENT_EXPLANATION, _study_name(info))

    @property
    def consent_texts(self) -> ConsentTexts:
        return ConsentTexts(greeting=self.greeting_text, explanation=self.consent_explanation)


# The longest a prompt-generator container may wait for its turn to send (NUDGE_CONCURRENCY / SEND_RATE).
MAX_SEND_INTERVAL_SECONDS = 10


class PromptGeneratorSettings(ConversationSettings):
    """The prompt generator: when nudges may go out, the reminder, and the study's randomisation."""

    reminder_delay_minutes: int = Field(300, ge=0, description="Follow-up after an unanswered nudge; 0 = none")
    nudge_probability: float = Field(
        1.0, ge=0, le=1, description="Micro-randomisation: chance of a nudge at each available decision point"
    )
    outcome_window_minutes: int = Field(
        300, ge=1, le=24 * 60, description="A reply this long after a decision point is its proximal outcome"
    )
    nudge_validity_minutes: int = Field(
        60, ge=1, le=600, description="A nudge or reminder not sent this long after its slot is not sent at all"
    )
    send_rate: float = Field(
        1.0, gt=0, le=1000, description="Messages per second the Twilio sender takes (1 for a long code)"
    )
    nudge_concurrency: int = Field(
        5, ge=1, le=1000, description="The function's reserved concurrency: the containers that share SEND_RATE"
    )

    @model_validator(mode="after")
    def _pace_fits_an_invocation(self) -> Self:
        # Each container waits up to NUDGE_CONCURRENCY / SEND_RATE seconds before a send, inside the time an
        # invocation keeps for saving and sending (TURN_MARGIN_SECONDS).
        interval = self.nudge_concurrency / self.send_rate
        if interval > MAX_SEND_INTERVAL_SECONDS:
            raise ValueError(
                f"NUDGE_CONCURRENCY / SEND_RATE is {interval:g} s between one container's sends; at most "
                f"{MAX_SEND_INTERVAL_SECONDS} s fits an invocation: lower NudgeConcurrency or raise SendRate"
            )
        return self


@cache
def enrollment_settings() -> EnrollmentSettings:
    return EnrollmentSettings.from_environment()  # fields come from the environment


@cache
def coach_settings() -> CoachSettings:
    return CoachSettings.from_environment()


@cache
def twilio_settings() -> TwilioSettings:
    return TwilioSettings.from_environment()


@cache
def conversation_settings() -> ConversationSettings:
    return ConversationSettings.from_environment()  # fields come from the environment


class WebhookSettings(StudySettings, _Base):
    """The Twilio webhook function: where inbound texts go, and what it answers by itself."""

    queue_url: str = Field(min_length=1, description="The FIFO queue in front of the conversation function")
    public_base_url: str | None = Field(
        None, description="The base URL Twilio calls and signs (e.g. https://sms.example.org); unset = from the request"
    )
    default_phone_region: str = Field("US", min_length=2, max_length=2)
    default_timezone: str = "America/New_York"
    auto_enroll: bool = Field(False, description="Enroll unknown senders (as the API would) instead of declining")
    help_text: str = Field(DEFAULT_HELP_TEXT, description="The reply to HELP; {study} filled in; empty: default")
    not_enrolled_text: str = Field(
        DEFAULT_NOT_ENROLLED_TEXT, description="The reply to a number not enrolled; {study} filled in; empty: default"
    )
    not_enrolled_reply_hours: float = Field(24, gt=0, description="At most one not-enrolled reply per number per ...")
    opt_out_confirmation: str | None = Field(
        None, description="Our own reply to STOP; unset = none (Twilio's opt-out reply covers it)"
    )
    max_body_bytes: int = Field(65_536, gt=0, description="Larger webhook bodies are refused before parsing")

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return valid_timezone(value, "DEFAULT_TIMEZONE")

    @field_validator("public_base_url", "opt_out_confirmation", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return None if value is None else value.strip().rstrip("/")

    @field_validator("help_text")
    @classmethod
    def _help_text_fits(cls, value: str, info: ValidationInfo) -> str:
        return checked_text_of_study("HELP_TEXT", value or DEFAULT_HELP_TEXT, _study_name(info))

    @field_validator("not_enrolled_text")
    @classmethod
    def _not_enrolled_text_fits(cls, value: str, info: ValidationInfo) -> str:
        return checked_text_of_study("NOT_ENROLLED_TEXT", value or DEFAULT_NOT_ENROLLED_TEXT, _study_name(info))

    @field_validator("opt_out_confirmation")
    @classmethod
    def _opt_out_confirmation_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else checked_text_of_study("OPT_OUT_CONFIRMATION", value, _study_name(info))


@cache
def webhook_settings() -> WebhookSettings:
    return WebhookSettings.from_environment()  # fields come from the environment


@cache
def prompt_generator_settings() -> PromptGeneratorSettings:
    return PromptGeneratorSettings.from_environment()  # fields come from the environment


class RetentionSettings(_Base):
    """The retention job (coach.services.retention): how long the table keeps texts, events and outbox items."""

    retention_days: int = Field(
        0, ge=0, le=3650, description="Older messages and events move to the archive, older outbox items go; 0: none"
    )
    export_bucket: str = Field(
        "", validate_default=True, description="The bucket the archive is kept in (the template's ExportBucket)"
    )

    @field_validator("export_bucket")
    @classmethod
    def _archive_has_a_bucket(cls, value: str, info: ValidationInfo) -> str:
        if not value and info.data.get("retention_days"):
            raise ValueError("RETENTION_DAYS moves items to an archive: EXPORT_BUCKET must name its bucket")
        return value


@cache
def retention_settings() -> RetentionSettings:
    return RetentionSettings.from_environment()  # fields come from the environment
