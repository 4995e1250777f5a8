"""The prompt generator's guarantees: one nudge per local day, only to those who may get it, every
decision on record; reminders that a reply cancels; races with replies lose nothing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.participant import Participant, ParticipantStatus
from coach.services.enrollment import UpdateParticipant
from coach.services.nudges import ScheduledEvent
from tests.support.conversation import Harness, harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        yield built


def coached(h: Harness, timezone: str = "America/New_York", preferred: str = "7:30am") -> Participant:
    participant = h.enroll(timezone=timezone)
    for text in INTAKE:
        h.text(participant, preferred if text == "7:30am" else text)
    return participant


def at_local(h: Harness, participant: Participant, hhmm: str, days: int = 1) -> datetime:
    """Move the clock to HH:MM on the participant's local day `days` after today."""
    zone = ZoneInfo(participant.timezone)
    today = h.clock.now().astimezone(zone).date() + timedelta(days=days)
    return h.clock.set(datetime.combine(today, time.fromisoformat(hhmm), tzinfo=zone))


def decisions(h: Harness, participant: Participant) -> list[dict[str, object]]:
    events = h.participants.list_events(participant.id, limit=500, next_token=None).items
    return [e.data for e in events if e.kind == "nudge_decision"]


def test_a_coached_participant_gets_a_personalised_nudge_at_their_time(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")

    [nudge] = h.fire(participant)

    assert "coffee" in nudge
    flow = h.participants.get_flow_state(participant.id)
    assert flow.user_profile.total_prompts >= 2  # the first try during intake, and this one
    assert flow.user_profile.last_prompt_sent_at == h.clock.now()
    assert flow.pending_reminder is not None
    assert flow.pending_reminder.due_at == h.clock.now() + timedelta(hours=5)
    assert h.schedules(participant)["reminder"] == ("at(2026-06-02T16:30:00)", "UTC")
    [decision] = decisions(h, participant)
    assert decision["available"] is True
    assert decision["decision"] == "nudge"
    assert decision["probability"] == 1.0
    assert decision["timezone"] == "America/New_York"
    assert datetime.fromisoformat(str(decision["slot"])) == h.clock.now()
    # Twilio may keep it queued only for what is left of the validity window (60 minutes by default).
    assert h.sms.validity[h.sms.sent[-1].sid] == 3600


def test_a_second_firing_on_the_same_local_day_sends_nothing(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")

    first = h.fire(participant)
    h.clock.advance(minutes=1)
    second = h.fire(participant)

    assert len(first) == 1
    assert second == []
    assert len(decisions(h, participant)) == 1


def test_the_next_local_day_gets_the_next_nudge(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)

    at_local(h, participant, "07:30")

    assert len(h.fire(participant)) == 1


def test_a_half_hour_timezone_decides_on_its_own_local_date(h: Harness) -> None:
    participant = coached(h, timezone="Asia/Kolkata")
    moment = at_local(h, participant, "07:30")

    h.fire(participant)

    [decision] = decisions(h, participant)
    assert decision["local_date"] == moment.date().isoformat()
    assert decision["local_time"] == "07:30"
    assert moment.astimezone(ZoneInfo("UTC")).strftime("%H:%M") == "02:00"


def test_a_paused_participants_decision_points_are_recorded_as_unavailable_and_resuming_nudges_again(
    h: Harness,
) -> None:
    participant = coached(h)
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))
    at_local(h, participant, "07:30")

    assert h.fire_scheduled(participant) == []
    [skipped] = decisions(h, participant)
    assert skipped["available"] is False
    assert "paused" in skipped["unavailable_reasons"]  # type: ignore[operator]
    assert "daily_nudge" in h.schedules(participant)  # kept: the pause's decision points are on record

    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.ACTIVE))
    at_local(h, participant, "07:30")
    assert len(h.fire_scheduled(participant)) == 1


def test_a_completed_participant_keeps_no_schedule_and_a_late_firing_is_recorded_as_unavailable(h: Harness) -> None:
    participant = coached(h)
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.COMPLETED))
    assert h.schedules(participant) == {}
    at_local(h, participant, "07:30")

    assert h.fire(participant) == []  # a firing already on its way when the study ended

    assert "completed" in decisions(h, participant)[0]["unavailable_reasons"]  # type: ignore[operator]


def test_an_opted_out_participant_is_skipped(h: Harness) -> None:
    participant = coached(h)
    current = h.participants.get_participant(participant.id)
    h.participants.update_participant(current.model_copy(update={"opted_out": True}))
    at_local(h, participant, "07:30")

    assert h.fire(participant) == []
    assert "opted_out" in decisions(h, participant)[0]["unavailable_reasons"]  # type: ignore[operator]


