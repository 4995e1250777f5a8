"""The fake Twilio, read with twilio's own client: Twilio's JSON and paging, filters, auth, faults (queued
and a time window on the fake's clock), ValidityPeriod, and signed status callbacks that twilio's
RequestValidator accepts. Over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from coach.adapters.twilio_http import CoachTwilioHttpClient
from infra.local.config import ConfigError, LocalConfig, TwilioAccount
from tests.support.twilio import ACCOUNT, CallbackSink, ServedFake, callback_sink, serve_fake_twilio

ALICE, BOB = "+12065550100", "+12065550101"


# One server each for the module (stopping one waits out its poll interval); every test starts clean.
@pytest.fixture(scope="module")
def sink_once() -> Iterator[CallbackSink]:
    with callback_sink() as sink:
        yield sink


@pytest.fixture
def sink(sink_once: CallbackSink) -> CallbackSink:
    sink_once.received.clear()
    return sink_once


class ManualClock:
    """The fake's clock, moved only by the test (in the local stack: the virtual clock)."""

    def __init__(self) -> None:
        self.moment = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.moment


@pytest.fixture(scope="module")
def timed_once() -> Iterator[tuple[ServedFake, ManualClock]]:
    clock = ManualClock()
    with serve_fake_twilio(clock=clock.now) as served:
        yield served, clock


@pytest.fixture
def timed(timed_once: tuple[ServedFake, ManualClock]) -> tuple[ServedFake, ManualClock]:
    """A fake Twilio on a clock the test moves, idle, with no messages and no faults."""
    served, clock = timed_once
    assert served.fake.wait_idle()
    served.fake.forget_messages()
    served.fake.clear_faults()
    clock.moment = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    return timed_once


def client(served: ServedFake, account: TwilioAccount = ACCOUNT, token: str | None = None) -> Any:
    http = CoachTwilioHttpClient(timeout=5, base_url=served.base_url)
    return Client(account.account_sid, token or account.auth_token, http_client=http)


def raw(served: ServedFake, method: str, url: str, body: Any = None, auth: tuple[str, str] | None = None) -> Any:
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_a_send_answers_in_twilios_shape(served: ServedFake) -> None:
    sent = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="Hi there")

    assert re.fullmatch(r"SM[0-9a-f]{32}", sent.sid)
    assert (sent.account_sid, sent.to, sent.from_, sent.body) == (
        ACCOUNT.account_sid,
        ALICE,
        "+15005550006",
        "Hi there",
    )
    assert sent.status == "queued"
    assert sent.direction == "outbound-api"
    assert sent.num_segments == "1"
    assert sent.api_version == "2010-04-01"
    assert sent.uri == f"/2010-04-01/Accounts/{ACCOUNT.account_sid}/Messages/{sent.sid}.json"
    assert sent.error_code is None
    assert abs(sent.date_created - datetime.now(UTC)) < timedelta(seconds=5)

    fetched = client(served).messages(sent.sid).fetch()
    assert (fetched.sid, fetched.body) == (sent.sid, "Hi there")
    assert served.fake.messages()[0]["sid"] == sent.sid


def test_segments_are_counted_as_gsm7_or_ucs2(served: ServedFake) -> None:
    long_text = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="x" * 161)
    emoji = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="🙂" * 40)

    assert (long_text.num_segments, emoji.num_segments) == ("2", "2")


def test_a_messaging_service_send_is_accepted_and_gets_a_number(served: ServedFake) -> None:
    service = "MG" + "7" * 32

    sent = client(served).messages.create(to=ALICE, messaging_service_sid=service, body="hi")
    assert served.fake.wait_idle()

    assert (sent.status, sent.from_, sent.messaging_service_sid) == ("accepted", None, service)
    assert client(served).messages(sent.sid).fetch().from_ == "+15005550006"


