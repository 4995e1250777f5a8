"""A fake Twilio REST API for the local stack (DESIGN §7), on the gateway's port under Twilio's own paths:

  POST /2010-04-01/Accounts/{AccountSid}/Messages.json        send: To, From/MessagingServiceSid, Body, StatusCallback,
                                                              ValidityPeriod
  GET  /2010-04-01/Accounts/{AccountSid}/Messages.json        list, newest first: To, From, DateSent, PageSize, Page
  GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  fetch one

with HTTP basic auth (account SID and auth token). It records every message, then a background thread moves
each one to sent and delivered and posts signed status callbacks, as Twilio does. A message whose
ValidityPeriod (seconds, 1-36000; else 400 with 21624) is shorter than the delivery delay expires in the
queue: it ends failed with 30036 and a status callback (at once, not when the period ends);
`fake.validity_period(sid)` tells what a send asked for (Twilio's message resource does not).

Faults, for tests and people: Twilio's magic test numbers (To=+15005550001 -> 21211 invalid number,
To=+15005550004 -> 21610 unsubscribed, ...; see twilio_wire.MAGIC_TO), queued failures, and a time window:
  fake.fail_next(500, count=2)                   the next 2 sends answer 500 (429, 503, or 400 with a code)
  fake.fail_next(500, record=True)               the message is taken but the answer is lost (a 500)
  fake.fail_delivery_next(error_code=30003)      accepted, then undelivered (status callback with ErrorCode)
  fake.fail_until(until, 503, code=None)         every send answers 503 while the fake's clock (in the local
                                                 stack the virtual clock) is before `until`; queued failures
                                                 of fail_next come first
  POST /_local/twilio/faults {"status": 500, "count": 2} / {"delivery": "failed", "error_code": 21610}
                             {"status": 503, "minutes": 120} / {"status": 503, "until": "2026-06-02T10:00:00Z"}
  GET /_local/twilio/faults lists them, DELETE /_local/twilio/faults drops them (the window too),
  DELETE /_local/twilio/messages forgets every message.
"""

from __future__ import annotations

import itertools
import math
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local.config import TwilioAccount
from infra.local.environment import twilio_environment
from infra.local.twilio_wire import (
    API_VERSION,
    MAGIC_FROM,
    MAGIC_TO,
    MAX_BODY_CHARS,
    VALIDITY_PERIOD_EXPIRED,
    SentMessage,
    basic_auth,
    error_response,
    new_sid,
    page_envelope,
    post_signed,
    sent_on,
    validity_period,
)
from infra.local.virtual_clock import LOCAL_VIRTUAL_CLOCK
from infra.local.web import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

API_PREFIX = f"/{API_VERSION}"
CONTROL_PREFIX = "/_local/twilio"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 1000
# Where a message sent through a messaging service (MG...) comes from: Twilio picks a number of its pool.
POOL_NUMBER = "+15005550006"
MAX_WINDOW_MINUTES = 7 * 24 * 60  # over HTTP; `until` sets a later end
FAULT_USAGE = (
    '{"status": 500, "count": 1}, {"delivery": "undelivered", "error_code": 30003}, '
    '{"status": 503, "minutes": 120} or {"status": 503, "until": "2026-06-02T10:00:00Z"}'
)

PostCallback = Callable[[str, dict[str, str], str], "int | None"]  # (url, form, auth token) -> HTTP status


@dataclass(frozen=True)
class SendFault:
    """The answer to one coming send instead of a 201. `record`: the message is taken anyway (a lost answer)."""

    status: int
    code: int | None = None
    record: bool = False


@dataclass(frozen=True)
class FailureWindow:
    """Every send answers `status` (with `code`) while the fake's clock is before `until`."""

    until: datetime
    status: int = 503
    code: int | None = None


@dataclass(frozen=True)
class DeliveryFault:
    """One coming message is accepted, then ends `status` (undelivered or failed) with `error_code`."""

    status: str = "undelivered"
    error_code: int = 30003  # "Unreachable destination handset"


