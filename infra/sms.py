"""`make sms FROM=+12065550100 BODY='hi'`: text the local stack as a participant would.

Posts the webhook Twilio would post for an incoming SMS (its form fields, signed with X-Twilio-Signature
for the public URL), prints the answer, then prints each reply the coach sends to FROM through the fake
Twilio until none has come for --wait seconds. Also `python -m infra.sms --from ... --body ...`.

Reads the local stack's variables: PORT, PUBLIC_BASE_URL, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and
TWILIO_FROM_NUMBER (each with the local stack's default).
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twilio.request_validator import RequestValidator

from coach.domain.sms_text import count_segments
from infra.local.config import (
    DEFAULT_PORT,
    DEFAULT_TWILIO_ACCOUNT_SID,
    DEFAULT_TWILIO_AUTH_TOKEN,
    DEFAULT_TWILIO_FROM_NUMBER,
    LOOPBACK,
)

POLL_SECONDS = 0.5


class StackNotRunning(Exception):
    """Nothing answers at the local stack's URL."""


@dataclass(frozen=True)
class Target:
    """Where the stack is and the account it uses."""

    base_url: str  # where to connect: http://127.0.0.1:$PORT
    public_base_url: str  # what Twilio signs: PUBLIC_BASE_URL, by default the same
    account_sid: str
    auth_token: str
    our_number: str  # TWILIO_FROM_NUMBER: the number the participant texts

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Target:
        base_url = f"http://{LOOPBACK}:{environ.get('PORT') or DEFAULT_PORT}"
        return cls(
            base_url=base_url,
            public_base_url=(environ.get("PUBLIC_BASE_URL") or base_url).rstrip("/"),
            account_sid=environ.get("TWILIO_ACCOUNT_SID") or DEFAULT_TWILIO_ACCOUNT_SID,
            auth_token=environ.get("TWILIO_AUTH_TOKEN") or DEFAULT_TWILIO_AUTH_TOKEN,
            our_number=environ.get("TWILIO_FROM_NUMBER") or DEFAULT_TWILIO_FROM_NUMBER,
        )

    @property
    def webhook_url(self) -> str:
        return f"{self.public_base_url}/twilio/sms"

    @property
    def messages_url(self) -> str:
        return f"{self.base_url}/2010-04-01/Accounts/{self.account_sid}/Messages.json"


def inbound_form(target: Target, sender: str, body: str, message_sid: str | None = None) -> dict[str, str]:
    """The form fields of Twilio's incoming-message webhook."""
    sid = message_sid or "SM" + secrets.token_hex(16)
    return {
        "ToCountry": "US",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": target.our_number,
        "NumSegments": str(count_segments(body).segments),
        "MessageSid": sid,
        "AccountSid": target.account_sid,
        "From": sender,
        "ApiVersion": "2010-04-01",
    }


def signed_webhook(target: Target, form: Mapping[str, str]) -> urllib.request.Request:
    """The POST Twilio makes: to the local URL, signed for the public one (what the webhook checks)."""
    signature = RequestValidator(target.auth_token).compute_signature(target.webhook_url, dict(form))
    return urllib.request.Request(
        f"{target.base_url}/twilio/sms",
        data=urllib.parse.urlencode(form).encode("utf-8"),
        method="POST",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": "TwilioProxy/1.1",
            "X-Twilio-Signature": signature,
            "I-Twilio-Idempotency-Token": secrets.token_hex(16),
        },
    )


def send(request: urllib.request.Request, timeout: float = 20.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as err:
        with err:
            return int(err.code), err.read()
    except urllib.error.URLError as err:
        raise StackNotRunning(str(err.reason)) from err


def replies_to(target: Target, number: str) -> list[dict[str, Any]]:
    """The messages the fake Twilio holds for `number`, newest first (one page)."""
    query = urllib.parse.urlencode({"To": number, "PageSize": 100})
    credentials = base64.b64encode(f"{target.account_sid}:{target.auth_token}".encode()).decode()
    request = urllib.request.Request(
        f"{target.messages_url}?{query}", headers={"Authorization": f"Basic {credentials}"}
    )
    status, body = send(request)
    if status != 200:
        raise StackNotRunning(f"the fake Twilio answered {status}: {body[:200].decode('utf-8', 'replace')}")
    messages: list[dict[str, Any]] = json.loads(body)["messages"]
    return messages


def watch_replies(
    fetch: Callable[[], list[dict[str, Any]]],
    already: set[str],
    *,
    quiet_seconds: float,
    out: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> int:
    """Print each new message `fetch` finds (it lists newest first) until none has come for quiet_seconds."""
    printed = 0
    last_news = clock()
    while clock() - last_news < quiet_seconds:
        pause(POLL_SECONDS)
        for message in reversed(fetch()):
            if message["sid"] not in already:
                already.add(message["sid"])
                printed += 1
                last_news = clock()
                out(f"coach> {message['body']}")
    return printed


def main(
    argv: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    pause: Callable[[float], None] = time.sleep,
) -> int:
    """`clock` and `pause` pace the wait for replies (tests pass their own, and never sleep)."""
    parser = argparse.ArgumentParser(description="Text the local stack as a participant (signed Twilio webhook).")
    parser.add_argument("--from", dest="sender", required=True, help="the participant's number, e.g. +12065550100")
    parser.add_argument("--body", required=True, help="the text")
    parser.add_argument("--wait", type=float, default=10.0, help="stop after this many seconds without a reply")
    args = parser.parse_args(argv)
    if not args.sender.strip() or not args.body:
        parser.error("FROM and BODY are needed: make sms FROM=+12065550100 BODY='hi'")
    target = Target.from_environ(os.environ if environ is None else environ)
    try:
        already = {m["sid"] for m in replies_to(target, args.sender)}
        status, answer = send(signed_webhook(target, inbound_form(target, args.sender, args.body)))
        signed_for = "" if target.public_base_url == target.base_url else f" (signed for {target.webhook_url})"
        text = answer.decode("utf-8", "replace")[:200]
        print(f"POST {target.base_url}/twilio/sms{signed_for} -> {status} {text}", flush=True)
        if status >= 300:
            return 1
        fetch = functools.partial(replies_to, target, args.sender)
        out: Callable[[str], None] = functools.partial(print, flush=True)
        if not watch_replies(fetch, already, quiet_seconds=args.wait, out=out, clock=clock, pause=pause):
            print(f"(no reply within {args.wait:g} s)")
    except StackNotRunning as exc:
        print(
            f"sms: the local stack does not answer at {target.base_url} ({exc}); start it with `make run`.",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
