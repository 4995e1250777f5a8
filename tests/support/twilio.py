"""The fake Twilio behind a real HTTP port on 127.0.0.1 (the local gateway, without the rest of the stack),
and a sink that records the status callbacks it posts."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from infra.local.config import TwilioAccount
from infra.local.fake_twilio import API_PREFIX, CONTROL_PREFIX, FakeTwilio
from infra.local.gateway import Gateway
from infra.local.web import HttpRequest, HttpResponse

ACCOUNT = TwilioAccount()  # the local defaults: AC000..., local-twilio-auth-token, +15005550006


@dataclass
class ServedFake:
    fake: FakeTwilio
    base_url: str

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}/Accounts/{self.fake.account.account_sid}/Messages.json"


@contextmanager
def serve_fake_twilio(account: TwilioAccount = ACCOUNT, **options: Any) -> Iterator[ServedFake]:
    fake = FakeTwilio(account, log=lambda _line: None, **options)
    gateway = Gateway("127.0.0.1", 0, lambda _request: None, io.StringIO())
    gateway.mount(API_PREFIX, fake.handle_api)
    gateway.mount(CONTROL_PREFIX, fake.handle_control)
    gateway.start()
    fake.start()
    try:
        yield ServedFake(fake, f"http://127.0.0.1:{gateway.port}")
    finally:
        fake.stop()
        gateway.stop()


@dataclass
class Callback:
    url: str
    form: dict[str, str]
    signature: str | None


@dataclass
class CallbackSink:
    """Answers 200 to whatever is posted under its path and keeps it."""

    base_url: str = ""
    received: list[Callback] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: HttpRequest) -> HttpResponse:
        form = dict(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
        with self._lock:
            self.received.append(Callback(self.base_url + request.path, form, request.header("X-Twilio-Signature")))
        return HttpResponse(200, (("Content-Type", "text/xml"),), b"<Response/>")


@contextmanager
def callback_sink(path: str = "/twilio/status") -> Iterator[CallbackSink]:
    sink = CallbackSink()
    gateway = Gateway("127.0.0.1", 0, lambda _request: None, io.StringIO())
    gateway.mount(path, sink.handle)
    gateway.start()
    sink.base_url = f"http://127.0.0.1:{gateway.port}"
    try:
        yield sink
    finally:
        gateway.stop()