class FakeTwilio:
    """The fake's state and its two route handlers; also the BackgroundService that delivers messages."""

    name = "fake Twilio"

    def __init__(
        self,
        account: TwilioAccount,
        *,
        delivery_delay_seconds: float = 0.0,
        clock: Callable[[], datetime] | None = None,
        post_callback: PostCallback = post_signed,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`delivery_delay_seconds`: how long a message stays queued, as on Twilio, whose callbacks come after
        the answer to the send (0 in tests: wait_idle() says when the callbacks are done)."""
        self.account = account
        self._delay = delivery_delay_seconds
        self._clock = clock or (lambda: datetime.now(UTC))
        self._post = post_callback
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._lock = threading.Condition()
        self._messages: dict[str, SentMessage] = {}
        self._send_faults: list[SendFault] = []
        self._delivery_faults: list[DeliveryFault] = []
        self._window: FailureWindow | None = None
        self._sequence = itertools.count(1)
        self._work: queue.Queue[tuple[str, DeliveryFault | None] | None] = queue.Queue()
        self._undelivered = 0  # messages the delivery thread has not finished with
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what tests and people use ----------------------------------------------------------------
    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Every message taken (oldest first), as Twilio's JSON resource."""
        with self._lock:
            found = sorted(self._messages.values(), key=lambda m: m.sequence)
            return [m.resource() for m in found if to is None or m.to == to]

    def fail_next(self, status: int = 500, count: int = 1, *, code: int | None = None, record: bool = False) -> None:
        if not 400 <= status <= 599 or count < 1:
            raise ValueError("status must be 4xx or 5xx and count at least 1")
        with self._lock:
            self._send_faults.extend([SendFault(status, code, record)] * count)

    def fail_until(self, until: datetime, status: int = 503, code: int | None = None) -> None:
        """Every send fails with `status` until the fake's clock reaches `until` (replacing an earlier window)."""
        if until.tzinfo is None:
            raise ValueError("until must have a timezone, like 2026-06-02T10:00:00Z")
        if not 400 <= status <= 599:
            raise ValueError(f"status must be 4xx or 5xx, got {status}")
        now = self._clock()
        if until <= now:
            raise ValueError(f"until must be after the fake's now ({_iso(now)}), got {_iso(until)}")
        with self._lock:
            self._window = FailureWindow(until.astimezone(UTC), status, code)

    def validity_period(self, sid: str) -> int | None:
        """The ValidityPeriod the send of message `sid` asked for, in seconds; None when it gave none."""
        with self._lock:
            message = self._messages.get(sid)
            if message is None:
                raise KeyError(sid)
            return message.validity_period

    def fail_delivery_next(self, count: int = 1, *, status: str = "undelivered", error_code: int = 30003) -> None:
        if status not in ("undelivered", "failed") or count < 1:
            raise ValueError("status must be undelivered or failed and count at least 1")
        with self._lock:
            self._delivery_faults.extend([DeliveryFault(status, error_code)] * count)

    def clear_faults(self) -> None:
        with self._lock:
            self._send_faults.clear()
            self._delivery_faults.clear()
            self._window = None

    def forget_messages(self) -> None:
        with self._lock:
            self._messages.clear()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every message taken so far is delivered (or failed) and its callbacks are posted."""
        with self._lock:
            return self._lock.wait_for(lambda: self._undelivered == 0, timeout)

    # --- BackgroundService ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._deliver_forever, name="fake-twilio-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._work.put(None)
            self._thread.join(timeout=15)
            self._thread = None

    # --- /2010-04-01 --------------------------------------------------------------------------------
    def handle_api(self, request: HttpRequest) -> HttpResponse | None:
        credentials = basic_auth(request.header("Authorization"))
        if credentials != (self.account.account_sid, self.account.auth_token):
            return error_response(401)
        parts = [unquote(part) for part in request.path.split("/")[2:]]  # after "", "2010-04-01"
        if len(parts) < 3 or parts[0] != "Accounts" or parts[1] != self.account.account_sid:
            return error_response(404, message=f"The requested resource {request.path} was not found")
        if parts[2:] == ["Messages.json"]:
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                return self._list(request)
            return error_response(405)
        if len(parts) == 4 and parts[2] == "Messages" and parts[3].endswith(".json") and request.method == "GET":
            with self._lock:
                message = self._messages.get(parts[3].removesuffix(".json"))
                if message is not None:
                    return json_response(200, message.resource())
        return error_response(404, message=f"The requested resource {request.path} was not found")

    def _create(self, request: HttpRequest) -> HttpResponse:
        form = dict(parse_qsl(request.body.decode("utf-8", errors="replace"), keep_blank_values=True))
        to, body = form.get("To", "").strip(), form.get("Body", "")
        sender, service = form.get("From", "").strip(), form.get("MessagingServiceSid", "").strip()
        callback = form.get("StatusCallback", "").strip() or None
        validity = form.get("ValidityPeriod")
        now = self._clock()
        with self._lock:
            fault = self._send_faults.pop(0) if self._send_faults else None
            if fault is None and self._window is not None and now < self._window.until:
                fault = SendFault(self._window.status, self._window.code)
        if fault is not None and not fault.record:
            return error_response(fault.status, fault.code)
        refusal = self._refusal(to, body, sender, service, callback)
        if refusal is not None:
            return refusal
        try:
            seconds = None if validity is None else validity_period(validity)
        except ValueError:
            return error_response(400, 21624, "Invalid validity period value")
        with self._lock:
            delivery = self._delivery_faults.pop(0) if self._delivery_faults else None
            message = SentMessage(
                sid=new_sid("SM"),
                account_sid=self.account.account_sid,
                to=to,
                from_=sender or None,
                body=body,
                status="queued" if sender else "accepted",
                date_created=now,
                date_updated=now,
                messaging_service_sid=service or None,
                status_callback=callback,
                validity_period=seconds,
                sequence=next(self._sequence),
            )
            self._messages[message.sid] = message
            self._undelivered += 1
            taken = message.resource()  # as created: delivery may move the message on before we answer
        self._work.put((message.sid, delivery))
        self._log(f"fake Twilio: took {message.sid} ({message.status})")
        if fault is not None:
            return error_response(fault.status, fault.code)
        return json_response(201, taken)

    def _refusal(self, to: str, body: str, sender: str, service: str, callback: str | None) -> HttpResponse | None:
        """Twilio's 400 for a send it would refuse, None when it would take it."""
        if not to:
            return error_response(400, 21604, "A 'To' phone number is required.")
        if not sender and not service:
            return error_response(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is required.")
        if not body.strip():
            return error_response(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            return error_response(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if sender in MAGIC_FROM:
            return error_response(400, *MAGIC_FROM[sender])
        if sender and sender != self.account.from_number:
            return error_response(400, 21606, MAGIC_FROM["+15005550007"][1])
        if service and not service.startswith("MG"):
            return error_response(400, 21701, "The Messaging Service Sid is invalid.")
        if to in MAGIC_TO:
            return error_response(400, *MAGIC_TO[to])
        if callback is not None and urlsplit(callback).scheme not in ("http", "https"):
            return error_response(400, 21609, "The StatusCallback URL is not a valid URL.")
        return None

    def _list(self, request: HttpRequest) -> HttpResponse:
        params = dict(request.query_pairs())
        try:
            size = min(int(params.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
            page = int(params.get("Page", "0"))
            dated = [(key, *sent_on(params[key])) for key in ("DateSent", "DateSent<", "DateSent>") if params.get(key)]
        except ValueError:
            return error_response(400, 20001, "Invalid PageSize, Page or DateSent")
        if size < 1 or page < 0:
            return error_response(400, 20001, "Invalid PageSize or Page")
        with self._lock:
            found = [
                m
                for m in sorted(self._messages.values(), key=lambda m: -m.sequence)
                if m.to == params.get("To", m.to)
                and m.from_ == params.get("From", m.from_)
                and all(_sent_within(m, key, low, high) for key, low, high in dated)
            ]
            token = params.get("PageToken", "")  # "PA" + the SID the previous page ended with
            start = next((i + 1 for i, m in enumerate(found) if "PA" + m.sid == token), 0) if token else page * size
            chosen = found[start : start + size]
            records = [m.resource() for m in chosen]
            more = "PA" + chosen[-1].sid if chosen and start + size < len(found) else None
        filters = [(k, v) for k, v in request.query_pairs() if k not in ("PageSize", "Page", "PageToken")]
        return json_response(200, page_envelope(request.path, filters, records, page=page, size=size, more=more))

    # --- /_local/twilio -------------------------------------------------------------------------------
    def handle_control(self, request: HttpRequest) -> HttpResponse | None:
        what = request.path.removeprefix(CONTROL_PREFIX).strip("/")
        if what == "faults" and request.method == "POST":
            try:
                self._queue_fault(request.json())
            except (ValueError, TypeError) as exc:
                return json_response(400, {"message": str(exc)})
        elif what == "faults" and request.method == "DELETE":
            self.clear_faults()
        elif what == "messages" and request.method == "DELETE":
            self.forget_messages()
            return json_response(200, {"messages": []})
        elif what == "messages" and request.method == "GET":
            return json_response(200, {"messages": self.messages()})
        elif what != "faults" or request.method != "GET":
            return None
        now = self._clock()
        with self._lock:
            sends = [asdict(f) for f in self._send_faults]
            deliveries = [asdict(f) for f in self._delivery_faults]
            window = self._window
        shown = None
        if window is not None:
            shown = {**asdict(window), "until": _iso(window.until), "active": now < window.until}
        return json_response(200, {"send": sends, "delivery": deliveries, "window": shown})

    def _queue_fault(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError(f"send {FAULT_USAGE}")
        if "minutes" in spec or "until" in spec:
            self._open_window(spec)
            return
        count = int(spec.get("count", 1))
        if "delivery" in spec:
            self.fail_delivery_next(count, status=str(spec["delivery"]), error_code=int(spec.get("error_code", 30003)))
        else:
            code = None if spec.get("code") is None else int(spec["code"])
            self.fail_next(int(spec.get("status", 500)), count, code=code, record=bool(spec.get("record")))

    def _open_window(self, spec: dict[str, Any]) -> None:
        """{"status": 503, "minutes": 120} or {"status": 503, "until": "...Z"}; ValueError saying what is wrong."""
        unknown = sorted(set(spec) - {"status", "code", "minutes", "until"})
        if unknown:
            raise ValueError(f"a time window takes status, code and minutes or until, not {', '.join(unknown)}")
        if "minutes" in spec and "until" in spec:
            raise ValueError("send minutes or until, not both")
        status, code = spec.get("status", 503), spec.get("code")
        if not _is_int(status):
            raise ValueError(f"status must be a whole number, 4xx or 5xx, got {status!r}")
        if code is not None and not _is_int(code):
            raise ValueError(f"code must be a whole number (a Twilio error code), got {code!r}")
        if "minutes" in spec:
            minutes = spec["minutes"]
            if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes):
                raise ValueError(f"minutes must be a number, got {minutes!r}")
            if not 0 < minutes <= MAX_WINDOW_MINUTES:
                raise ValueError(f"minutes must be more than 0 and at most {MAX_WINDOW_MINUTES}, got {minutes}")
            until = self._clock() + timedelta(minutes=minutes)
        else:
            until = _moment(spec["until"])
        self.fail_until(until, status, code)

    # --- delivery ---------------------------------------------------------------------------------------
    def _deliver_forever(self) -> None:
        while (item := self._work.get()) is not None:
            sid, fault = item
            with self._lock:
                message = self._messages.get(sid)
                validity = message.validity_period if message is not None else None
            # It would stay queued longer than it may: Twilio fails it when the period ends; nothing
            # happens to it meanwhile, so here it fails at once.
            expires = validity is not None and self._delay > validity
            if self._delay > 0 and not expires:
                self._stopping.wait(self._delay)
            try:
                if expires:
                    self._log(f"fake Twilio: {sid} expired in the queue (ValidityPeriod {validity} s)")
                    self._advance(sid, "failed", VALIDITY_PERIOD_EXPIRED)
                    continue
                self._advance(sid, "sent")
                if fault is None:
                    self._advance(sid, "delivered")
                else:
                    self._advance(sid, fault.status, fault.error_code)
            except Exception:  # a bug here must not stop every later delivery
                traceback.print_exc(file=sys.stderr)
            finally:
                with self._lock:
                    self._undelivered -= 1
                    self._lock.notify_all()

    def _advance(self, sid: str, status: str, error_code: int | None = None) -> None:
        with self._lock:
            message = self._messages.get(sid)
            if message is None:  # forgotten meanwhile
                return
            now = self._clock()
            message.status, message.date_updated = status, now
            message.from_ = message.from_ or POOL_NUMBER
            if status == "sent":
                message.date_sent = now
            if error_code is not None:
                message.error_code, message.error_message = error_code, f"Twilio error {error_code}"
            url, params = message.status_callback, message.callback_params()
        if url is None or self._stopping.is_set():
            return
        answer = self._post(url, params, self.account.auth_token)
        with self._lock:
            message.callbacks.append(status)
        self._log(f"fake Twilio: {sid} {status} -> status callback {answer or 'unreachable'}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _moment(value: Any) -> datetime:
    """An ISO 8601 time with a zone ("2026-06-02T10:00:00Z"); ValueError otherwise."""
    usage = f"until must be an ISO 8601 time with a zone, like 2026-06-02T10:00:00Z, got {value!r}"
    if not isinstance(value, str):
        raise ValueError(usage)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(usage) from None
    if moment.tzinfo is None:
        raise ValueError(usage)
    return moment


def _sent_within(message: SentMessage, key: str, low: datetime, high: datetime) -> bool:
    """Whether the message passes a DateSent filter naming the moment low (== high) or the day [low, high)."""
    moment = message.date_sent or message.date_created
    if key == "DateSent<":
        return moment < high if high > low else moment <= low
    if key == "DateSent>":
        return moment >= low
    return moment.date() == low.date()


class FakeTwilioExtension:
    """Extension: the fake Twilio on the gateway's port, the handlers pointed at it; `.fake` once started."""

    def __init__(self, *, delivery_delay_seconds: float = 0.5, clock: Callable[[], datetime] | None = None) -> None:
        """`clock`: what dates messages; by default the virtual clock the handlers read, because the sender
        compares a message's date_created with its own (virtual) attempt times."""
        self.delivery_delay_seconds = delivery_delay_seconds
        self.clock = clock
        self.fake: FakeTwilio | None = None

    def __call__(self, stack: LocalStack) -> None:
        account = stack.config.twilio
        if self.clock is None:
            self.clock = LOCAL_VIRTUAL_CLOCK.now
        fake = FakeTwilio(account, delivery_delay_seconds=self.delivery_delay_seconds, clock=self.clock)
        stack.mount(API_PREFIX, fake.handle_api)
        stack.mount(CONTROL_PREFIX, fake.handle_control)
        stack.add_service(fake)
        stack.add_environment(
            twilio_environment(account, api_base_url=stack.base_url, public_base_url=stack.public_base_url)
        )
        messages = f"{stack.base_url}{API_PREFIX}/Accounts/{account.account_sid}/Messages.json"
        stack.add_banner_line("Fake Twilio", f"{messages}  (faults: POST {stack.base_url}{CONTROL_PREFIX}/faults)")
        stack.add_banner_line(
            "Twilio account",
            f"{account.account_sid} / {account.auth_token} / from {account.from_number}"
            "  (set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER to change)",
        )
        self.fake = fake
