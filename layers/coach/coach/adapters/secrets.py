"""Secrets Manager's secrets, and the Twilio credentials: from the environment (local stack) or a secret (AWS).

Light on purpose (no twilio, no powertools parameters): the webhook reads the auth token here to check
signatures. A secret is one GetSecretValue, made when it is first needed and again once it is older than
its cache age, so a rotated value is picked up within that time. powertools' parameters would do the same,
but importing them loads its AppConfig, SSM and DynamoDB providers at every cold start.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coach.adapters import aws_clients
from coach.domain.errors import DeliveryUnavailable
from coach.settings import TwilioSettings

MESSAGING_SERVICE_PREFIX = "MG"


class SecretUnavailable(Exception):
    """The secret could not be read, or is not JSON. The reason names the AWS error, never the value."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot read the secret {name!r}: {reason}")
        self.name = name
        self.reason = reason


class SecretsManagerSecrets:
    """Secret values, each kept for the `max_age` seconds its caller asks for. A failed read is not kept."""

    def __init__(self, client: Any | None = None, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._monotonic = monotonic
        self._values: dict[str, tuple[float, str]] = {}  # name -> (when read, the SecretString)
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("secretsmanager")

    def json(self, name: str, max_age: float) -> Any:
        """The secret's value, parsed as JSON. Raises SecretUnavailable."""
        text = self.text(name, max_age)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise SecretUnavailable(name, "not JSON") from exc

    def text(self, name: str, max_age: float) -> str:
        """The secret's SecretString, read again once older than `max_age` seconds. Raises SecretUnavailable."""
        now = self._monotonic()
        with self._lock:
            kept = self._values.get(name)
        if kept is not None and now - kept[0] < max_age:
            return kept[1]
        try:
            answer = self.client.get_secret_value(SecretId=name)
        except ClientError as exc:
            raise SecretUnavailable(name, exc.response.get("Error", {}).get("Code") or type(exc).__name__) from exc
        except BotoCoreError as exc:  # no endpoint, no credentials, a timeout
            raise SecretUnavailable(name, type(exc).__name__) from exc
        text = answer.get("SecretString")
        if not isinstance(text, str):
            raise SecretUnavailable(name, "no SecretString (a binary secret)")
        with self._lock:
            self._values[name] = (now, text)
        return text

    def forget(self) -> None:
        """Drop every value kept, so the next read asks Secrets Manager (tests, the local stack)."""
        with self._lock:
            self._values.clear()


_container_secrets = SecretsManagerSecrets()


def container_secrets() -> SecretsManagerSecrets:
    """The secrets of this container, shared by every adapter (one read per secret per cache age)."""
    return _container_secrets


@dataclass(frozen=True)
class TwilioCredentials:
    account_sid: str
    auth_token: str = field(repr=False)
    sender: str  # our E.164 number, or a messaging-service SID (MG...) that picks the number itself

    @property
    def uses_messaging_service(self) -> bool:
        return self.sender.startswith(MESSAGING_SERVICE_PREFIX)


class _TwilioSecret(BaseModel):
    """The secret's JSON: {"account_sid", "auth_token", "from_number"}. Built at the first read (not at import)."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    account_sid: str = Field(min_length=1)
    auth_token: str = Field(min_length=1)
    from_number: str = Field(min_length=1)


def twilio_credentials(settings: TwilioSettings, secrets: SecretsManagerSecrets | None = None) -> TwilioCredentials:
    """The account SID, auth token and sender to use.

    TWILIO_ACCOUNT_SID + TWILIO_AUTH_TOKEN + TWILIO_FROM_NUMBER win when all three are set (the local
    stack); otherwise the TWILIO_SECRET_NAME secret, kept for secret_max_age_seconds. `secrets` defaults to
    the container's (tests pass their own). Raises DeliveryUnavailable when neither is usable: nothing can be
    sent or verified until it is fixed.
    """
    if settings.twilio_account_sid and settings.twilio_auth_token and settings.twilio_from_number:
        return TwilioCredentials(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_from_number)
    name = settings.twilio_secret_name
    if not name:
        raise DeliveryUnavailable(
            "no Twilio credentials: set TWILIO_SECRET_NAME, "
            "or TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"
        )
    try:
        raw = (secrets or container_secrets()).json(name, settings.secret_max_age_seconds)
        secret = _TwilioSecret.model_validate(raw)
    except SecretUnavailable as exc:
        # The message names the secret and the AWS error, never the secret's value.
        raise DeliveryUnavailable(f"cannot read the Twilio secret {name!r}: {exc.reason}") from exc
    except ValidationError as exc:
        fields = sorted({str(error["loc"][0]) for error in exc.errors() if error["loc"]})
        raise DeliveryUnavailable(f"the Twilio secret {name!r} lacks usable {', '.join(fields) or 'JSON'}") from exc
    return TwilioCredentials(secret.account_sid, secret.auth_token, secret.from_number)