def test_lists_filter_by_to_and_from_newest_first_across_pages(served: ServedFake) -> None:
    twilio = client(served)
    for n in range(5):
        twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body=f"alice {n}")
    twilio.messages.create(to=BOB, from_=ACCOUNT.from_number, body="bob")

    alice = twilio.messages.list(to=ALICE, page_size=2)
    bob = twilio.messages.list(to=BOB, from_=ACCOUNT.from_number)

    assert [m.body for m in alice] == [f"alice {n}" for n in (4, 3, 2, 1, 0)]
    assert [m.body for m in bob] == ["bob"]
    assert twilio.messages.list(to=ALICE, limit=3)[-1].body == "alice 2"
    assert twilio.messages.list(from_="+15005550099") == []


def test_the_paging_envelope_is_twilios(served: ServedFake) -> None:
    twilio = client(served)
    for n in range(3):
        twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body=f"m{n}")

    status, page = raw(served, "GET", served.messages_url + "?To=%2B12065550100&PageSize=2", auth=credentials())

    assert status == 200
    assert set(page) == {
        "messages",
        "end",
        "first_page_uri",
        "next_page_uri",
        "page",
        "page_size",
        "previous_page_uri",
        "start",
        "uri",
    }
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    assert page["uri"].startswith(f"/2010-04-01/Accounts/{ACCOUNT.account_sid}/Messages.json?To=%2B12065550100")
    assert "Page=1" in page["next_page_uri"]
    assert page["previous_page_uri"] is None


def test_date_sent_filters_are_understood(served: ServedFake) -> None:
    twilio = client(served)
    twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body="now")
    an_hour_ago, in_an_hour = datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)

    assert len(twilio.messages.list(to=ALICE, date_sent_after=an_hour_ago)) == 1
    assert twilio.messages.list(to=ALICE, date_sent_after=in_an_hour) == []
    assert twilio.messages.list(to=ALICE, date_sent_before=an_hour_ago) == []
    today = datetime.now(UTC).date().isoformat()
    assert raw(served, "GET", f"{served.messages_url}?DateSent={today}", auth=credentials())[1]["messages"]
    assert raw(served, "GET", f"{served.messages_url}?DateSent=soon", auth=credentials())[0] == 400


def credentials(account: TwilioAccount = ACCOUNT) -> tuple[str, str]:
    return account.account_sid, account.auth_token


def test_requests_need_the_account_sid_and_token(served: ServedFake) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client(served, token="wrong-token").messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")
    assert (raised.value.status, raised.value.code) == (401, 20003)

    status, body = raw(served, "GET", served.messages_url)
    assert (status, body["code"], body["status"]) == (401, 20003, 401)
    assert served.fake.messages() == []


def test_another_accounts_path_is_not_found(served: ServedFake) -> None:
    other = served.messages_url.replace(ACCOUNT.account_sid, "AC" + "9" * 32)

    status, body = raw(served, "GET", other, auth=credentials())

    assert (status, body["code"]) == (404, 20404)
    assert raw(served, "GET", served.messages_url.replace(".json", "/SMnope.json"), auth=credentials())[0] == 404


@pytest.mark.parametrize(("to", "code"), [("+15005550001", 21211), ("+15005550004", 21610), ("+15005550002", 21612)])
def test_twilios_magic_numbers_give_their_errors(served: ServedFake, to: str, code: int) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client(served).messages.create(to=to, from_=ACCOUNT.from_number, body="hi")

    assert (raised.value.status, raised.value.code) == (400, code)
    assert served.fake.messages() == []


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"to": ALICE, "from_": "+15005550006"}, 21602),  # no body
        ({"to": ALICE, "body": "hi"}, 21603),  # no sender
        ({"to": ALICE, "from_": "+12065550199", "body": "hi"}, 21606),  # not our number
        ({"to": ALICE, "from_": "+15005550006", "body": "x" * 1601}, 21617),
        ({"to": ALICE, "from_": "+15005550006", "body": "hi", "status_callback": "file:///etc/passwd"}, 21609),
    ],
)
def test_sends_twilio_would_refuse_are_refused(served: ServedFake, form: dict[str, str], code: int) -> None:
    with pytest.raises(TwilioRestException) as raised:
        client(served).messages.create(**form)

    assert raised.value.code == code


