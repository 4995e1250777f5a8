"""A safety flag end to end through the saved turn, both stores: the crisis text goes, the research team is
alerted through the outbox (and again after an SNS outage, without holding back the crisis text), the
next mornings' decision points are unavailable with `needs_review` on the ledger, and a researcher's clearing
(audited) brings the nudges back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.adapters.dynamodb_audit import DynamoDBAuditLog
from coach.adapters.dynamodb_store import DynamoDBParticipantStore
from coach.domain.audit import Actor
from coach.domain.errors import DeliveryUnavailable, NotFound
from coach.domain.participant import Participant
from coach.domain.study_texts import DEFAULT_CRISIS_TEXT
from tests.support.conversation import Harness, harness
from tests.support.memory import InMemoryAuditLog, InMemoryParticipantStore

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
ZONE = ZoneInfo("America/New_York")
CRISIS = "i want to kill myself"
ALICE = Actor(name="alice", key_id="k-alice", source_ip="198.51.100.7")


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        store = built.participants
        if isinstance(store, DynamoDBParticipantStore):
            built.enrollment.audit = DynamoDBAuditLog(store.table_name, store.client)
        else:
            assert isinstance(store, InMemoryParticipantStore)
            built.enrollment.audit = InMemoryAuditLog(store)
        yield built


def coached(h: Harness) -> Participant:
    participant = h.enroll()
    for text in INTAKE:
        h.text(participant, text)
    return h.participants.get_participant(participant.id)


def morning(h: Harness, days: int = 1) -> datetime:
    day = h.clock.now().astimezone(ZONE).date() + timedelta(days=days)
    return h.clock.set(datetime.combine(day, time(7, 30), tzinfo=ZONE))


def kinds(h: Harness, participant: Participant) -> list[str]:
    return [e.kind for e in h.participants.list_events(participant.id, limit=100, next_token=None).items]


def test_a_crisis_text_gets_the_crisis_text_alerts_the_team_and_holds_the_nudges_until_cleared(h: Harness) -> None:
    participant = coached(h)

    # When they write it, the reply is the crisis text and the team hears of it (no text, no number in it)
    assert h.text(participant, CRISIS) == [DEFAULT_CRISIS_TEXT]
    [(pid, alert)] = h.alerts.sent
    assert (pid, alert.category) == (participant.id, "crisis")
    assert CRISIS not in alert.model_dump_json()
    assert participant.phone_number not in alert.model_dump_json()
    assert h.enrollment.detail(participant.id).needs_review is True

    # Then the next two mornings bring no nudge, each decision point unavailable because of the review
    for _ in range(2):
        morning(h)
        assert h.fire_scheduled(participant) == []
    decisions = list(h.participants.list_decisions(participant.id, limit=10, next_token=None).items)
    assert [(d.available, d.unavailable_reasons) for d in decisions] == [(False, ["needs_review"])] * 2

    # When a researcher clears the flag, the trail says who and what, and the next morning's nudge goes out
    detail = h.enrollment.clear_safety_flag(participant.id, ALICE, note="called them; safe")
    assert detail.needs_review is False
    assert detail.safety_review is None
    [entry] = [
        e
        for e in h.enrollment.audit_entries(participant_id=participant.id, limit=50, next_token=None).items
        if e.action == "clear_flag"
    ]
    assert (entry.researcher, entry.details["category"], entry.details["note"]) == (
        "alice",
        "crisis",
        "called them; safe",
    )
    morning(h)
    assert len(h.fire_scheduled(participant)) >= 1
    assert kinds(h, participant).count("safety_flag_cleared") == 1


def test_an_alert_topic_outage_still_sends_the_crisis_text_and_the_alert_goes_on_the_retry(h: Harness) -> None:
    participant = coached(h)
    h.alerts.failing = True

    work = h.receive(participant, CRISIS)
    with pytest.raises(DeliveryUnavailable):
        h.service.handle(work)  # the record fails: SQS brings it back

    assert h.sms.bodies_to(participant.phone_number)[-1] == DEFAULT_CRISIS_TEXT  # sent all the same
    assert h.alerts.sent == []
    h.alerts.failing = False
    h.service.handle(work)  # the redelivery: the turn is saved already, only the outbox is finished
    assert [a.category for _, a in h.alerts.sent] == ["crisis"]
    assert h.sms.bodies_to(participant.phone_number).count(DEFAULT_CRISIS_TEXT) == 1  # not twice
    assert kinds(h, participant).count("safety_alert_sent") == 1


def test_without_an_alert_topic_the_flag_records_that_no_alert_went(h: Harness) -> None:
    participant = coached(h)
    h.service = h.build(alerts=None)
    h.service.turns.outbox.alerts = None  # a stack deployed without the topic

    h.text(participant, CRISIS)

    assert "safety_alert_unsent" in kinds(h, participant)


def test_clearing_without_a_flag_is_not_found_and_changes_nothing(h: Harness) -> None:
    participant = coached(h)

    with pytest.raises(NotFound, match="no safety flag"):
        h.enrollment.clear_safety_flag(participant.id, ALICE)
    assert [
        e.action
        for e in h.enrollment.audit_entries(participant_id=participant.id, limit=50, next_token=None).items
        if e.action == "clear_flag"
    ] == []


def test_two_participants_at_once_only_the_one_in_crisis_is_flagged(h: Harness) -> None:
    ada, bo = coached(h), None
    bo = h.enroll("+12065550177")
    for text in INTAKE:
        h.text(bo, text)

    h.text(ada, CRISIS)
    h.text(bo, "did it!")
    morning(h)

    assert h.fire_scheduled(ada) == []
    assert len(h.fire_scheduled(bo)) >= 1
    assert [pid for pid, _ in h.alerts.sent] == [ada.id]