def test_withdrawal_deletes_the_schedules(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)
    assert set(h.schedules(participant)) == {"daily_nudge", "reminder"}

    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.WITHDRAWN))

    assert h.schedules(participant) == {}


def test_firing_for_a_deleted_participant_does_nothing_and_removes_the_schedule(h: Harness) -> None:
    participant = coached(h)
    h.participants.delete_participant(participant.id)  # behind the API's back: the schedule outlived it

    assert h.fire(participant) == []  # no exception: Scheduler would retry, then give up

    assert h.schedules(participant) == {}


def test_still_in_intake_is_skipped(h: Harness) -> None:
    participant = h.enroll()
    h.text(participant, "yes")
    at_local(h, participant, "07:30")

    assert h.fire(participant) == []
    assert "intake_incomplete" in decisions(h, participant)[0]["unavailable_reasons"]  # type: ignore[operator]


def test_quiet_hours_skip_a_slot_at_night_but_not_a_chosen_late_time(h: Harness) -> None:
    early = coached(h)
    night = at_local(h, early, "23:15")  # e.g. a schedule left in a wrong timezone

    assert h.fire(early, scheduled_time=night) == []
    assert "quiet_hours" in decisions(h, early)[0]["unavailable_reasons"]  # type: ignore[operator]

    with harness("memory") as other:
        owl = other.enroll(phone="+12065550177")
        for text in ["yes", "less screen time", "sleep better", "10pm", "after brushing my teeth", "no"]:
            other.text(owl, text)
        at_local(other, owl, "22:00")
        assert len(other.fire(owl)) == 1


def test_a_reply_before_the_reminder_cancels_it(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)
    pending = h.participants.get_flow_state(participant.id).pending_reminder
    assert pending is not None

    h.clock.advance(hours=1)
    h.text(participant, "did it!")
    h.clock.advance(hours=5)

    assert "reminder" not in h.schedules(participant)
    assert h.participants.get_flow_state(participant.id).pending_reminder is None
    assert h.fire(participant, "reminder", nudge_key=pending.nudge_key) == []  # fired anyway: nothing sent
    events = [e.kind for e in h.participants.list_events(participant.id, limit=500, next_token=None).items]
    assert "nudge_responded" in events
    assert "reminder_skipped" in events


def test_an_unanswered_nudge_gets_one_reminder_and_a_late_reply_is_an_ordinary_turn(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)
    pending = h.participants.get_flow_state(participant.id).pending_reminder
    assert pending is not None
    h.clock.set(pending.due_at)

    reminder = h.fire(participant, "reminder", nudge_key=pending.nudge_key)
    again = h.fire(participant, "reminder", nudge_key=pending.nudge_key)
    late = h.text(participant, "sorry, did it now")

    assert len(reminder) == 1
    assert again == []
    assert late  # answered as feedback
    assert h.participants.get_flow_state(participant.id).user_profile.success_count >= 1


def test_a_time_change_in_feedback_moves_tomorrows_nudge(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)

    h.text(participant, "can we do evenings instead?")

    assert h.participants.get_flow_state(participant.id).user_profile.preferred_time == "19:00"
    assert h.schedules(participant)["daily_nudge"] == ("cron(0 19 * * ? *)", "America/New_York")
    at_local(h, participant, "19:00")
    assert len(h.fire_scheduled(participant)) == 1  # tomorrow's nudge, at the new time


def test_randomisation_with_a_fixed_seed_reproduces_decisions_and_probability() -> None:
    def run(seed: str) -> list[object]:
        with harness("memory") as h:
            participant = coached(h)
            participant_id = participant.id
            for _ in range(10):
                at_local(h, participant, "07:30")
                h.build_nudges(nudge_probability=0.5, study_seed=seed).fire(
                    ScheduledEvent(participant_id=participant_id, kind="daily_nudge")
                )
            made = decisions(h, participant)
        assert {d["probability"] for d in made} == {0.5}
        return [(d["local_date"], d["decision"]) for d in made]

    first, again, other = run("study-a"), run("study-a"), run("study-b")

    assert first == again
    assert {d for _, d in first} == {"nudge", "no_nudge"}  # ten fair coins: both sides show (fixed seed)
    assert first != other