def test_queued_failures_answer_the_next_sends_then_stop(served: ServedFake) -> None:
    served.fake.fail_next(503, count=2)
    twilio = client(served)

    codes = []
    for _ in range(2):
        with pytest.raises(TwilioRestException) as raised:
            twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")
        codes.append((raised.value.status, raised.value.code))
    sent = twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")

    assert codes == [(503, 20503), (503, 20503)]
    assert [m["sid"] for m in served.fake.messages()] == [sent.sid]


def test_faults_can_be_queued_listed_and_dropped_over_http(served: ServedFake) -> None:
    faults = f"{served.base_url}/_local/twilio/faults"

    assert raw(served, "POST", faults, {"status": 429, "count": 2})[0] == 200
    assert raw(served, "POST", faults, {"delivery": "failed", "error_code": 21610})[0] == 200
    _, listed = raw(served, "GET", faults)
    assert listed == {
        "send": [{"status": 429, "code": None, "record": False}] * 2,
        "delivery": [{"status": "failed", "error_code": 21610}],
        "window": None,
    }
    assert raw(served, "POST", faults, {"status": 200})[0] == 400
    assert raw(served, "POST", faults, [1])[0] == 400
    raw(served, "DELETE", faults)
    assert raw(served, "GET", faults)[1] == {"send": [], "delivery": [], "window": None}


def send_fails(served: ServedFake) -> tuple[int, int] | None:
    """(status, code) of a send that failed, None when it was taken."""
    try:
        client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")
    except TwilioRestException as exc:
        return exc.status, exc.code
    return None


def test_a_time_window_fails_every_send_until_the_fakes_clock_reaches_its_end(
    timed: tuple[ServedFake, ManualClock],
) -> None:
    served, clock = timed
    served.fake.fail_until(clock.moment + timedelta(hours=2), 503)
    served.fake.fail_next(429)

    during = [send_fails(served) for _ in range(3)]
    clock.moment += timedelta(hours=1, minutes=59, seconds=59)
    at_the_end = send_fails(served)
    clock.moment += timedelta(seconds=1)
    after = send_fails(served)

    assert during == [(429, 20429), (503, 20503), (503, 20503)]  # the queued failure comes first
    assert at_the_end == (503, 20503)
    assert after is None
    assert len(served.fake.messages()) == 1


def test_a_time_window_can_carry_a_twilio_error_code(timed: tuple[ServedFake, ManualClock]) -> None:
    served, clock = timed
    served.fake.fail_until(clock.moment + timedelta(minutes=5), 429, code=20429)

    assert send_fails(served) == (429, 20429)
    with pytest.raises(ValueError, match="after the fake's now"):
        served.fake.fail_until(clock.moment - timedelta(minutes=5))
    with pytest.raises(ValueError, match="timezone"):
        served.fake.fail_until(datetime(2026, 6, 2, 10, 0))  # naive: no zone


