"""What the shell configures about the local stack. The only module of infra.local that reads the
environment the stack was started with (the stack later *writes* os.environ for the handlers).

Settings (each an environment variable; template parameters are read from it too, by UPPER_SNAKE name):

  PORT             the gateway's port on 127.0.0.1 (default 3000; 0 = any free port)
  API_KEY          the key of one researcher named `local-researcher` (default `local-dev-key`, used only
                   when RESEARCHER_KEYS is not set either)
  RESEARCHER_KEYS  named researchers' keys, `name=key,name=key`: names of 1-64 of A-Z a-z 0-9 _ . -,
                   keys of 8-128 printable ASCII characters without spaces or commas. Each becomes an API
                   Gateway API key in moto whose name is the researcher's, as on AWS. With API_KEY too,
                   both sets of keys work.
  AWS_DEFAULT_REGION / AWS_REGION   the region of every local resource (default us-east-1)
  TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER   the fake Twilio's account

No key is ever printed, nor named in an error: only researchers' names are (the well-known local default
`local-dev-key` is the one exception, in the banner).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 3000
DEFAULT_API_KEY = "local-dev-key"
# The researcher API_KEY's key belongs to (API Gateway keys have names; the researchers' API records them).
API_KEY_RESEARCHER = "local-researcher"
RESEARCHER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MIN_KEY_CHARS, MAX_KEY_CHARS = 8, 128  # AWS's maximum; its minimum is 20, see resources.create_api_keys
DEFAULT_STACK_NAME = "sms-habit-coach-local"
DEFAULT_REGION = "us-east-1"
# moto's default account; every ARN the local stack makes up uses it so they all agree.
ACCOUNT_ID = "123456789012"
# The fake Twilio's account: obviously not real. +15005550006 is Twilio's own "valid sender" test number.
DEFAULT_TWILIO_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_TWILIO_AUTH_TOKEN = "local-twilio-auth-token"  # noqa: S105 - a local stand-in, printed at start
DEFAULT_TWILIO_FROM_NUMBER = "+15005550006"

_KEY_CHARACTERS = re.compile(r"[!-~]+")  # printable ASCII, no space: what an x-api-key header carries intact


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
class ResearcherKey:
    """A researcher's key to the API; on AWS an API Gateway API key whose name is the researcher's."""

    name: str
    value: str = field(repr=False)
    source: str = "RESEARCHER_KEYS"  # the setting it came from, for the banner

    @property
    def is_local_default(self) -> bool:
        """The well-known `local-dev-key`: the only key the stack ever prints."""
        return self.value == DEFAULT_API_KEY


@dataclass(frozen=True)
class LocalConfig:
    port: int = DEFAULT_PORT  # 0 = any free port (tests); the stack reports the one it got
    # API_KEY: the key of the researcher `local-researcher`; None when only RESEARCHER_KEYS gives keys.
    api_key: str | None = field(default=DEFAULT_API_KEY, repr=False)
    researcher_keys: tuple[ResearcherKey, ...] = ()  # RESEARCHER_KEYS
    stack_name: str = DEFAULT_STACK_NAME
    region: str = DEFAULT_REGION
    # The variables the stack was started with: template parameters read their overrides from here.
    # Out of the repr: they hold API_KEY, RESEARCHER_KEYS and any other secret of the shell.
    shell_variables: Mapping[str, str] = field(default_factory=dict, repr=False)
    host: str = LOOPBACK
    twilio: TwilioAccount = field(default_factory=TwilioAccount)

    def __post_init__(self) -> None:
        _check_distinct(self.researchers)

    @property
    def researchers(self) -> tuple[ResearcherKey, ...]:
        """Every researcher the gateway lets in: API_KEY's first, then RESEARCHER_KEYS' in their order."""
        from_api_key = () if self.api_key is None else (ResearcherKey(API_KEY_RESEARCHER, self.api_key, "API_KEY"),)
        return (*from_api_key, *self.researcher_keys)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> LocalConfig:
        named = environ.get("RESEARCHER_KEYS")
        researcher_keys = () if named is None else parse_researcher_keys(named)
        api_key = environ.get("API_KEY")
        return cls(
            port=_port(environ.get("PORT", "")),
            # The local default only when the shell gives no key at all.
            api_key=_api_key(api_key) if api_key is not None else (DEFAULT_API_KEY if named is None else None),
            researcher_keys=researcher_keys,
            region=environ.get("AWS_DEFAULT_REGION") or environ.get("AWS_REGION") or DEFAULT_REGION,
            shell_variables=dict(environ),
            twilio=TwilioAccount.from_environ(environ),
        )


def parse_researcher_keys(raw: str) -> tuple[ResearcherKey, ...]:
    """RESEARCHER_KEYS, `alice=key1,bob=key2`. Errors name the entry and the researcher, never the key."""
    if not raw.strip():
        raise ConfigError("RESEARCHER_KEYS is set but empty; unset it, or give name=key,name=key")
    keys: list[ResearcherKey] = []
    for number, entry in enumerate(raw.split(","), start=1):
        name, equals, value = (part.strip() for part in entry.partition("="))
        where = f"RESEARCHER_KEYS entry {number}"
        if not equals:
            raise ConfigError(f"{where} is not name=key (entries are separated by commas)")
        if not RESEARCHER_NAME.fullmatch(name):
            # Not echoed: an entry written key=name would print the key.
            raise ConfigError(f"{where}: the name must be 1-64 of A-Z a-z 0-9 _ . - (written name=key)")
        if not MIN_KEY_CHARS <= len(value) <= MAX_KEY_CHARS:
            raise ConfigError(
                f"{where} ({name}): the key has {len(value)} characters; it needs {MIN_KEY_CHARS} to {MAX_KEY_CHARS}"
            )
        if not _KEY_CHARACTERS.fullmatch(value):
            raise ConfigError(f"{where} ({name}): the key may hold only printable ASCII characters, no spaces")
        keys.append(ResearcherKey(name, value))
    return tuple(keys)


def _check_distinct(researchers: tuple[ResearcherKey, ...]) -> None:
    """Each researcher once, with a key of their own: a shared key could not tell who did what."""
    by_name: dict[str, ResearcherKey] = {}
    by_value: dict[str, ResearcherKey] = {}
    for researcher in researchers:
        if researcher.name in by_name:
            first = by_name[researcher.name]
            if first.source == researcher.source:
                raise ConfigError(f"researcher {researcher.name} appears twice in {researcher.source}")
            raise ConfigError(
                f"researcher {researcher.name} is in {researcher.source}, but API_KEY is already the key of "
                f"{API_KEY_RESEARCHER}: give that researcher another name"
            )
        if researcher.value in by_value:
            first = by_value[researcher.value]
            raise ConfigError(
                f"researchers {first.name} ({first.source}) and {researcher.name} ({researcher.source}) "
                "have the same key; each researcher needs a key of their own"
            )
        by_name[researcher.name] = by_value[researcher.value] = researcher
    if not researchers:
        raise ConfigError("no researcher key: set API_KEY or RESEARCHER_KEYS, or neither for the local default")


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


def _api_key(raw: str) -> str:
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