def test_a_nudge_and_a_reply_at_the_same_moment_both_land(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    work = h.receive(participant, "how long should it take?")
    errors: list[BaseException] = []

    def run(action: object) -> None:
        try:
            action()  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(lambda: h.build().handle(work),)),
        threading.Thread(target=run, args=(lambda: h.fire(participant),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    flow = h.participants.get_flow_state(participant.id)
    assert "how long should it take?" in [e.content for e in flow.history if e.role == "user"]
    assert flow.user_profile.last_prompt_sent_at == h.clock.now()
    assert h.conversation.work_done(
        participant.id, f"nudge#{participant.id}#{h.clock.now().astimezone(ZoneInfo(participant.timezone)).date()}"
    )


def test_a_reminder_is_skipped_for_a_participant_paused_since_the_nudge(h: Harness) -> None:
    participant = coached(h)
    at_local(h, participant, "07:30")
    h.fire(participant)
    pending = h.participants.get_flow_state(participant.id).pending_reminder
    assert pending is not None
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))
    h.clock.set(pending.due_at)

    assert h.fire(participant, "reminder", nudge_key=pending.nudge_key) == []

    events = h.participants.list_events(participant.id, limit=500, next_token=None).items
    assert [e.data["reason"] for e in events if e.kind == "reminder_skipped"] == ["paused"]
    assert h.participants.get_flow_state(participant.id).pending_reminder is None


def test_a_reminder_falling_in_quiet_hours_is_skipped() -> None:
    with harness("memory") as h:
        participant = h.enroll(phone="+12065550166")
        for text in ["yes", "less screen time", "sleep better", "8pm", "after dinner", "no"]:
            h.text(participant, text)
        at_local(h, participant, "20:00")
        h.fire(participant)
        pending = h.participants.get_flow_state(participant.id).pending_reminder
        assert pending is not None
        h.clock.set(pending.due_at)  # 01:00 local

        assert h.fire(participant, "reminder", nudge_key=pending.nudge_key) == []
        events = h.participants.list_events(participant.id, limit=500, next_token=None).items
        assert [e.data["reason"] for e in events if e.kind == "reminder_skipped"] == ["quiet_hours"]


def test_a_delayed_transition_is_one_schedule_that_runs_once_and_a_newer_one_replaces_it(h: Harness) -> None:
    from coach.domain.flow import PendingTransition, SubState
    from coach.services.turns import PlannedTurn

    participant = coached(h)

    def pending(transition_id: str, minutes: int) -> None:
        due = h.clock.now() + timedelta(minutes=minutes)
        transition = PendingTransition(id=transition_id, to_sub_state=SubState.INTAKE, due_at=due)
        h.service.turns.run(
            participant.id,
            lambda loaded: PlannedTurn(
                key=f"test-{transition_id}", flow=loaded.flow.model_copy(update={"pending_transition": transition})
            ),
        )

    # Given a transition in 60 minutes, then a newer one in 90 (the LLM asked twice)
    pending("first", 60)
    pending("second", 90)
    [(expression, _)] = [v for k, v in h.schedules(participant).items() if k == "transition"]
    assert expression == f"at({(h.clock.now() + timedelta(minutes=90)).strftime('%Y-%m-%dT%H:%M:%S')})"

    # When the stale first one fires anyway (its schedule was replaced, but a retry was under way), then the
    # second fires, and Scheduler retries it a minute later
    h.clock.advance(minutes=60)
    h.fire(participant, "transition", transition_id="first", to_sub_state="INTAKE")
    h.clock.advance(minutes=30)
    h.fire_scheduled(participant)
    h.clock.advance(minutes=1)
    h.fire(participant, "transition", transition_id="second", to_sub_state="INTAKE")

    # Then the conversation moved once, the stale firing is on record as superseded, and nothing is pending
    events = h.participants.list_events(participant.id, limit=500, next_token=None).items
    moves = [e for e in events if e.kind == "sub_state_changed" and e.data["to_state"] == "INTAKE"]
    assert len(moves) == 1
    assert [e.data["transition_id"] for e in events if e.kind == "transition_skipped"] == ["first"]
    assert h.participants.get_flow_state(participant.id).pending_transition is None
    assert "transition" not in h.schedules(participant)


@pytest.mark.parametrize(("local_time", "first"), [("05:00", "today"), ("09:00", "tomorrow")])
def test_the_end_of_intake_says_when_the_first_nudge_comes(local_time: str, first: str) -> None:
    with harness("memory") as h:
        participant = h.enroll()
        at_local(h, participant, local_time, days=0)
        replies = [h.text(participant, text) for text in INTAKE]

    assert replies[-1][-1].endswith(f"daily at 7:30am, starting {first}.")
