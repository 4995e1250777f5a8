"""What the shell configures about the local stack. The only module of infra.local that reads the
environment the stack was started with (the stack later *writes* os.environ for the handlers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_API_KEY = "local-dev-key"
DEFAULT_STACK_NAME = "sms-habit-coach-local"
DEFAULT_REGION = "us-east-1"
# moto's default account; every ARN the local stack makes up uses it so they all agree.
ACCOUNT_ID = "123456789012"
# The fake Twilio's account: obviously not real. +15005550006 is Twilio's own "valid sender" test number.
DEFAULT_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_TWILIO_AUTH_TOKEN = "local-twilio-auth-token"  # noqa: S105 - a local stand-in, printed at start
DEFAULT_TWILIO_FROM_NUMBER = "+15005550006"


class ConfigError(ValueError):
    """The shell asked for something the local stack cannot do (a bad PORT, an empty API_KEY)."""


@dataclass(frozen=True)
class TwilioAccount:
    """The account the fake Twilio accepts and the handlers use: TWILIO_ACCOUNT_SID, _AUTH_TOKEN, _FROM_NUMBER."""

    account_sid: str = DEFAULT_TWILIO_ACCOUNT_SID
    auth_token: str = field(default=DEFAULT_TWILIO_AUTH_TOKEN, repr=False)
    from_number: str = DEFAULT_TWILIO_FROM_NUMBER

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TwilioAccount:
        return cls(
            account_sid=_non_empty(environ, "TWILIO_ACCOUNT_SID", DEFAULT_TWILIO_ACCOUNT_SID),
            auth_token=_non_empty(environ, "TWILIO_AUTH_TOKEN", DEFAULT_TWILIO_AUTH_TOKEN),
            from_number=_non_empty(environ, "TWILIO_FROM_NUMBER", DEFAULT_TWILIO_FROM_NUMBER),
        )


@dataclass(frozen=True)
class LocalConfig:
    port: int = DEFAULT_PORT  # 0 = any free port (tests); the stack reports the one it got
    api_key: str = DEFAULT_API_KEY
    stack_name: str = DEFAULT_STACK_NAME
    region: str = DEFAULT_REGION
    # The variables the stack was started with: template parameters read their overrides from here.
    shell_variables: Mapping[str, str] = field(default_factory=dict)
    host: str = LOOPBACK
    twilio: TwilioAccount = field(default_factory=TwilioAccount)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LocalConfig:
        return cls(
            port=_port(environ.get("PORT", "")),
            api_key=_api_key(environ.get("API_KEY")),
            region=environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or DEFAULT_REGION,
            shell_variables=dict(environ),
            twilio=TwilioAccount.from_environ(environ),
        )


def _port(raw: str) -> int:
    if not raw.strip():
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ConfigError(f"PORT must be a number, got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"PORT must be between 0 and 65535, got {port}")
    return port


def _api_key(raw: str | None) -> str:
    if raw is None:
        return DEFAULT_API_KEY
    if not raw.strip():
        raise ConfigError("API_KEY is set but empty; unset it for the local default")
    return raw


def _non_empty(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name)
    if raw is None:
        return default
    if not raw.strip():
        raise ConfigError(f"{name} is set but empty; unset it for the local default")
    return raw.strip()
