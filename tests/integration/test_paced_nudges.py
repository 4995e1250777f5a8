"""Nudges due at one minute leave at the sender's rate: the real prompt generator (in-memory stores, offline
coach) behind Lambda's asynchronous queue with reserved concurrency, each container pacing its sends, on a
simulated clock (tests.support.paced_firings). What cannot go out within its validity window is recorded
expired, in the ledger and as an event; nothing is sent after its window; pacing changes when, never what."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.adapters.paced_sender import send_interval
from coach.bootstrap import build_nudge_service
from coach.domain.decisions import DecisionPoint
from coach.domain.participant import Participant
from coach.services.nudges import ScheduledEvent
from coach.settings import PromptGeneratorSettings
from tests.support.conversation import Harness, harness
from tests.support.memory import InMemoryLlmBudget
from tests.support.paced_firings import AsyncInvocations, paced_on

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
NEW_YORK = ZoneInfo("America/New_York")
EXPIRY_REASONS = {"not_sent_within_its_window", "fired_after_its_window"}


@dataclass
class Cohort:
    """Participants coached through intake to a daily nudge at the time they chose."""

    h: Harness
    everyone: list[Participant] = field(default_factory=list)

    def coached(self, count: int, preferred: str) -> list[Participant]:
        added = []
        for _ in range(count):
            participant = self.h.enroll(phone=f"+1206555{len(self.everyone):04d}")
            for text in INTAKE:
                self.h.text(participant, preferred if text == "7:30am" else text)
            self.everyone.append(participant)
            added.append(participant)
        return added

    def by_phone(self) -> dict[str, str]:
        return {p.phone_number: p.id for p in self.everyone}


@pytest.fixture
def cohort() -> Iterator[Cohort]:
    with harness("memory") as built:
        yield Cohort(built)


def local(day: datetime, hhmm: str) -> datetime:
    """HH:MM in New York on the local day after `day`."""
    tomorrow = day.astimezone(NEW_YORK).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time.fromisoformat(hhmm), tzinfo=NEW_YORK)


@dataclass
class Run:
    """What the paced prompt generator did with a set of firings."""

    cohort: Cohort
    settings: PromptGeneratorSettings
    invocations: AsyncInvocations[ScheduledEvent]
    due: dict[str, datetime]  # participant id -> its firing's due time
    first_sms: int  # what the firings sent starts here in the fake Twilio's list

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.settings.nudge_validity_minutes)

    def sends(self) -> list[tuple[datetime, str, int | None]]:
        """(when, participant id, ValidityPeriod) of every SMS, in the order Twilio got them."""
        by_phone, sms = self.cohort.by_phone(), self.cohort.h.sms
        sent = [(s.date_created, by_phone[s.to], sms.validity[s.sid]) for s in sms.sent[self.first_sms :]]
        return sorted((at, pid, validity) for at, pid, validity in sent if at is not None)

    def decision(self, participant_id: str) -> DecisionPoint:
        (row,) = self.cohort.h.participants.list_decisions(participant_id, limit=10, next_token=None).items
        return row

    def events(self, participant_id: str, kind: str) -> list[dict[str, object]]:
        events = self.cohort.h.participants.list_events(participant_id, limit=500, next_token=None).items
        return [e.data for e in events if e.kind == kind]


def paced_run(
    cohort: Cohort,
    firings: list[tuple[datetime, Participant]],
    *,
    send_rate: float,
    containers: int,
    window_minutes: int,
    held: dict[str, datetime] | None = None,
) -> Run:
    """The firings through `containers` prompt-generator containers sharing `send_rate`, each with its pacer.
    `held`: participants whose firing Lambda hands over only then (throttle retries in its queue)."""
    h = cohort.h
    held = held or {}
    settings = PromptGeneratorSettings(
        table_name="memory",
        send_rate=send_rate,
        nudge_concurrency=containers,
        nudge_validity_minutes=window_minutes,
    )
    services = [
        build_nudge_service(
            settings,
            participants=h.participants,
            conversation=h.conversation,
            sender=paced_on(h.clock, h.sms, send_interval(settings)),
            scheduler=h.scheduler,
            clock=h.clock,
            language_model=lambda: None,
            budget=InMemoryLlmBudget(),
            alerts=h.alerts,
        )
        for _ in range(containers)
    ]
    invocations: AsyncInvocations[ScheduledEvent] = AsyncInvocations(
        h.clock, containers, lambda container, event: services[container].fire(event)
    )
    events = [
        (held.get(p.id, due), ScheduledEvent(kind="daily_nudge", participant_id=p.id, scheduled_time=due))
        for due, p in firings
    ]
    first_sms = len(h.sms.sent)
    invocations.deliver(events)
    return Run(cohort, settings, invocations, {p.id: due for due, p in firings}, first_sms)


def assert_paced_and_in_time(run: Run) -> None:
    """No more than the rate (after one message per container), in order of due time, none after its window,
    and Twilio asked to keep none past it."""
    sends = run.sends()
    rate, containers = run.settings.send_rate, run.settings.nudge_concurrency
    for i, (first, _, _) in enumerate(sends):
        for j in range(i, len(sends)):
            seconds = (sends[j][0] - first).total_seconds()
            assert j - i + 1 <= containers + rate * seconds, f"sends {i}..{j} within {seconds} s"
    dues = [run.due[pid] for _, pid, _ in sends]
    assert dues == sorted(dues), "a later nudge left before an earlier one"
    for at, pid, validity in sends:
        valid_until = run.due[pid] + run.window
        assert at < valid_until, f"{pid} was sent after its window"
        assert validity is not None
        assert validity <= math.ceil((valid_until - at).total_seconds())
    assert run.invocations.dead_lettered == []  # every firing ended in a recorded outcome


def assert_recorded_expired(run: Run, participant_id: str) -> None:
    row = run.decision(participant_id)
    assert (row.decision, row.treated, row.expired) == ("nudge", False, True)
    assert row.cancelled_reason in EXPIRY_REASONS
    assert row.sent_at is None
    [expired] = run.events(participant_id, "nudge_expired")
    assert expired["reason"] in EXPIRY_REASONS
    assert participant_id not in {pid for _, pid, _ in run.sends()}


def test_a_minutes_nudges_leave_at_the_send_rate_in_order_and_those_past_their_window_are_recorded_expired(
    cohort: Cohort,
) -> None:
    at_730 = cohort.coached(14, "7:30am")
    at_731 = cohort.coached(2, "7:31am")
    [held_up] = cohort.coached(1, "7:30am")
    now = cohort.h.clock.now()
    due_730, due_731 = local(now, "07:30"), local(now, "07:31")
    # Two containers share 0.2 messages a second: each sends every 10 s, so a one-minute window holds six
    # sends per container; the other two of the 07:30 nudges cannot go out in time. One more 07:30 firing
    # reaches the function only after its window (Lambda's queue held it).
    fits = 2 * 6

    run = paced_run(
        cohort,
        [(due_730, p) for p in [*at_730, held_up]] + [(due_731, p) for p in at_731],
        send_rate=0.2,
        containers=2,
        window_minutes=1,
        held={held_up.id: due_730 + timedelta(minutes=3)},
    )

    assert_paced_and_in_time(run)
    sent = [pid for _, pid, _ in run.sends()]
    assert set(sent[:fits]) == {p.id for p in at_730[:fits]}  # the first queued go first
    assert set(sent[fits:]) == {p.id for p in at_731}  # the next minute's still go out in their own window
    for participant in [*at_730[fits:], held_up]:
        assert_recorded_expired(run, participant.id)
    # Both ways to miss the window are on record: paced past it (the send's check), and fired past it.
    reasons = {run.decision(p.id).cancelled_reason for p in [*at_730[fits:], held_up]}
    assert reasons == EXPIRY_REASONS
    # Paced past its window is a decision, not a fault: the firing that found it so records it and succeeds
    # (no retry, nothing towards the errors alarm).
    assert [a for a in run.invocations.attempts if a.error is not None] == []
    assert all(a.attempt == 0 for a in run.invocations.attempts)
    for participant in [*at_730[:fits], *at_731]:
        row = run.decision(participant.id)
        assert (row.treated, row.expired) == (True, False)
        assert row.sent_at is not None
        assert row.sent_at < run.due[participant.id] + run.window
        assert run.events(participant.id, "nudge_expired") == []


def test_two_participants_due_at_once_leave_one_interval_apart_and_the_second_gets_less_of_its_window(
    cohort: Cohort,
) -> None:
    alice, bob = cohort.coached(2, "7:30am")
    due = local(cohort.h.clock.now(), "07:30")

    run = paced_run(cohort, [(due, alice), (due, bob)], send_rate=0.1, containers=1, window_minutes=60)

    assert_paced_and_in_time(run)
    (first, first_id, first_validity), (second, second_id, second_validity) = run.sends()
    assert (first_id, second_id) == (alice.id, bob.id)
    assert (first - due, second - due) == (timedelta(0), timedelta(seconds=10))
    assert (first_validity, second_validity) == (3600, 3590)


def test_two_containers_send_two_participants_due_at_once_together(cohort: Cohort) -> None:
    alice, bob = cohort.coached(2, "7:30am")
    due = local(cohort.h.clock.now(), "07:30")

    run = paced_run(cohort, [(due, alice), (due, bob)], send_rate=0.2, containers=2, window_minutes=60)

    assert_paced_and_in_time(run)
    assert [at for at, _, _ in run.sends()] == [due, due]  # one container each: the burst the rate allows


def test_a_window_across_midnight_keeps_the_slots_local_date_for_what_goes_out_after_midnight_and_what_expires(
    cohort: Cohort,
) -> None:
    late = cohort.coached(14, "11:59pm")
    slot = local(cohort.h.clock.now(), "23:59")
    # One container every 10 s, a two-minute window from 23:59: six go out before midnight, six after it,
    # and the last two expire after midnight.
    fits = 12

    run = paced_run(cohort, [(slot, p) for p in late], send_rate=0.1, containers=1, window_minutes=2)

    assert_paced_and_in_time(run)
    sends = run.sends()
    assert [pid for _, pid, _ in sends] == [p.id for p in late[:fits]]
    after_midnight = [pid for at, pid, _ in sends if at.astimezone(NEW_YORK).date() > slot.date()]
    assert after_midnight == [p.id for p in late[6:fits]]
    for participant in late[fits:]:
        assert_recorded_expired(run, participant.id)
    for participant in late:
        assert run.decision(participant.id).local_date == slot.date().isoformat()

    # The next evening's slot is a decision point of its own: a nudge sent after midnight took nothing from it,
    # and one that expired after midnight blocks nothing either.
    next_slot = slot + timedelta(days=1)
    before = len(cohort.h.sms.sent)
    paced_run(
        cohort, [(next_slot, late[fits - 1]), (next_slot, late[-1])], send_rate=0.1, containers=1, window_minutes=2
    )
    next_evening = cohort.h.sms.sent[before:]
    assert [s.to for s in next_evening] == [late[fits - 1].phone_number, late[-1].phone_number]
    assert all(s.date_created is not None and s.date_created >= next_slot for s in next_evening)


def test_pacing_changes_when_a_nudge_leaves_never_its_text_or_the_recorded_decision() -> None:
    def run_once(paced: bool) -> tuple[dict[str, str], dict[str, tuple[object, ...]]]:
        with harness("memory") as h:
            cohort = Cohort(h)
            participants = cohort.coached(5, "7:30am")
            due = local(h.clock.now(), "07:30")
            if paced:
                run = paced_run(
                    cohort, [(due, p) for p in participants], send_rate=0.5, containers=1, window_minutes=60
                )
                assert [at - due for at, _, _ in run.sends()] == [timedelta(seconds=2 * n) for n in range(5)]
            else:
                h.clock.set(due)
                for participant in participants:
                    h.fire(participant, scheduled_time=due)
            by_phone = cohort.by_phone()
            texts = {by_phone[s.to]: s.body for s in h.sms.sent if s.date_created is not None and s.date_created >= due}
            rows = {p.id: _decided(run_decision(h, p.id)) for p in participants}
            return texts, rows

    paced, unpaced = run_once(paced=True), run_once(paced=False)
    assert len(paced[0]) == 5
    assert paced == unpaced


def run_decision(h: Harness, participant_id: str) -> DecisionPoint:
    (row,) = h.participants.list_decisions(participant_id, limit=10, next_token=None).items
    return row


def _decided(row: DecisionPoint) -> tuple[object, ...]:
    return (row.decision_id, row.available, row.probability, row.draw, row.decision, row.text, row.treated)
