"""The SmsSender port on Twilio's REST API (the official `twilio` client).

`twilio.rest` and `requests` are imported when the first message is sent, never at import: the webhook
imports this package and must stay light.

What Twilio answers becomes a domain error:
  - 429, 5xx, timeouts, connection errors: retried here with exponential backoff, then DeliveryUnavailable
    (the caller's work goes back to SQS and, after its retries, to the DLQ);
  - any other 4xx with a Twilio error code (21211 invalid number, 21610 opted out, ...): DeliveryRejected
    at once, since retrying cannot help;
  - 401, 403, 404: our credentials or account are wrong, not the message: DeliveryUnavailable at once, so
    the work waits in SQS/the DLQ until an operator fixes the secret instead of being marked failed.
A retry after an answer that got lost (a read timeout, a 5xx) first asks Twilio whether the message was
created after all: a message with this body created since the first try whose SID no other outbox item owns
(find_sent). Never the body alone: an identical earlier text belongs to its own item. Each send's status
callback URL names its outbox item, so a callback is ours however early it comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from coach.adapters.clock import SystemClock
from coach.adapters.secrets import TwilioCredentials, twilio_credentials
from coach.domain.errors import DeliveryRejected, DeliveryUnavailable
from coach.domain.participant import mask_phone
from coach.observability import logger
from coach.ports import Clock, SentSms
from coach.settings import TwilioSettings

LOOKUP_PAGE_SIZE = 20
MAX_VALIDITY_SECONDS = 36_000
# How far before our first try a message Twilio created may be dated: Twilio's clock and ours differ a
# little, and Twilio dates messages to the second.
CLOCK_TOLERANCE = timedelta(seconds=1)
_NOT_MINE_STATUSES = {401, 403, 404}


class _Retryable(Exception):
    """One try failed in a way another try may fix; `delivered_maybe` when Twilio may have taken it."""

    def __init__(self, reason: str, *, delivered_maybe: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delivered_maybe = delivered_maybe


class TwilioSmsSender:
    """Implements coach.ports.SmsSender.

    `client` replaces twilio's Client (tests); `sleep` and `clock` are injected so tests never wait.
    Credentials come from `credentials`, else from twilio_credentials(settings) on every call (cheap:
    cached), and the client is rebuilt when they change (a rotated secret).
    """

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        client: Any | None = None,
        credentials: TwilioCredentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._given_client = client
        self._given_credentials = credentials
        self._sleep = sleep
        self._clock = clock or SystemClock()
        self._built: tuple[TwilioCredentials, Any] | None = None

    # --- the port --------------------------------------------------------------------------------
    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = lambda sid: False,
    ) -> SentSms:
        credentials = self._credentials()
        request: dict[str, Any] = {"to": to, "body": body}
        if validity_seconds is not None:
            # Twilio drops a message still queued when this runs out (error 30036): a nudge past its
            # window is not sent late from Twilio's queue either. Twilio takes 1 to 36,000 seconds.
            request["validity_period"] = min(max(int(validity_seconds), 1), MAX_VALIDITY_SECONDS)
        if credentials.uses_messaging_service:
            request["messaging_service_sid"] = credentials.sender
        else:
            request["from_"] = credentials.sender
        if self._settings.status_callback_url:
            request["status_callback"] = with_query(self._settings.status_callback_url, callback_params or {})
        started = self._clock.now()
        attempts = self._settings.send_attempts
        reason, unsure = "", False
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._pause(attempt, reason, to)
            try:
                if unsure:  # the last try may have got through: look before sending again
                    earlier = self._unclaimed_sent(credentials, to, body, started - CLOCK_TOLERANCE, claimed)
                    if earlier is not None:
                        logger.info("sms found sent", extra={"to": mask_phone(to), "sid": earlier.sid})
                        return earlier
                    unsure = False
                message = self._call(lambda client: client.messages.create(**request))
            except _Retryable as failure:
                reason, unsure = failure.reason, unsure or failure.delivered_maybe
                continue
            sent = _sent_sms(message)
            logger.info("sms sent", extra={"to": mask_phone(to), "sid": sent.sid, "status": sent.status})
            return sent
        logger.warning("sms not sent", extra={"to": mask_phone(to), "attempts": attempts, "reason": reason})
        raise DeliveryUnavailable(f"Twilio did not take the message after {attempts} tries ({reason})")

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = lambda sid: False
    ) -> SentSms | None:
        credentials = self._credentials()
        attempts = self._settings.send_attempts
        reason = ""
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._pause(attempt, reason, to)
            try:
                return self._unclaimed_sent(credentials, to, body, since, claimed)
            except _Retryable as failure:
                reason = failure.reason
        raise DeliveryUnavailable(f"cannot list Twilio's messages after {attempts} tries ({reason})")

    # --- helpers ---------------------------------------------------------------------------------
    def _unclaimed_sent(
        self, credentials: TwilioCredentials, to: str, body: str, since: datetime, claimed: Callable[[str], bool]
    ) -> SentSms | None:
        """The oldest message to `to` with exactly this body, created at or after `since`, that no other item
        owns (one small page). An identical earlier text is owned by its own item, so it cannot hide this one."""
        filters: dict[str, Any] = {"to": to, "limit": LOOKUP_PAGE_SIZE, "page_size": LOOKUP_PAGE_SIZE}
        if not credentials.uses_messaging_service:
            filters["from_"] = credentials.sender  # a messaging service's messages carry the number it picked
        # Twilio dates messages to the second: a message created during the second `since` falls in counts.
        floor = (since if since.tzinfo else since.replace(tzinfo=UTC)).replace(microsecond=0)
        try:
            messages = self._call(lambda client: client.messages.list(**filters))
        except DeliveryRejected as exc:  # a 4xx on a lookup says nothing about a message
            raise DeliveryUnavailable(f"Twilio refused to list messages ({exc.code})") from exc
        for message in reversed(list(messages)):  # Twilio lists newest first
            created = message.date_created
            if (
                message.body == body
                and created is not None
                and created >= floor
                and str(message.direction or "outbound-api").startswith("outbound")
                and (not credentials.uses_messaging_service or message.messaging_service_sid == credentials.sender)
                and not claimed(str(message.sid))
            ):
                return _sent_sms(message)
        return None

    def _call(self, operation: Callable[[Any], Any]) -> Any:
        """Run one REST call; a failure worth another try becomes _Retryable, the rest domain errors."""
        import requests
        from twilio.base.exceptions import TwilioException, TwilioRestException

        credentials = self._credentials()
        try:
            return operation(self._client(credentials))
        except TwilioRestException as exc:
            raise _from_status(exc.status, exc.code) from exc
        except TwilioException as exc:  # a list page that was not a 200 ("Unable to fetch page", response)
            response = exc.args[1] if len(exc.args) > 1 else None
            status = getattr(response, "status_code", None)
            raise _from_status(status, None) from exc
        except requests.RequestException as exc:
            raise _Retryable(type(exc).__name__, delivered_maybe=_may_have_arrived(exc)) from exc

    def _pause(self, attempt: int, reason: str, to: str) -> None:
        delay = self._settings.send_backoff_seconds * 2 ** (attempt - 2)
        logger.warning(
            "twilio call failed, trying again",
            extra={"to": mask_phone(to), "attempt": attempt, "reason": reason, "delay_seconds": delay},
        )
        self._sleep(delay)

    def _credentials(self) -> TwilioCredentials:
        return self._given_credentials or twilio_credentials(self._settings)

    def _client(self, credentials: TwilioCredentials) -> Any:
        if self._given_client is not None:
            return self._given_client
        if self._built is None or self._built[0] != credentials:
            from twilio.rest import Client

            from coach.adapters.twilio_http import CoachTwilioHttpClient

            http_client = CoachTwilioHttpClient(
                timeout=self._settings.send_timeout_seconds, base_url=self._settings.twilio_api_base_url
            )
            client = Client(credentials.account_sid, credentials.auth_token, http_client=http_client)
            self._built = (credentials, client)
        return self._built[1]


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` added to its query string (Twilio signs the whole URL, query included)."""
    if not params:
        return url
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, urlencode(sorted(params.items()))) if q)
    return urlunsplit(parts._replace(query=query))


def _from_status(status: int | None, code: int | None) -> Exception:
    if status is None or status == 429 or status >= 500:
        return _Retryable(f"HTTP {status}", delivered_maybe=status is None or status >= 500)
    if status in _NOT_MINE_STATUSES:
        return DeliveryUnavailable(f"Twilio answered {status} ({code}): check the account SID and auth token")
    # Twilio's own text may quote the phone number, and callers log this error: keep only the status.
    return DeliveryRejected(code, f"Twilio answered {status}")


def _may_have_arrived(exc: Exception) -> bool:
    """False only when the connection was never made, so Twilio cannot have seen the request."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError  # NewConnectionError (refused, DNS) is one too

    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ConnectionError) and exc.args:
        return not isinstance(getattr(exc.args[0], "reason", None), ConnectTimeoutError)
    return True


def _sent_sms(message: Any) -> SentSms:
    return SentSms(
        sid=str(message.sid),
        status=str(message.status),
        to=str(message.to),
        body=str(message.body or ""),
        date_created=message.date_created,
    )
