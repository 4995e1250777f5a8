"""Twilio credentials: straight from the environment (local stack) or from Secrets Manager (AWS).

Light on purpose (no twilio import): the webhook reads the auth token here to check signatures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coach.domain.errors import DeliveryUnavailable
from coach.settings import TwilioSettings

MESSAGING_SERVICE_PREFIX = "MG"


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str = field(repr=False)
    sender: str  # our E.164 number, or a messaging-service SID (MG...) that picks the number itself

    @property
    def uses_messaging_service(self) -> bool:
        return self.sender.startswith(MESSAGING_SERVICE_PREFIX)


class _TwilioSecret(BaseModel):
    """The secret's JSON: {"account_sid", "auth_token", "from_number"}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    account_sid: str = Field(min_length=1)
    auth_token: str = Field(min_length=1)
    from_number: str = Field(min_length=1)


def twilio_credentials(settings: TwilioSettings, provider: Any | None = None) -> TwilioCredentials:
    """The account SID, auth token and sender to use.

    TWILIO_ACCOUNT_SID + TWILIO_AUTH_TOKEN + TWILIO_FROM_NUMBER win when all three are set (the local
    stack); otherwise the TWILIO_SECRET_NAME secret, cached by powertools for secret_max_age_seconds so a
    rotated token is picked up within that time. `provider` is a powertools SecretsProvider (tests).
    Raises DeliveryUnavailable when neither is usable: nothing can be sent or verified until it is fixed.
    """
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number:
        return TwilioCredentials(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number)
    name = settings.twilio_secret_name
    if not name:
        raise DeliveryUnavailable(
            "no Twilio credentials: set TWILIO_SECRET_NAME, "
            "or TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"
        )
    max_age = settings.secret_max_age_seconds
    try:
        if provider is None:
            raw = parameters.get_secret(name, transform="json", max_age=max_age)
        else:
            raw = provider.get(name, transform="json", max_age=max_age)
        secret = _TwilioSecret.model_validate(raw)
    except (GetParameterError, TransformParameterError) as exc:
        # The message names the secret and the AWS error, never the secret's value.
        raise DeliveryUnavailable(f"cannot read the Twilio secret {name!r}: {type(exc).__name__}") from exc
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise DeliveryUnavailable(f"the Twilio secret {name!r} lacks usable {', '.join(fields) or 'JSON'}") from exc
    return TwilioCredentials(secret.account_sid, secret.auth_token, secret.from_number)