def test_a_time_window_is_opened_shown_and_closed_over_http(timed: tuple[ServedFake, ManualClock]) -> None:
    served, clock = timed
    faults = f"{served.base_url}/_local/twilio/faults"

    status, answer = raw(served, "POST", faults, {"status": 503, "minutes": 120})
    assert status == 200
    assert answer["window"] == {"until": "2026-06-01T11:00:00Z", "status": 503, "code": None, "active": True}
    assert send_fails(served) == (503, 20503)

    clock.moment += timedelta(minutes=121)
    assert raw(served, "GET", faults)[1]["window"]["active"] is False
    assert send_fails(served) is None

    status, answer = raw(served, "POST", faults, {"status": 500, "code": 20500, "until": "2026-06-02T10:00:00Z"})
    assert (status, answer["window"]["until"], answer["window"]["status"]) == (200, "2026-06-02T10:00:00Z", 500)
    assert send_fails(served) == (500, 20500)

    raw(served, "DELETE", faults)
    assert raw(served, "GET", faults)[1] == {"send": [], "delivery": [], "window": None}
    assert send_fails(served) is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"status": 503, "minutes": 0}, "minutes must be more than 0"),
        ({"status": 503, "minutes": -5}, "minutes must be more than 0"),
        ({"status": 503, "minutes": 10081}, "at most 10080"),
        ({"status": 503, "minutes": "60"}, "minutes must be a number"),
        ({"status": 503, "minutes": True}, "minutes must be a number"),
        ({"status": 503, "until": "tomorrow"}, "until must be an ISO 8601 time with a zone"),
        ({"status": 503, "until": "2026-06-02T10:00:00"}, "until must be an ISO 8601 time with a zone"),
        ({"status": 503, "until": 1780000000}, "until must be an ISO 8601 time with a zone"),
        ({"status": 503, "until": "2026-05-31T10:00:00Z"}, "until must be after the fake's now (2026-06-01T09:00:00Z)"),
        ({"status": 503, "minutes": 5, "until": "2026-06-02T10:00:00Z"}, "minutes or until, not both"),
        ({"status": 200, "minutes": 5}, "status must be 4xx or 5xx"),
        ({"status": "503", "minutes": 5}, "status must be a whole number"),
        ({"status": 503, "code": "x", "minutes": 5}, "code must be a whole number"),
        ({"status": 503, "minutes": 5, "count": 2}, "not count"),
    ],
)
def test_a_bad_time_window_is_400_saying_why(timed: tuple[ServedFake, ManualClock], body: Any, says: str) -> None:
    served, _ = timed
    faults = f"{served.base_url}/_local/twilio/faults"

    status, answer = raw(served, "POST", faults, body)

    assert status == 400
    assert says in answer["message"]
    assert raw(served, "GET", faults)[1]["window"] is None


