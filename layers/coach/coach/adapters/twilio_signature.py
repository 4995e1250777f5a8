"""Is this API Gateway event a request Twilio signed? X-Twilio-Signature, checked with twilio's RequestValidator.

Twilio signs the URL it called (as configured in the console or as the status-callback URL) followed by
the form fields. That URL is PUBLIC_BASE_URL + the route's path + the query string when PUBLIC_BASE_URL
is set; otherwise it is rebuilt from the request:
  - scheme from X-Forwarded-Proto, host from Host (a port in it is kept; the validator tries the URL with
    and without the default port, since Twilio signs either);
  - path: on API Gateway's own host (*.amazonaws.com) the URL carries the stage, "/Prod/twilio/sms"; a
    custom domain (or the local stack) has none. requestContext.path is also tried when it differs (a
    custom domain's base-path mapping shows there);
  - query: API Gateway hands it over decoded (multiValueQueryStringParameters), so it is re-encoded in the
    order received, names first seen first, both with %20 and with + for a space. A URL whose query
    repeats a name between other names, or encodes characters unusually, cannot be rebuilt: set
    PUBLIC_BASE_URL and keep the webhook's query plain.

Only `twilio.request_validator` is imported (a few milliseconds); never twilio.rest.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, urlencode

from twilio.request_validator import RequestValidator

from coach.adapters.secrets import twilio_credentials
from coach.domain.errors import DomainError
from coach.settings import TwilioSettings

SIGNATURE_HEADER = "x-twilio-signature"


class ForgedWebhook(DomainError):
    """The request does not carry a valid Twilio signature for the URL it was sent to (403)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"rejected webhook: {reason}")
        self.reason = reason


class _FormFields(dict[str, str]):
    """The form as a flat dict (the last value of a repeated name), keeping every value for the signature."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._all: dict[str, list[str]] = {}
        for name, value in pairs:
            self._all.setdefault(name, []).append(value)

    def getall(self, name: str) -> list[str]:  # what RequestValidator asks a multi-dict for
        return self._all[name]


@dataclass(frozen=True)
class WebhookRequest:
    urls: tuple[str, ...]  # the URL Twilio called, each way it may have been spelled
    fields: Mapping[str, str]
    signature: str | None


def webhook_request(event: Mapping[str, Any], public_base_url: str | None, max_body_bytes: int) -> WebhookRequest:
    """The parts of an API Gateway REST proxy event that Twilio signed. Raises ForgedWebhook for a body
    that no Twilio request has (too large, not base64 when flagged so, not a UTF-8 form)."""
    return WebhookRequest(
        urls=called_urls(event, public_base_url),
        fields=_form(event, max_body_bytes),
        signature=_header(event, SIGNATURE_HEADER),
    )


def called_urls(event: Mapping[str, Any], public_base_url: str | None) -> tuple[str, ...]:
    """The URL of this request as Twilio may have signed it (see the module docstring)."""
    if public_base_url:
        resource = str(event.get("resource") or "")
        path = resource if resource and "{" not in resource else str(event.get("path") or "/")
        bases = [public_base_url.rstrip("/") + path]
    else:
        bases = _rebuilt_urls(event)
    queries = _queries(event.get("multiValueQueryStringParameters") or {})
    return tuple(dict.fromkeys(base + query for base in bases for query in queries))


def _rebuilt_urls(event: Mapping[str, Any]) -> list[str]:
    context = event.get("requestContext") or {}
    scheme = (_header(event, "x-forwarded-proto") or "https").split(",")[0].strip().lower()
    host = _header(event, "host") or str(context.get("domainName") or "")
    path = str(event.get("path") or "/")
    stage = str(context.get("stage") or "")
    if host.split(":")[0].lower().endswith(".amazonaws.com") and stage:
        paths = [f"/{stage}{path}"]
    else:
        paths = [path, str(context.get("path") or path).split("?")[0]]
    return [f"{scheme}://{host}{p}" for p in dict.fromkeys(paths)]


def _queries(params: Mapping[str, Sequence[str] | None]) -> list[str]:
    if not params:
        return [""]
    pairs = [(name, value) for name, values in params.items() for value in values or ()]
    encodings = (urlencode(pairs, quote_via=quote, safe="-_.~"), urlencode(pairs, quote_via=quote_plus))
    return [f"?{query}" for query in dict.fromkeys(encodings)]


def _header(event: Mapping[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and value is not None:
            return str(value)
    return None


def _form(event: Mapping[str, Any], max_body_bytes: int) -> _FormFields:
    body = event.get("body") or ""
    if len(body) > max_body_bytes * 4 // 3 + 4:
        raise ForgedWebhook("body too large")
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8")
        if len(raw) > max_body_bytes:
            raise ForgedWebhook("body too large")
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict", max_num_fields=100)
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ForgedWebhook(f"body is not a form ({type(exc).__name__})") from exc
    return _FormFields(pairs)


class TwilioSignature:
    """Checks X-Twilio-Signature (HMAC-SHA1 with the account's auth token) with twilio's RequestValidator."""

    def __init__(self, auth_token: Callable[[], str]) -> None:
        self._auth_token = auth_token

    def verify(self, request: WebhookRequest) -> Mapping[str, str]:
        """The request's form fields when Twilio signed it; raises ForgedWebhook otherwise."""
        if not request.signature:
            raise ForgedWebhook("no X-Twilio-Signature header")
        validator = RequestValidator(self._auth_token())
        if not any(validator.validate(url, request.fields, request.signature) for url in request.urls):
            raise ForgedWebhook("X-Twilio-Signature does not match the URL and form")
        return request.fields


def auth_token(settings: TwilioSettings) -> str:
    """The token Twilio signs webhooks with: TWILIO_AUTH_TOKEN, else the Twilio secret (cached)."""
    return settings.twilio_auth_token or twilio_credentials(settings).auth_token
