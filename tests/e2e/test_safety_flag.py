"""A participant in crisis on `python -m infra.local` (issue 11's "Done when"): a crisis text mid-intake gets the
crisis text and no habit content, the participant shows `needs_review`, the research team's alert is on the
stack's SNS topic (GET /_local/alerts), the next morning brings no nudge (its decision point is unavailable
with the reason), and clearing the flag through the API resumes the nudges the morning after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.study_texts import DEFAULT_CRISIS_TEXT
from infra.sms import Target, inbound_form, replies_to, send, signed_webhook
from tests.e2e.local_stack import (
    RunningStack,
    advance_to,
    clock_now,
    created,
    drain,
    free_port,
    next_local,
    start_stack,
)

pytestmark = pytest.mark.e2e

PHONE = "+12065550199"
MORNING = time(7, 30)
BEFORE = ["yes", "physical activity"]
CRISIS = "honestly i dont see the point anymore, i want to kill myself"
AFTER = ["to have more energy", "7:30am", "after my morning coffee", "no"]
ZONES = ("America/New_York", "Europe/London", "Asia/Kolkata")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("safety"), port=free_port(), api_key="e2e-safety-key")
    yield running
    running.stop()


def texted(stack: RunningStack, body: str) -> list[str]:
    """Text the stack as the participant; the replies that came back."""
    target = Target.from_environ({"PORT": str(stack.port)})
    before = {m["sid"] for m in replies_to(target, PHONE)}
    status, _ = send(signed_webhook(target, inbound_form(target, PHONE, body)))
    assert status == 200
    drain(stack)
    return [m["body"] for m in replies_to(target, PHONE) if m["sid"] not in before]


def test_a_crisis_text_mid_intake_holds_the_nudges_until_a_researcher_clears_the_flag(stack: RunningStack) -> None:
    zone = max((ZoneInfo(z) for z in ZONES), key=lambda z: next_local(clock_now(stack), z, MORNING))
    enrolled = stack.request("POST", "/conversation/participants", {"phone_number": PHONE, "timezone": zone.key})
    assert enrolled.status == 201, enrolled.body
    pid = enrolled.json()["id"]
    drain(stack)
    for body in BEFORE:
        texted(stack, body)

    # The crisis text gets the crisis text, and only that
    assert texted(stack, CRISIS) == [DEFAULT_CRISIS_TEXT]
    detail = stack.request("GET", f"/conversation/participants/{pid}").json()
    assert detail["needs_review"] is True
    assert detail["safety_review"]["category"] == "crisis"
    [alert] = stack.request("GET", "/_local/alerts", key=None).json()["alerts"]
    assert alert["topic"] == "SafetyAlertTopic"
    assert pid in alert["message"]
    assert "see the point" not in alert["message"]
    assert PHONE not in alert["message"]  # no text, no number: it may go to e-mail

    # Intake goes on where it was; then the next morning brings no nudge
    for body in AFTER:
        assert texted(stack, body), body
    first = next_local(clock_now(stack), zone, MORNING)
    advance_to(stack, first)
    drain(stack)
    assert texted_since(stack, first) == []
    decisions = stack.request("GET", f"/conversation/participants/{pid}/decisions").json()["items"]
    assert [(d["available"], d["unavailable_reasons"]) for d in decisions] == [(False, ["needs_review"])]

    # A researcher clears it (audited); the morning after, the nudge comes
    cleared = stack.request("DELETE", f"/conversation/participants/{pid}/safety-flag?note=called%20them")
    assert cleared.status == 200, cleared.body
    assert cleared.json()["needs_review"] is False
    again = stack.request("DELETE", f"/conversation/participants/{pid}/safety-flag")
    assert again.status == 404
    assert "no safety flag" in json.dumps(again.json())
    second = next_local(clock_now(stack), zone, MORNING)
    advance_to(stack, second)
    drain(stack)
    [nudge] = texted_since(stack, second)
    assert "coffee" in nudge
    trail = stack.request("GET", f"/conversation/audit?participant_id={pid}").json()["items"]
    assert [e["details"].get("note") for e in trail if e["action"] == "clear_flag"] == ["called them"]


def texted_since(stack: RunningStack, moment: datetime) -> list[str]:
    """What the fake Twilio took for the participant from `moment` on (dated by the virtual clock)."""
    target = Target.from_environ({"PORT": str(stack.port)})
    return [m["body"] for m in replies_to(target, PHONE) if created(m) >= moment - timedelta(seconds=1)]
