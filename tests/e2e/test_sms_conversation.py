"""Issue 4 end to end, on the local stack as a subprocess: enroll, the greeting reaches the fake Twilio,
a signed reply gets a coached answer, a duplicate MessageSid gets one reply, and after STOP nothing more."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from infra.sms import Target, inbound_form, replies_to, send, signed_webhook
from tests.e2e.local_stack import RunningStack, free_port, start_stack

pytestmark = pytest.mark.e2e

PHONE = "+12065550123"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("sms-stack"), port=free_port(), api_key="e2e-key")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def target(stack: RunningStack) -> Target:
    return Target.from_environ({"PORT": str(stack.port)})


def drain(stack: RunningStack) -> None:
    """Wait until the conversation queue is empty: every queued turn has run and sent."""
    request = urllib.request.Request(
        f"{stack.base_url}/_local/pump/drain",
        data=json.dumps({"timeout_seconds": 20}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    status, body = send(request)
    assert status == 200, body


def texted(target: Target, stack: RunningStack, body: str, sid: str | None = None) -> tuple[int, bytes, list[str]]:
    """Post a signed inbound SMS as Twilio would; what the webhook answered and the replies that followed."""
    before = {m["sid"] for m in replies_to(target, PHONE)}
    status, answer = send(signed_webhook(target, inbound_form(target, PHONE, body, sid)))
    drain(stack)
    after = replies_to(target, PHONE)
    return status, answer, [m["body"] for m in reversed(after) if m["sid"] not in before]


def participant(stack: RunningStack, participant_id: str) -> dict[str, Any]:
    found: dict[str, Any] = stack.request("GET", f"/conversation/participants/{participant_id}").json()
    return found


def test_enroll_then_a_coached_conversation_over_sms(stack: RunningStack, target: Target) -> None:
    enrolled = stack.request("POST", "/conversation/participants", {"phone_number": PHONE})
    assert enrolled.status == 201, enrolled.body
    drain(stack)

    [greeting] = [m["body"] for m in replies_to(target, PHONE)]
    assert "YES" in greeting

    status, answer, replies = texted(target, stack, "yes", sid="SM" + "1" * 32)
    assert status == 200
    assert answer.decode().endswith("<Response/>")
    assert replies
    assert "habit" in " ".join(replies).lower()

    # Twilio retries the same MessageSid: nothing new is stored, answered or sent.
    _, _, again = texted(target, stack, "yes", sid="SM" + "1" * 32)
    assert again == []

    _, _, next_step = texted(target, stack, "physical activity")
    assert len(next_step) == 1

    _, _, after_stop = texted(target, stack, "STOP")
    assert after_stop == []
    assert participant(stack, enrolled.json()["id"])["opted_out"] is True

    _, _, silence = texted(target, stack, "are you there?")
    assert silence == []
    transcript = stack.request("GET", f"/conversation/participants/{enrolled.json()['id']}/messages").json()
    assert "are you there?" in [m["body"] for m in transcript["items"] if m["direction"] == "inbound"]
