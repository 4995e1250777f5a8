"""Twilio's REST API on the wire, as the fake Twilio speaks it: message resources, list pages, errors,
magic test numbers and signed callbacks. Field names follow twilio's own MessageInstance and Page."""

from __future__ import annotations

import base64
import secrets
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any

from twilio.request_validator import RequestValidator

from infra.local.web import HttpResponse, json_response

API_VERSION = "2010-04-01"
MAX_BODY_CHARS = 1600
VALIDITY_PERIODS = range(1, 36001)  # seconds a message may wait in Twilio's queue (ValidityPeriod)
VALIDITY_PERIOD_EXPIRED = 30036  # the error code of a message that waited longer

# Twilio's documented magic test numbers (test credentials), with the error each one gives.
MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region of the 'To' number."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}
MAGIC_FROM = {
    "+15005550001": (21212, "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID."),
    "+15005550007": (21606, "The 'From' phone number is not a valid, SMS-capable Twilio number for this account."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued messages."),
}
# The code Twilio puts in an error of each HTTP status when nothing more specific applies.
STATUS_CODES = {400: 20001, 401: 20003, 404: 20404, 405: 20004, 429: 20429, 500: 20500, 503: 20503}
STATUS_TEXT = {
    400: "Bad request",
    401: "Authenticate",
    404: "The requested resource was not found",
    405: "Method not allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def new_sid(prefix: str) -> str:
    """ "SM" + 32 hex digits, as Twilio's SIDs look."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime | None) -> str | None:
    """ "Thu, 24 Aug 2023 05:01:45 +0000": Twilio's dates, to the second."""
    return format_datetime(moment.replace(microsecond=0)) if moment is not None else None


def error_response(status: int, code: int | None = None, message: str | None = None) -> HttpResponse:
    """Twilio's legacy error body, which twilio's client turns into TwilioRestException(status, code)."""
    code = code or STATUS_CODES.get(status, 20001)
    payload = {
        "code": code,
        "message": message or STATUS_TEXT.get(status, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        headers = (("WWW-Authenticate", 'Basic realm="Twilio API"'),)
    return json_response(status, payload, headers)


def basic_auth(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an `Authorization: Basic ...` header, None when there is no usable one."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
    except ValueError:  # bad base64 (binascii.Error) or bad UTF-8
        return None
    return user, password


@dataclass
class SentMessage:
    """One message the fake took. Mutable: the delivery thread moves its status on (under the fake's lock)."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    status: str
    date_created: datetime
    date_updated: datetime
    messaging_service_sid: str | None = None
    status_callback: str | None = None
    date_sent: datetime | None = None
    error_code: int | None = None
    error_message: str | None = None
    validity_period: int | None = None  # seconds, as the send asked; not part of Twilio's resource
    sequence: int = 0  # creation order: newest first in lists even within one second
    callbacks: list[str] = field(default_factory=list)  # statuses posted to status_callback

    def resource(self) -> dict[str, Any]:
        # Imported here: the stack puts the coach layer on sys.path only once it starts.
        from coach.domain.sms_text import count_segments

        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": rfc2822(self.date_created),
            "date_sent": rfc2822(self.date_sent),
            "date_updated": rfc2822(self.date_updated),
            "direction": "outbound-api",
            "error_code": self.error_code,
            "error_message": self.error_message,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(count_segments(self.body).segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def callback_params(self) -> dict[str, str]:
        """The form Twilio posts to the StatusCallback URL for the current status."""
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "From": self.from_ or "",
            "MessageSid": self.sid,
            "MessageStatus": self.status,
            "SmsSid": self.sid,
            "SmsStatus": self.status,
            "To": self.to,
        }
        if self.messaging_service_sid:
            params["MessagingServiceSid"] = self.messaging_service_sid
        if self.error_code is not None:
            params["ErrorCode"] = str(self.error_code)
        if self.status == "delivered" and self.date_sent is not None:
            params["RawDlrDoneDate"] = self.date_updated.strftime("%y%m%d%H%M")
        return params


def validity_period(value: str) -> int:
    """A ValidityPeriod form value in seconds: a whole number 1-36000. ValueError otherwise (Twilio's 21624)."""
    text = value.strip()
    if not text.isascii() or not text.isdigit() or int(text) not in VALIDITY_PERIODS:
        raise ValueError(f"invalid validity period {value!r}")
    return int(text)


def sent_on(value: str) -> tuple[datetime, datetime]:
    """A DateSent filter value as (low, high): "2024-05-01" is the day [low, high) in UTC, an ISO time
    ("2024-05-01T08:00:00Z", what twilio's client sends) the moment low == high. ValueError otherwise."""
    if len(value) == 10:
        day = datetime.combine(date.fromisoformat(value), time(), UTC)
        return day, day + timedelta(days=1)
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment, moment


def page_envelope(
    path: str, filters: list[tuple[str, str]], records: list[dict[str, Any]], *, page: int, size: int, more: str | None
) -> dict[str, Any]:
    """Twilio's paging envelope; `more` is the PageToken of the next page, None on the last one."""

    def uri(extra: list[tuple[str, str]]) -> str:
        return f"{path}?{urllib.parse.urlencode([*filters, ('PageSize', str(size)), *extra])}"

    start = page * size
    return {
        "end": start + len(records) - 1 if records else start,
        "first_page_uri": uri([("Page", "0")]),
        "messages": records,
        "next_page_uri": uri([("Page", str(page + 1)), ("PageToken", more)]) if more else None,
        "page": page,
        "page_size": size,
        "previous_page_uri": uri([("Page", str(page - 1))]) if page > 0 else None,
        "start": start,
        "uri": uri([("Page", str(page))]),
    }


def post_signed(url: str, params: dict[str, str], auth_token: str, timeout: float = 10.0) -> int | None:
    """POST a form to `url` signed as Twilio signs webhooks; the answer's status, None when unreachable."""
    signature = RequestValidator(auth_token).compute_signature(url, params)
    request = urllib.request.Request(
        url,
        data=urllib.parse.urlencode(params).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": new_sid(""),
        },
    )
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code)
    except (OSError, ValueError):  # refused, timed out, not an http(s) URL
        return None
