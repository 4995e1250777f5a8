"""The fake Twilio, read with twilio's own client: Twilio's JSON and paging, filters, auth, faults, and
signed status callbacks that twilio's RequestValidator accepts. Over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import re
import threading
import urllib.error
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
from tests.support.twilio import ACCOUNT, CallbackSink, ServedFake, callback_sink

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
    }
    assert raw(served, "POST", faults, {"status": 200})[0] == 400
    assert raw(served, "POST", faults, [1])[0] == 400
    raw(served, "DELETE", faults)
    assert raw(served, "GET", faults)[1] == {"send": [], "delivery": []}


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
