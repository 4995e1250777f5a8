"""The decision-point ledger (issue 10): one row per participant x decision point, written with the decision and
filled in as things happen — the send, Twilio's delivery, the reply within the outcome window and what it
said, the reminder, an expiry, a slot the watchdog found missing. On DynamoDB (moto) and in memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.chat import LanguageModelUnavailable, ModelReply, TokenUsage
from coach.domain.decisions import DecisionPoint
from coach.domain.errors import DeliveryUnavailable
from coach.domain.outbox import CALLBACK_OUTBOX
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.schedules import daily_schedule_name
from coach.services.enrollment import UpdateParticipant
from tests.support.conversation import Harness, harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
ZONE = ZoneInfo("America/New_York")


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        yield built


def coached(h: Harness) -> Participant:
    participant = h.enroll()
    for text in INTAKE:
        h.text(participant, text)
    return h.participants.get_participant(participant.id)


def morning(h: Harness, days: int = 1) -> datetime:
    day = h.clock.now().astimezone(ZONE).date() + timedelta(days=days)
    return h.clock.set(datetime.combine(day, time(7, 30), tzinfo=ZONE))


def rows(h: Harness, participant: Participant) -> list[DecisionPoint]:
    return list(h.participants.list_decisions(participant.id, limit=100, next_token=None).items)


def test_a_nudge_answered_in_the_window_has_its_treatment_and_proximal_outcome(h: Harness) -> None:
    participant = coached(h)
    slot = morning(h)
    [nudge] = h.fire_scheduled(participant)
    h.clock.advance(minutes=42)
    h.text(participant, "did it!")

    [row] = rows(h, participant)
    assert (row.decision_id, row.local_date, row.local_time, row.timezone) == (
        f"nudge#{participant.id}#{slot.date()}",
        slot.date().isoformat(),
        "07:30",
        "America/New_York",
    )
    assert row.scheduled_at == slot
    assert (row.available, row.unavailable_reasons, row.probability, row.decision) == (True, [], 1.0, "nudge")
    assert row.draw is not None
    assert (row.treated, row.text, row.coach, row.message_id) == (True, nudge, "offline", f"{row.decision_id}#0")
    assert (row.twilio_sid, row.delivery_status) == (h.sms.sent[-2].sid, "queued")
    assert (row.replied, row.reply_minutes, row.feedback_kind) == (True, 42.0, "completed")
    assert row.outcome_window_minutes == 300
    assert (row.reminder_sent, row.expired, row.missed) == (False, False, False)


def test_an_unanswered_nudge_records_its_reminder_and_no_reply(h: Harness) -> None:
    participant = coached(h)
    slot = morning(h)
    h.fire_scheduled(participant)
    h.clock.set(slot + timedelta(hours=5))
    h.fire_scheduled(participant)
    h.clock.advance(hours=1)
    h.text(participant, "sorry, did it now")  # after the window: not the proximal outcome

    [row] = rows(h, participant)
    assert (row.reminder_sent, row.replied, row.feedback_kind) == (True, False, None)


def test_a_reply_in_the_window_counts_by_when_it_arrived_though_its_turn_ran_after_the_window(h: Harness) -> None:
    participant = coached(h)
    slot = morning(h)
    h.fire_scheduled(participant)
    h.clock.set(slot + timedelta(hours=4, minutes=50))
    work = h.receive(participant, "did it!")  # stored at 4 h 50 min, in the window
    h.clock.set(slot + timedelta(hours=6))  # the queue gets round to its turn after the window
    h.service.handle(work)

    [row] = rows(h, participant)
    assert (row.replied, row.reply_minutes, row.feedback_kind) == (True, 290.0, "completed")
    assert row.replied_at == slot + timedelta(hours=4, minutes=50)


def test_a_text_sent_before_the_nudge_is_no_reply_to_it_and_the_next_one_is(h: Harness) -> None:
    participant = coached(h)
    slot = morning(h)
    h.clock.set(slot - timedelta(minutes=1))
    early = h.receive(participant, "thanks coach")  # arrives a minute before the decision point...
    h.clock.set(slot)
    h.fire_scheduled(participant)
    h.service.handle(early)  # ...and its turn runs after the nudge went out
    h.clock.set(slot + timedelta(minutes=20))
    h.text(participant, "did it!")

    [row] = rows(h, participant)
    assert (row.replied, row.reply_minutes, row.feedback_kind) == (True, 20.0, "completed")
    assert row.replied_at == slot + timedelta(minutes=20)


def test_an_unavailable_decision_point_has_a_row_with_every_reason(h: Harness) -> None:
    participant = coached(h)
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))
    morning(h)
    h.fire_scheduled(participant)

    [row] = rows(h, participant)
    assert (row.available, row.unavailable_reasons, row.decision, row.treated) == (False, ["paused"], "no_nudge", False)


def test_a_nudge_twilio_never_took_is_expired_and_untreated(h: Harness) -> None:
    participant = coached(h)
    slot = morning(h)
    h.sms.fail_next(DeliveryUnavailable("Twilio answered 503"), times=100)
    with pytest.raises(DeliveryUnavailable):
        h.fire_scheduled(participant)
    h.sms.failures.clear()
    h.clock.set(slot + timedelta(hours=2))
    h.text(participant, "hello?")  # the next flush finds the nudge past its window

    [row] = rows(h, participant)
    assert (row.decision, row.treated, row.expired, row.cancelled_reason) == (
        "nudge",
        False,
        True,
        "not_sent_within_its_window",
    )


def test_the_delivery_outcome_follows_twilios_callbacks(h: Harness) -> None:
    participant = coached(h)
    morning(h)
    h.fire_scheduled(participant)
    sms = h.sms.sent[-1]
    outbox_key = h.sms.callbacks[sms.sid][CALLBACK_OUTBOX]

    h.conversation.record_callback(participant.id, outbox_key, sms.sid, "undelivered", 30003, h.clock.now())

    [row] = rows(h, participant)
    assert (row.delivery_status, row.delivery_error_code) == ("undelivered", 30003)


def test_a_slot_the_watchdog_found_missing_has_its_row(h: Harness) -> None:
    participant = coached(h)
    h.scheduler.delete(daily_schedule_name(participant.id))
    slot = morning(h)
    h.clock.set(slot + timedelta(hours=3))

    h.build_nudges().watch()

    [row] = rows(h, participant)
    assert (row.missed, row.missed_reason, row.available, row.treated) == (True, "schedule_missing", False, False)
    assert row.local_date == slot.date().isoformat()


def test_the_arm_is_on_every_row(h: Harness) -> None:
    participant = coached(h)
    h.participants.update_participant(participant.model_copy(update={"study_arm": "reminders-off"}))
    morning(h)
    h.fire_scheduled(participant)

    assert [row.arm for row in rows(h, participant)] == ["reminders-off"]


class WritesNudges:
    """An LLM that writes the nudge itself, at a known cost; down until `up` (the offline coach does intake)."""

    up = False

    def complete(self, messages: object, tools: object, *, time_left: float | None = None) -> ModelReply:
        if not self.up:
            raise LanguageModelUnavailable("down for intake", kind="server_error", calls=1)
        usage = TokenUsage(prompt_tokens=900, completion_tokens=40, model="gpt-test-1")
        [system, *_] = messages  # type: ignore[misc]
        habit = re.search(r"exactly this habit, in your own words\): (.+)", system.content).group(1)
        return ModelReply(content=f"After your morning coffee, try {habit}. Reply DONE!", usage=usage)


def test_an_llm_written_nudge_records_its_model_prompts_and_tokens() -> None:
    model = WritesNudges()
    with harness("memory", language_model=model) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        for text in INTAKE:
            h.text(participant, text)
        model.up = True
        morning(h)
        h.fire_scheduled(participant)

        [row] = rows(h, participant)
        assert (row.coach, row.llm_model, row.prompt_tokens, row.completion_tokens) == ("llm", "gpt-test-1", 900, 40)
        assert row.prompt_version == "coach-prompts-2026-12"
        assert row.prompt_hash is not None
        assert len(row.prompt_hash) == 16
        outbound = [
            m
            for m in h.participants.list_messages(participant.id, limit=100, next_token=None).items
            if m.message_id == row.message_id
        ]
        assert [(m.coach, m.llm_model, m.prompt_version) for m in outbound] == [
            ("llm", "gpt-test-1", "coach-prompts-2026-12")
        ]