def post_form(served: ServedFake, form: dict[str, str]) -> tuple[int, Any]:
    """A send as Twilio's wire sees it, for values twilio's client would not send."""
    token = base64.b64encode(":".join(credentials()).encode()).decode()
    request = urllib.request.Request(
        served.messages_url,
        data=urllib.parse.urlencode(form).encode(),
        method="POST",
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, json.loads(err.read())


def test_a_validity_period_is_kept_with_the_message_not_in_twilios_resource(
    served: ServedFake, sink: CallbackSink
) -> None:
    url = f"{sink.base_url}/twilio/status"
    plain = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")
    sent = client(served).messages.create(
        to=ALICE, from_=ACCOUNT.from_number, body="hi", validity_period=600, status_callback=url
    )
    assert served.fake.wait_idle()

    assert served.fake.validity_period(sent.sid) == 600
    assert served.fake.validity_period(plain.sid) is None
    resources = {m["sid"]: m for m in served.fake.messages()}
    assert set(resources[sent.sid]) == set(resources[plain.sid])  # Twilio's shape, nothing added
    assert [c.form["MessageStatus"] for c in sink.received] == ["sent", "delivered"]  # within its period
    with pytest.raises(KeyError):
        served.fake.validity_period("SMnope")


@pytest.mark.parametrize("value", ["0", "36001", "-5", "1.5", "ten", "", " ", "١٢"])
def test_a_validity_period_outside_1_to_36000_seconds_is_refused(served: ServedFake, value: str) -> None:
    status, answer = post_form(
        served, {"To": ALICE, "From": ACCOUNT.from_number, "Body": "hi", "ValidityPeriod": value}
    )

    assert (status, answer["code"], answer["message"]) == (400, 21624, "Invalid validity period value")
    assert served.fake.messages() == []


def test_the_longest_validity_period_is_taken(served: ServedFake) -> None:
    status, answer = post_form(
        served, {"To": ALICE, "From": ACCOUNT.from_number, "Body": "hi", "ValidityPeriod": "36000"}
    )

    assert status == 201
    assert served.fake.validity_period(answer["sid"]) == 36000


def test_a_message_queued_longer_than_its_validity_period_fails_with_30036(sink: CallbackSink) -> None:
    url = f"{sink.base_url}/twilio/status"
    with serve_fake_twilio(delivery_delay_seconds=30) as slow:  # expires at once: the test waits for nothing
        sent = client(slow).messages.create(
            to=ALICE, from_=ACCOUNT.from_number, body="hi", validity_period=5, status_callback=url
        )
        assert slow.fake.wait_idle(timeout=5)

        fetched = client(slow).messages(sent.sid).fetch()

    assert sent.status == "queued"
    assert (fetched.status, fetched.error_code, fetched.date_sent) == ("failed", 30036, None)
    assert [(c.form["MessageStatus"], c.form.get("ErrorCode")) for c in sink.received] == [("failed", "30036")]


def test_a_lost_answer_still_takes_the_message(served: ServedFake) -> None:
    served.fake.fail_next(500, record=True)

    with pytest.raises(TwilioRestException):
        client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")

    assert [m["body"] for m in served.fake.messages()] == ["hi"]


def test_status_callbacks_are_posted_signed_as_twilio_signs(served: ServedFake, sink: CallbackSink) -> None:
    url = f"{sink.base_url}/twilio/status"
    sent = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi", status_callback=url)

    assert served.fake.wait_idle()

    assert [c.form["MessageStatus"] for c in sink.received] == ["sent", "delivered"]
    validator = RequestValidator(ACCOUNT.auth_token)
    for callback in sink.received:
        assert callback.url == url
        assert callback.signature is not None
        assert validator.validate(url, callback.form, callback.signature)
        assert not RequestValidator("another-token").validate(url, callback.form, callback.signature)
        assert callback.form["MessageSid"] == callback.form["SmsSid"] == sent.sid
        assert (callback.form["To"], callback.form["From"]) == (ALICE, ACCOUNT.from_number)
        assert callback.form["AccountSid"] == ACCOUNT.account_sid
        assert "ErrorCode" not in callback.form
    delivered = client(served).messages(sent.sid).fetch()
    assert delivered.status == "delivered"
    assert delivered.date_sent is not None


def test_a_delivery_failure_ends_the_message_with_its_error_code(served: ServedFake, sink: CallbackSink) -> None:
    served.fake.fail_delivery_next(status="failed", error_code=21610)
    url = f"{sink.base_url}/twilio/status"
    sent = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi", status_callback=url)

    assert served.fake.wait_idle()

    assert [(c.form["MessageStatus"], c.form.get("ErrorCode")) for c in sink.received] == [
        ("sent", None),
        ("failed", "21610"),
    ]
    fetched = client(served).messages(sent.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("failed", 21610)


def test_messages_without_a_callback_are_delivered_all_the_same(served: ServedFake) -> None:
    sent = client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")

    assert served.fake.wait_idle()

    assert client(served).messages(sent.sid).fetch().status == "delivered"


def test_concurrent_sends_are_all_recorded(served: ServedFake) -> None:
    errors: list[BaseException] = []

    def send_ten(n: int) -> None:
        try:
            twilio = client(served)
            for k in range(10):
                twilio.messages.create(to=ALICE, from_=ACCOUNT.from_number, body=f"{n}-{k}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=send_ten, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    messages = served.fake.messages()
    assert len({m["sid"] for m in messages}) == 60
    assert sorted(m["body"] for m in messages) == sorted(f"{n}-{k}" for n in range(6) for k in range(10))


def test_forgetting_messages_empties_the_record(served: ServedFake) -> None:
    client(served).messages.create(to=ALICE, from_=ACCOUNT.from_number, body="hi")

    status, _ = raw(served, "DELETE", f"{served.base_url}/_local/twilio/messages")

    assert status == 200
    assert served.fake.messages() == []


def test_the_local_account_comes_from_the_twilio_variables_with_obviously_fake_defaults() -> None:
    defaults = TwilioAccount("AC" + "0" * 32, "local-twilio-auth-token", "+15005550006")
    assert LocalConfig.from_environ({}).twilio == defaults
    shell = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "mine", "TWILIO_FROM_NUMBER": "+15005550007"}
    assert LocalConfig.from_environ(shell).twilio == TwilioAccount("AC" + "1" * 32, "mine", "+15005550007")
    with pytest.raises(ConfigError, match="TWILIO_AUTH_TOKEN"):
        LocalConfig.from_environ({"TWILIO_AUTH_TOKEN": " "})
