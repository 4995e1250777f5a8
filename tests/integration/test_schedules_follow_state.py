"""The participant record, the flow state and the schedules agree after every API call, turn and firing; a
nudge goes out within its validity window or not at all; the watchdog finds a decision point that went
missing and repairs what caused it. On DynamoDB (moto) and in memory, as sequences of days."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.errors import DeliveryUnavailable, ScheduleUnavailable
from coach.domain.outbox import OutboxState
from coach.domain.participant import Participant
from coach.domain.schedules import ScheduleSpec, daily_schedule_name
from coach.services.enrollment import UpdateParticipant
from tests.support.conversation import Harness, harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        yield built


def coached(h: Harness, timezone: str = "America/New_York") -> Participant:
    participant = h.enroll(timezone=timezone)
    for text in INTAKE:
        h.text(participant, text)
    return h.participants.get_participant(participant.id)


def at_local(h: Harness, zone: str, hhmm: str, days: int = 1) -> datetime:
    """Move the clock to HH:MM local time in `zone`, `days` local days after today."""
    tz = ZoneInfo(zone)
    day = h.clock.now().astimezone(tz).date() + timedelta(days=days)
    return h.clock.set(datetime.combine(day, time.fromisoformat(hhmm), tzinfo=tz))


def events(h: Harness, participant: Participant, kind: str) -> list[dict[str, object]]:
    found = h.participants.list_events(participant.id, limit=1000, next_token=None).items
    return [e.data for e in found if e.kind == kind]


def watchdog_time_after(moment: datetime) -> datetime:
    """The first 11:00 UTC (the template's watchdog time) after `moment`."""
    run = moment.astimezone(UTC).replace(hour=11, minute=0, second=0, microsecond=0)
    return run if run > moment else run + timedelta(days=1)


def update(h: Harness, participant: Participant, **fields: object) -> None:
    h.enrollment.update(participant.id, UpdateParticipant.model_validate(fields))


# -- the API keeps the schedules in step -------------------------------------------------------------


def test_a_timezone_change_moves_the_daily_nudge_and_the_next_one_comes_at_the_chosen_time_there(h: Harness) -> None:
    # Given a participant coached in New York, nudged at 7:30am
    participant = coached(h)

    # When a researcher corrects the timezone to Tokyo
    update(h, participant, timezone="Asia/Tokyo")

    # Then the daily schedule is 7:30 in Tokyo, and the next Tokyo morning brings the nudge (no quiet hours)
    assert h.schedules(participant)["daily_nudge"] == ("cron(30 7 * * ? *)", "Asia/Tokyo")
    at_local(h, "Asia/Tokyo", "07:30")
    assert len(h.fire_scheduled(participant)) == 1
    [decision] = events(h, participant, "nudge_decision")
    assert (decision["available"], decision["timezone"], decision["local_time"]) == (True, "Asia/Tokyo", "07:30")


def test_a_timezone_change_keeps_a_pending_reminder_at_the_same_local_time_in_the_new_zone(h: Harness) -> None:
    # Given a nudge at 7:30am New York, its reminder due at 12:30pm New York
    participant = coached(h)
    at_local(h, "America/New_York", "07:30")
    h.fire_scheduled(participant)
    h.clock.advance(hours=1)

    # When the timezone becomes Los Angeles
    update(h, participant, timezone="America/Los_Angeles")

    # Then the reminder is due at 12:30pm there, its schedule says so, and the daily slot applies from now
    flow = h.participants.get_flow_state(participant.id)
    assert flow.pending_reminder is not None
    assert flow.pending_reminder.due_at.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%H:%M") == "12:30"
    due = flow.pending_reminder.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert h.schedules(participant)["reminder"] == (f"at({due})", "UTC")
    assert flow.daily_schedule is not None
    assert flow.daily_schedule.since == h.clock.now()


def test_withdrawn_then_active_again_restores_the_schedule_and_the_next_morning_brings_the_nudge(h: Harness) -> None:
    participant = coached(h)

    update(h, participant, status="withdrawn")
    assert h.schedules(participant) == {}
    at_local(h, "America/New_York", "07:30")
    assert h.fire_scheduled(participant) == []  # nothing left to fire

    update(h, participant, status="active")
    assert h.schedules(participant) == {"daily_nudge": ("cron(30 7 * * ? *)", "America/New_York")}
    at_local(h, "America/New_York", "07:30")
    assert len(h.fire_scheduled(participant)) == 1


def test_reset_and_delete_leave_no_orphan_schedule(h: Harness) -> None:
    participant = coached(h)
    at_local(h, "America/New_York", "07:30")
    h.fire_scheduled(participant)  # a reminder is pending now too
    assert set(h.schedules(participant)) == {"daily_nudge", "reminder"}

    h.enrollment.reset(participant.id)
    h.run_queued()
    assert h.schedules(participant) == {}

    for text in INTAKE[1:]:  # intake again (consent is kept)
        h.text(participant, text)
    assert set(h.schedules(participant)) == {"daily_nudge"}

    h.enrollment.delete(participant.id)
    assert h.scheduler.schedules == {}


class FailsOnce:
    """A scheduler whose next write is throttled once, as EventBridge Scheduler can be."""

    def __init__(self, inner: object) -> None:
        self.inner, self.failed = inner, False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put(self, spec: ScheduleSpec, *, exists: bool | None = None) -> None:
        if not self.failed:
            self.failed = True
            raise ScheduleUnavailable("could not write schedule: ThrottlingException")
        self.inner.put(spec, exists=exists)  # type: ignore[attr-defined]


def test_a_scheduler_fault_during_an_update_keeps_the_change_and_repeating_the_request_repairs_it(h: Harness) -> None:
    participant = coached(h)
    h.enrollment.scheduler = FailsOnce(h.scheduler)  # type: ignore[assignment]

    with pytest.raises(ScheduleUnavailable):  # the API answers 503
        update(h, participant, timezone="Europe/Berlin")
    assert h.participants.get_participant(participant.id).timezone == "Europe/Berlin"  # stored
    assert h.schedules(participant)["daily_nudge"][1] == "America/New_York"  # not yet moved

    update(h, participant, timezone="Europe/Berlin")  # the same request again

    assert h.schedules(participant)["daily_nudge"] == ("cron(30 7 * * ? *)", "Europe/Berlin")


# -- never late, never lost ----------------------------------------------------------------------------


def test_twilio_down_around_the_nudge_time_means_no_nudge_that_day_an_expiry_on_record_and_one_nudge_the_next(
    h: Harness,
) -> None:
    # Given Twilio failing from the nudge time on, through Lambda's two retries (1 and 3 minutes later)
    participant = coached(h)
    sent_before = len(h.sms.sent)
    h.sms.fail_next(DeliveryUnavailable("Twilio answered 503"), times=1000)
    slot = at_local(h, "America/New_York", "07:30")
    for minutes in (0, 1, 3):
        h.clock.set(slot + timedelta(minutes=minutes))
        with pytest.raises(DeliveryUnavailable):  # the firing fails: Lambda retries, then the dead-letter queue
            h.fire(participant, scheduled_time=slot)
    # ... and still down five hours later, when the reminder falls due
    h.clock.set(slot + timedelta(hours=5))
    assert h.fire_scheduled(participant) == []
    assert [e["reason"] for e in events(h, participant, "reminder_skipped")] == ["nudge_not_sent"]

    # When Twilio is back and the next morning's nudge fires
    h.sms.failures.clear()
    next_slot = at_local(h, "America/New_York", "07:30")
    sent = h.fire_scheduled(participant)

    # Then exactly one nudge goes out, today's; yesterday's is on record as expired, never sent
    assert len(sent) == 1
    assert len(h.sms.sent) == sent_before + 1
    [expired] = events(h, participant, "nudge_expired")
    assert (expired["purpose"], expired["reason"]) == ("nudge", "not_sent_within_its_window")
    yesterday = f"nudge#{participant.id}#{slot.date().isoformat()}#0"
    item = h.conversation.get_outbox_item(participant.id, yesterday)
    assert item is not None
    assert item.state is OutboxState.EXPIRED
    assert h.clock.now() == next_slot


def test_a_firing_that_comes_after_its_window_sends_nothing_and_says_so(h: Harness) -> None:
    participant = coached(h)
    slot = at_local(h, "America/New_York", "07:30")
    h.clock.set(slot + timedelta(minutes=75))  # the window is 60 minutes

    assert h.fire(participant, scheduled_time=slot) == []
    assert h.fire(participant, scheduled_time=slot) == []  # and a repeat of it neither

    [decision] = events(h, participant, "nudge_decision")
    assert decision["local_date"] == slot.date().isoformat()
    [expired] = events(h, participant, "nudge_expired")
    assert expired["reason"] == "fired_after_its_window"
    assert h.participants.get_flow_state(participant.id).pending_reminder is None  # nothing to remind of


def test_yesterdays_late_firing_never_becomes_todays_nudge(h: Harness) -> None:
    participant = coached(h)
    yesterday = at_local(h, "America/New_York", "07:30")
    today = yesterday + timedelta(days=1)
    h.clock.set(today - timedelta(minutes=5))

    assert h.fire(participant, scheduled_time=yesterday) == []  # yesterday's decision point, long closed
    h.clock.set(today)
    assert len(h.fire_scheduled(participant)) == 1  # today's

    days = [d["local_date"] for d in events(h, participant, "nudge_decision")]
    assert days == [yesterday.date().isoformat(), today.astimezone(ZoneInfo("America/New_York")).date().isoformat()]


def test_twilio_is_told_what_is_left_of_the_window(h: Harness) -> None:
    participant = coached(h)
    slot = at_local(h, "America/New_York", "07:30")
    h.clock.set(slot + timedelta(minutes=20))  # a firing Lambda retried

    [_] = h.fire(participant, scheduled_time=slot)

    assert h.sms.validity[h.sms.sent[-1].sid] == 40 * 60


# -- the watchdog ----------------------------------------------------------------------------------------


def test_a_schedule_deleted_behind_the_systems_back_is_found_recorded_and_repaired(h: Harness) -> None:
    # Given a coached participant whose daily schedule vanished (deleted by hand)
    participant = coached(h)
    h.scheduler.delete(daily_schedule_name(participant.id))

    # When the next local morning passes without a firing, and the watchdog runs at 11:00 UTC
    slot = at_local(h, "America/New_York", "07:30")
    assert h.fire_scheduled(participant) == []
    h.clock.set(watchdog_time_after(slot + timedelta(hours=1)))
    found = h.build_nudges().watch()

    # Then the missed decision point is on record with the reason, the schedule is back, and the day after
    # brings the nudge
    assert found == 1
    [missed] = events(h, participant, "decision_missed")
    assert (missed["reason"], missed["local_date"]) == ("schedule_missing", slot.date().isoformat())
    assert h.schedules(participant)["daily_nudge"] == ("cron(30 7 * * ? *)", "America/New_York")
    assert h.build_nudges().watch() == 0  # found once
    at_local(h, "America/New_York", "07:30")
    assert len(h.fire_scheduled(participant)) == 1


def test_the_watchdog_finds_nothing_when_every_decision_point_is_on_record(h: Harness) -> None:
    participant = coached(h)
    paused = h.enroll(phone="+12065550111")
    slot = at_local(h, "America/New_York", "07:30")
    h.fire_scheduled(participant)
    h.clock.set(slot + timedelta(hours=4))

    assert h.build_nudges().watch() == 0
    assert events(h, participant, "decision_missed") == []
    assert events(h, paused, "decision_missed") == []  # still in intake: no decision point is due


def test_a_schedule_that_is_right_but_did_not_fire_is_reported_as_a_failed_firing(h: Harness) -> None:
    participant = coached(h)
    slot = at_local(h, "America/New_York", "07:30")  # the firing failed every retry (in the dead-letter queue)
    h.clock.set(slot + timedelta(hours=2))

    assert h.build_nudges().watch() == 1

    assert [e["reason"] for e in events(h, participant, "decision_missed")] == ["firing_failed"]


def test_a_daily_slot_set_after_its_time_today_is_not_expected_today(h: Harness) -> None:
    at_local(h, "America/New_York", "09:00", days=0)
    coached(h)  # intake done at 9am: the first nudge is tomorrow's
    h.clock.advance(hours=3)

    assert h.build_nudges().watch() == 0


# -- a month of days ---------------------------------------------------------------------------------


def test_a_month_across_a_daylight_saving_change_brings_one_decision_and_one_nudge_a_day() -> None:
    with harness("memory") as h:
        h.clock.set(datetime(2026, 2, 27, 15, 0, tzinfo=UTC))  # New York changes its clocks on 8 March
        participant = coached(h)
        zone = "America/New_York"
        nudged_days = []
        first = h.clock.now().astimezone(ZoneInfo(zone)).date() + timedelta(days=1)
        for day in range(31):
            slot = h.clock.set(datetime.combine(first + timedelta(days=day), time(7, 30), tzinfo=ZoneInfo(zone)))
            sent = h.fire_scheduled(participant)
            nudged_days.append((slot.date(), len(sent)))
            if day % 2 == 0:  # answered on even days: no reminder
                h.clock.set(slot + timedelta(hours=1))
                h.text(participant, "done")
            h.clock.set(slot + timedelta(hours=5))
            h.fire_scheduled(participant)  # the reminder, if one is still due
            h.clock.set(watchdog_time_after(h.clock.now()))
            assert h.build_nudges().watch() == 0

        assert [n for _, n in nudged_days] == [1] * 31
        decisions = events(h, participant, "nudge_decision")
        assert len({d["local_date"] for d in decisions}) == len(decisions) == 31
        assert {d["local_time"] for d in decisions} == {"07:30"}  # also after the change of clocks
        assert len(events(h, participant, "reminder_sent")) == 15  # the odd days
        assert events(h, participant, "decision_missed") == []
        assert set(h.schedules(participant)) == {"daily_nudge"}  # no reminder left behind
