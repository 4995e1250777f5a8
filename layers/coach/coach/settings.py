"""Validated settings, one model per function. The only module that reads the environment.

Every field reads the environment variable of the same name in upper case (TABLE_NAME, ...).
"""

from __future__ import annotations

from functools import cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from coach.domain.participant import valid_timezone


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    table_name: str = Field(min_length=3, description="The DynamoDB table of every item")
    stage: str = "local"


class EnrollmentSettings(_Base):
    queue_url: str = Field(min_length=1, description="The FIFO queue in front of the conversation function")
    schedule_group_name: str = "sms-habit-coach-nudges"
    default_phone_region: str = Field("US", min_length=2, max_length=2)
    default_timezone: str = "America/New_York"
    max_body_bytes: int = Field(16_384, gt=0, description="Larger request bodies get 413")

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return valid_timezone(value, "DEFAULT_TIMEZONE")


class CoachSettings(BaseSettings):
    """How the conversation engine talks: the LLM (none configured = offline coach) and SMS shaping."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    openai_api_key: str | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_timeout_seconds: float = Field(20.0, gt=0)
    openai_max_retries: int = Field(2, ge=0)
    sms_segment_budget: int = Field(2, ge=1, le=10)

    @property
    def llm_configured(self) -> bool:
        return bool(self.openai_api_key or self.openai_base_url)


class TwilioSettings(BaseSettings):
    """Where Twilio credentials come from and where the REST API is.

    On AWS: TWILIO_SECRET_NAME names a Secrets Manager secret {"account_sid", "auth_token", "from_number"}
    (from_number may be a messaging-service SID, MG...). Locally: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and
    TWILIO_FROM_NUMBER directly, and TWILIO_API_BASE_URL points the REST client at the fake Twilio.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    twilio_secret_name: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    twilio_api_base_url: str | None = Field(None, description="e.g. http://127.0.0.1:3000 for the local fake")
    status_callback_url: str | None = None
    secret_max_age_seconds: int = Field(300, ge=0, description="How long fetched secrets are cached")
    send_attempts: int = Field(3, ge=1, le=10, description="Tries per SMS on 429/5xx/timeouts before giving up")
    send_timeout_seconds: float = Field(10.0, gt=0)


@cache
def enrollment_settings() -> EnrollmentSettings:
    return EnrollmentSettings()  # fields come from the environment


@cache
def coach_settings() -> CoachSettings:
    return CoachSettings()


@cache
def twilio_settings() -> TwilioSettings:
    return TwilioSettings()
