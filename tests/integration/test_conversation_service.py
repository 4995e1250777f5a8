"""The conversation function's guarantees, on DynamoDB (moto) and in memory, with faults injected.

No inbound message lost; no reply sent twice; no stale state written; nothing to opted-out, withdrawn
or deleted participants; every failure ends in a retry (the exception reaches SQS) or a recorded error.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from coach.domain.chat import LanguageModelUnavailable
from coach.domain.errors import DeliveryRejected, DeliveryUnavailable
from coach.domain.outbox import OutboxState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.work import ConversationWork, WorkKind
from coach.ports import SentSms, StoredTurn, TurnReads
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


def test_work_queued_before_it_carried_the_texts_time_is_answered_once_all_the_same(h: Harness) -> None:
    # Given a text whose work an earlier webhook queued with its MessageSid only
    participant = h.enroll()
    work = h.receive(participant, "yes").model_copy(update={"message_at": None})

    # When it is delivered, and again
    h.service.handle(work)
    h.service.handle(work)

    # Then the text is found by its MessageSid and answered once
    assert len(h.sms.sent) == 1 + 2
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


def test_a_run_that_dies_between_its_sends_and_their_close_sends_nothing_again_on_redelivery(h: Harness) -> None:
    # Given a turn of two replies whose run is killed after Twilio took both, before it could record them
    participant = h.enroll()
    work = h.receive(participant, "yes")
    close = h.conversation.finish_outbox

    def killed(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("Lambda timed out")

    h.conversation.finish_outbox = killed  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        h.service.handle(work)
    h.conversation.finish_outbox = close  # type: ignore[method-assign]
    assert len(h.sms.sent) == 3  # the greeting and the two replies
    assert len(h.conversation.open_outbox(participant.id)) == 2  # saved as being sent, never closed

    # When SQS delivers the work again
    h.service.handle(work)

    # Then both are found at Twilio and closed with their SIDs: no text went out twice
    assert len(h.sms.sent) == 3
    assert h.conversation.open_outbox(participant.id) == []
    outbound = [m for m in h.participants.list_messages(participant.id, limit=50, next_token=None).items][-2:]
    assert [m.twilio_sid for m in outbound] == [s.sid for s in h.sms.sent[1:]]


def test_a_reply_another_live_run_is_sending_is_left_to_it(h: Harness) -> None:
    # Given a participant's two texts, the second's turn running while the first's reply is being sent
    participant = h.enroll()
    h.text(participant, "yes")
    first, second = h.receive(participant, "physical activity"), None
    send = h.sms.send

    def send_while_another_turn_runs(to: str, body: str, **options: Any) -> SentSms:
        nonlocal second
        if second is None:  # a nudge, an API message or (without FIFO) another text's turn, at this moment
            h.clock.advance(seconds=5)
            second = h.receive(participant, "to have more energy")
            h.build().handle(second)
        return send(to, body, **options)

    h.sms.send = send_while_another_turn_runs  # type: ignore[method-assign]
    h.service.handle(first)

    # Then each reply went out once, each from its own run
    bodies = h.sms.bodies_to(participant.phone_number)
    assert len(bodies) == len(set(bodies)) == 5  # greeting, "let's begin" + a question, and one per text
    assert h.conversation.open_outbox(participant.id) == []


@pytest.mark.parametrize(("minutes", "recovered"), [(1, False), (3, True)])
def test_a_reply_whose_run_died_is_sent_by_the_next_run_once_its_attempt_is_over(
    h: Harness, minutes: int, recovered: bool
) -> None:
    # Given a reply saved as being sent whose run died before Twilio took it (its work not yet back)
    participant = h.enroll()
    h.text(participant, "yes")
    work = h.receive(participant, "physical activity")
    h.sms.fail_next(RuntimeError("Lambda froze"))
    with pytest.raises(RuntimeError):
        h.service.handle(work)
    sent_before = len(h.sms.sent)

    # When the participant's next text comes `minutes` later (another work, another run)
    h.clock.advance(minutes=minutes)
    h.text(participant, "to have more energy")

    # Then within the attempt's lease the reply is left alone (its run may be alive); after it, it goes out
    bodies = h.sms.bodies_to(participant.phone_number)[sent_before:]
    assert len(bodies) == (2 if recovered else 1)
    assert len(h.conversation.open_outbox(participant.id)) == (0 if recovered else 1)
    # and the dead run's own redelivery sends it at once if nobody did, never a second time
    h.service.handle(work)
    assert len(h.sms.bodies_to(participant.phone_number)[sent_before:]) == 2
    assert h.conversation.open_outbox(participant.id) == []


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


def race_the_load(h: Harness, write: Callable[[StoredTurn], None]) -> None:
    """Make `write` land right after the next turn's load (a nudge, an API update, a STOP at the webhook)."""
    original = h.conversation.load_turn
    raced = []

    def racing_load(participant_id: str, reads: TurnReads | None = None) -> StoredTurn:
        stored = original(participant_id, reads)
        if not raced:
            raced.append(True)
            write(stored)
        return stored

    h.conversation.load_turn = racing_load  # type: ignore[method-assign]


def test_a_state_write_racing_the_turn_is_kept_and_the_turn_recomputed(h: Harness) -> None:
    participant = h.enroll()
    work = h.receive(participant, "yes")
    store = h.participants
    race_the_load(
        h,
        lambda stored: store.save_flow_state(
            stored.flow.model_copy(update={"last_habit_prompt": "written by the racer"})
        ),
    )

    h.service.handle(work)

    flow = store.get_flow_state(participant.id)
    assert flow.last_habit_prompt == "written by the racer"
    assert flow.consent is True
    assert len(h.sms.sent) == 3


def test_a_stop_between_the_load_and_the_save_is_not_missed(h: Harness) -> None:
    # Given a STOP that reaches the webhook while the turn is being decided (only the participant changes)
    participant = h.enroll()
    work = h.receive(participant, "yes")
    race_the_load(
        h, lambda stored: h.participants.update_participant(stored.participant.model_copy(update={"opted_out": True}))
    )

    # When the turn runs
    h.service.handle(work)

    # Then its save failed on the participant's version, the turn was decided again and nothing went out
    assert len(h.sms.sent) == 1  # the greeting only
    assert h.conversation.open_outbox(participant.id) == []
    inbound = h.conversation.inbound_message(participant.id, work.message_id or "")
    assert inbound is not None
    assert inbound.turn is not None


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
