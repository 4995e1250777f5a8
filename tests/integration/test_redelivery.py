"""Fast, bounded redelivery (issue 9): a failed turn comes back after a short backoff (not the queue's six
minutes), a record too late to start goes back at once, and a Twilio outage of five minutes is outlasted
by the template's retry budget, the reply going out once, soon after Twilio recovers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from coach.domain.errors import DeliveryUnavailable
from coach.ports import SentSms
from coach.services.redelivery import InvocationBudget, RedeliveryPolicy
from infra.template import load_template
from tests.support.conversation import harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
TIMING = load_template()["Mappings"]["Timing"]["Conversation"]
POLICY = RedeliveryPolicy(int(TIMING["RedeliveryBase"]), int(TIMING["RedeliveryMax"]))


def test_the_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [POLICY.delay(n) for n in range(1, 8)] == [10, 20, 40, 60, 60, 60, 60]


def test_the_templates_timing_is_consistent() -> None:
    # AWS's advice for an SQS event source: a visibility timeout of six times the function's timeout
    assert TIMING["QueueVisibility"] == 6 * TIMING["FunctionTimeout"]
    # A record is started only with room for the LLM, saving and sending inside the function's timeout
    assert float(TIMING["TurnMargin"]) < float(TIMING["TurnStart"]) < TIMING["FunctionTimeout"]
    # The retries before the dead-letter queue outlast a five-minute outage, and end within ten minutes
    waited = sum(POLICY.delay(n) for n in range(1, TIMING["MaxReceives"]))
    assert 5 * 60 < waited < 10 * 60
    # ... and every wait is well inside the queue's own visibility timeout (the fallback if a change fails)
    assert POLICY.delay(TIMING["MaxReceives"]) < TIMING["QueueVisibility"]


def test_a_budget_leaves_the_margin_and_refuses_to_start_too_late() -> None:
    left = [30.0]
    budget = InvocationBudget(lambda: left[0], margin=20, start_at_least=25)

    assert budget.can_start()
    assert budget.time_left() == 10
    left[0] = 24
    assert not budget.can_start()


def test_twilio_down_five_minutes_the_reply_comes_once_within_two_minutes_of_its_recovery() -> None:
    with harness("memory") as h:
        participant = h.enroll()
        for text in INTAKE:
            h.text(participant, text)
        start = h.clock.now()
        recovery = start + timedelta(minutes=5)
        send = h.sms.send

        def down_until_recovery(to: str, body: str, **options: Any) -> SentSms:
            if h.clock.now() < recovery:
                raise DeliveryUnavailable("Twilio answered 503")
            return send(to, body, **options)

        h.sms.send = down_until_recovery  # type: ignore[method-assign]
        before = len(h.sms.sent)
        work = h.receive(participant, "did it!")

        # SQS delivers the work; each failure brings it back after the policy's delay, up to MaxReceives
        received = 0
        while received < TIMING["MaxReceives"]:
            received += 1
            try:
                h.service.handle(work)
                break
            except DeliveryUnavailable:
                h.clock.advance(seconds=POLICY.delay(received))
        else:
            pytest.fail("the work went to the dead-letter queue")

        assert len(h.sms.sent) == before + 1  # exactly once
        assert h.clock.now() - recovery <= timedelta(minutes=2)
