"""The conversation function's guarantees, on DynamoDB (moto) and in memory, with faults injected.

No inbound message lost; no reply sent twice; no stale state written; nothing to opted-out, withdrawn
or deleted participants; every failure ends in a retry (the exception reaches SQS) or a recorded error.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Iterator

import pytest

from coach.domain.chat import LanguageModelUnavailable
from coach.domain.errors import DeliveryRejected, DeliveryUnavailable
from coach.domain.outbox import OutboxState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.work import ConversationWork, WorkKind
from coach.services.enrollment import EnrollParticipant, UpdateParticipant
from tests.support.conversation import START, Harness, harness

INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        yield built


def finish_intake(h: Harness, participant: Participant) -> None:
    for text in INTAKE:
        h.text(participant, text)


def replies_in_transcript(h: Harness, participant: Participant) -> list[str]:
    items = h.participants.list_messages(participant.id, limit=200, next_token=None).items
    return [m.body for m in items if m.direction == "outbound"]


def test_enrollment_sends_the_greeting_once_even_when_the_work_comes_twice(h: Harness) -> None:
    participant = h.enrollment.enroll(EnrollParticipant(phone_number="+12065550100"))
    [work] = h.queue.sent

    h.service.handle(work)
    h.service.handle(work)  # SQS redelivers

    assert len(h.sms.bodies_to(participant.phone_number)) == 1
    assert "Reply YES or NO" in h.sms.sent[0].body
    assert replies_in_transcript(h, participant) == [h.sms.sent[0].body]


def test_a_text_gets_one_reply_however_often_its_work_is_delivered(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")

    for _ in range(3):
        h.service.handle(work)

    assert len(h.sms.sent) == 1 + 2  # greeting, then "Great, let's begin!" + the first question
    inbound = h.conversation.inbound_message(participant.id, work.message_id or "")
    assert inbound is not None
    assert inbound.turn is not None


def test_quick_texts_are_answered_together_in_one_turn(h: Harness) -> None:
    participant = h.enroll()
    h.text(participant, "yes")
    first = h.receive(participant, "physical activity")
    second = h.receive(participant, "I want more energy")
    sent_before = len(h.sms.sent)

    h.service.handle(first)
    h.service.handle(second)  # its text was answered by the first turn

    flow = h.participants.get_flow_state(participant.id)
    assert len(h.sms.sent) - sent_before == 1
    assert flow.user_profile.habit_domain == "physical activity"
    assert [e.content for e in flow.history if e.role == "user"][-2:] == ["physical activity", "I want more energy"]


def test_a_crash_after_the_transaction_and_before_the_send_sends_once_on_redelivery(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(RuntimeError("Lambda froze before sending"))

    with pytest.raises(RuntimeError):
        h.service.handle(work)
    assert len(h.sms.sent) == 1  # only the greeting
    h.service.handle(work)

    assert len(h.sms.sent) == 3
    assert h.conversation.open_outbox(participant.id) == []


def test_a_crash_after_the_send_and_before_it_is_marked_does_not_send_twice(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(TimeoutError("response lost after Twilio accepted"), after_accept=True)

    with pytest.raises(TimeoutError):
        h.service.handle(work)
    h.service.handle(work)

    bodies = h.sms.bodies_to(participant.phone_number)
    assert len(bodies) == len(set(bodies)) == 3
    item = h.conversation.get_outbox_item(participant.id, f"{work.message_id}#0")
    assert item is not None
    assert item.state is OutboxState.SENT
    assert item.twilio_sid == h.sms.sent[1].sid


@pytest.mark.parametrize("status", [500, 429])
def test_twilio_unavailable_fails_the_work_for_a_retry_then_sends_once(h: Harness, status: int) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(DeliveryUnavailable(f"Twilio answered {status} after 3 tries"))

    with pytest.raises(DeliveryUnavailable):  # the record fails: SQS redelivers, the DLQ keeps it at the end
        h.service.handle(work)
    h.service.handle(work)

    assert len(h.sms.sent) == 3
    assert h.conversation.open_outbox(participant.id) == []


def test_21610_opts_the_participant_out_and_is_not_retried(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(DeliveryRejected(21610, "unsubscribed recipient"), times=2)

    h.service.handle(work)  # no exception: nothing to retry

    assert h.participants.get_participant(participant.id).opted_out is True
    kinds = [e.kind for e in h.participants.list_events(participant.id, limit=100, next_token=None).items]
    assert "delivery_failed" in kinds
    assert "opted_out" in kinds
    assert h.conversation.open_outbox(participant.id) == []
    assert h.text(participant, "hello?") == []  # opted out: recorded, nothing sent


def test_21211_marks_the_message_failed_with_an_event_and_is_not_retried(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(DeliveryRejected(21211, "invalid number"), times=5)

    h.service.handle(work)

    outbound = [
        m
        for m in h.participants.list_messages(participant.id, limit=50, next_token=None).items
        if m.direction == "outbound"
    ]
    assert [(m.status, m.error_code) for m in outbound[1:]] == [("failed", 21211), ("failed", 21211)]
    assert h.participants.get_participant(participant.id).opted_out is False
    events = h.participants.list_events(participant.id, limit=100, next_token=None).items
    assert [e.data["error_code"] for e in events if e.kind == "delivery_failed"] == [21211, 21211]


@pytest.mark.parametrize("status", [ParticipantStatus.WITHDRAWN, ParticipantStatus.COMPLETED])
def test_withdrawn_and_completed_participants_get_nothing_but_their_texts_are_kept(
    h: Harness, status: ParticipantStatus
) -> None:
    participant = h.enroll()
    h.enrollment.update(participant.id, UpdateParticipant(status=status))

    assert h.text(participant, "yes") == []

    transcript = h.participants.list_messages(participant.id, limit=50, next_token=None).items
    assert [m.body for m in transcript if m.direction == "inbound"] == ["yes"]


def test_a_paused_participant_still_gets_replies(h: Harness) -> None:
    participant = h.enroll()
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))

    assert h.text(participant, "yes")


def test_a_reply_queued_before_a_stop_is_cancelled_not_sent(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.sms.fail_next(DeliveryUnavailable("Twilio down"))
    with pytest.raises(DeliveryUnavailable):
        h.service.handle(work)
    current = h.participants.get_participant(participant.id)
    h.participants.update_participant(current.model_copy(update={"opted_out": True}))  # STOP meanwhile

    h.service.handle(work)

    assert len(h.sms.sent) == 1
    outbound = [m for m in h.participants.list_messages(participant.id, limit=50, next_token=None).items][-1]
    assert outbound.status == "cancelled"


def test_work_for_a_deleted_participant_ends_quietly(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    h.enrollment.delete(participant.id)

    h.service.handle(work)  # no exception: no retry loop, no DLQ

    assert len(h.sms.sent) == 1


def test_a_state_write_racing_the_turn_is_kept_and_the_turn_recomputed(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    store = h.participants
    original = store.get_flow_state
    raced = []

    def racing_get(participant_id: str):  # type: ignore[no-untyped-def]
        flow = original(participant_id)
        if not raced:  # a nudge or an API update lands between our read and our write
            raced.append(True)
            store.save_flow_state(flow.model_copy(update={"last_habit_prompt": "written by the racer"}))
        return flow

    store.get_flow_state = racing_get  # type: ignore[method-assign]
    try:
        h.service.handle(work)
    finally:
        store.get_flow_state = original  # type: ignore[method-assign]

    flow = store.get_flow_state(participant.id)
    assert flow.last_habit_prompt == "written by the racer"
    assert flow.consent is True
    assert len(h.sms.sent) == 3


def test_the_same_participants_turns_from_many_threads_lose_nothing(h: Harness) -> None:
    participant = h.enroll()
    h.text(participant, "yes")
    works = [h.receive(participant, f"message number {n}") for n in range(8)]
    errors: list[str] = []

    def run(work: ConversationWork) -> None:
        try:
            h.build().handle(work)
        except Exception:
            errors.append(traceback.format_exc())

    threads = [threading.Thread(target=run, args=(w,)) for w in works]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    flow = h.participants.get_flow_state(participant.id)
    user_texts = [e.content for e in flow.history if e.role == "user"]
    assert sorted(t for t in user_texts if t.startswith("message number")) == [f"message number {n}" for n in range(8)]
    for work in works:
        stored = h.conversation.inbound_message(participant.id, work.message_id or "")
        assert stored is not None
        assert stored.turn is not None
    bodies = [s.body for s in h.sms.sent]
    assert len(h.conversation.open_outbox(participant.id)) == 0
    assert len(bodies) == len(replies_in_transcript(h, participant))


def test_the_intake_creates_the_daily_schedule_through_the_outbox(h: Harness) -> None:
    participant = h.enroll(timezone="Asia/Kolkata")

    finish_intake(h, participant)

    assert h.schedules(participant) == {"daily_nudge": ("cron(30 7 * * ? *)", "Asia/Kolkata")}
    assert h.participants.get_flow_state(participant.id).sub_state == "FEEDBACK"
    assert h.conversation.open_outbox(participant.id) == []  # the reconcile item is done too


def test_a_reset_deletes_the_schedule(h: Harness) -> None:
    participant = h.enroll()
    finish_intake(h, participant)

    h.enrollment.reset(participant.id)
    h.run_queued()

    assert h.schedules(participant) == {}
    assert h.sms.sent[-2].body == "Let's start fresh!"


class FailingModel:
    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages: object, tools: object, *, time_left: float | None = None) -> object:
        self.calls += 1
        raise LanguageModelUnavailable("timed out after 20 s")


class CountingModel(FailingModel):
    def complete(self, messages: object, tools: object, *, time_left: float | None = None) -> object:
        from coach.domain.chat import ModelReply

        self.calls += 1
        return ModelReply(content="Nice work - keep it going!")


def test_an_llm_timeout_gets_the_offline_coachs_answer() -> None:
    model = FailingModel()
    with harness("memory", language_model=model) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        finish_intake(h, participant)

        replies = h.text(participant, "did it!")

    assert model.calls >= 1
    assert replies
    events = h.participants.list_events(participant.id, limit=200, next_token=None).items
    assert any(e.kind == "llm_fallback" for e in events)


def test_the_daily_llm_cap_switches_to_the_offline_coach() -> None:
    model = CountingModel()
    with harness("memory", language_model=model, daily_llm_calls=2) as h:  # type: ignore[arg-type]
        participant = h.enroll()
        finish_intake(h, participant)
        calls_after_intake = model.calls
        answers = [h.text(participant, "did it!") for _ in range(4)]

    llm_turns = model.calls - calls_after_intake
    assert llm_turns <= 2
    assert all(answers)
    assert answers[-1] != ["Nice work - keep it going!"]


def test_the_same_reset_work_twice_resets_once() -> None:
    with harness("memory") as h:
        participant = h.enroll()
        finish_intake(h, participant)
        work = ConversationWork(kind=WorkKind.RESET, participant_id=participant.id, occurred_at=START)
        h.service.handle(work)
        sent = len(h.sms.sent)

        h.service.handle(work)

    assert len(h.sms.sent) == sent


def test_more_waiting_texts_than_a_turn_takes_are_answered_in_order_and_none_is_lost() -> None:
    with harness("memory", max_texts_per_turn=2) as h:
        participant = h.enroll()
        h.text(participant, "yes")
        works = []
        for body in ["first", "second", "third"]:
            works.append(h.receive(participant, body))
            h.clock.advance(seconds=1)

        h.service.handle(works[2])  # the newest text's work comes first (e.g. the others' were delayed)
        turns = [[e.content for e in h.participants.get_flow_state(participant.id).history if e.role == "user"][-2:]]
        for work in works[:2]:
            h.service.handle(work)

        history = [e.content for e in h.participants.get_flow_state(participant.id).history if e.role == "user"]
        assert turns[0] == ["first", "third"]  # the oldest waiting one and the work's own, in order
        assert history[-3:] == ["first", "third", "second"]
        for work in works:
            stored = h.conversation.inbound_message(participant.id, work.message_id or "")
            assert stored is not None
            assert stored.turn is not None
