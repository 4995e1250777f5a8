"""EnrollmentService with in-memory fakes: behaviour asserted on the state it leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from coach.domain.errors import Conflict, InvalidField, NotFound, PhoneNumberTaken
from coach.domain.flow import SubState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.work import WorkKind
from coach.services.enrollment import EnrollmentService, EnrollParticipant, UpdateParticipant
from tests.support.memory import InMemoryParticipantStore, InMemoryWorkQueue, ManualClock

START = datetime(2026, 5, 4, 8, 30, tzinfo=UTC)


class FlakyQueue(InMemoryWorkQueue):
    def send(self, work: object) -> None:
        raise ConnectionError("queue unreachable")


class RacingStore(InMemoryParticipantStore):
    """Loses the first `losses` participant writes to a concurrent writer, as DynamoDB would report."""

    def __init__(self, losses: int) -> None:
        super().__init__()
        self.losses = losses

    def update_participant(self, participant: Participant, **kwargs: object) -> Participant:  # type: ignore[override]
        if self.losses:
            self.losses -= 1
            current = self.get_participant(participant.id)
            super().update_participant(current.model_copy(update={"study_arm": f"arm-{self.losses}"}))
        return super().update_participant(participant, **kwargs)  # type: ignore[arg-type]


def service(store: InMemoryParticipantStore | None = None, queue: InMemoryWorkQueue | None = None) -> EnrollmentService:
    ids = iter(f"p{n}" for n in range(100))
    return EnrollmentService(
        store=store or InMemoryParticipantStore(),
        queue=queue or InMemoryWorkQueue(),
        clock=ManualClock(START),
        new_id=lambda: next(ids),
    )


def test_enrolling_stores_participant_phone_and_intake_state_then_queues_the_greeting() -> None:
    queue = InMemoryWorkQueue()
    coach = service(queue=queue)

    participant = coach.enroll(EnrollParticipant(phone_number="(206) 555-0100", name="Ada", background="nurse"))

    assert participant.phone_number == "+12065550100"
    assert participant.timezone == "America/New_York"
    assert participant.enrolled_at == START
    flow = coach.store.get_flow_state(participant.id)
    assert flow.sub_state is SubState.INTAKE
    assert "Name: Ada" in flow.participant_background
    assert "Background: nurse" in flow.participant_background
    assert [(w.kind, w.participant_id) for w in queue.sent] == [(WorkKind.ENROLLED, participant.id)]


def test_a_taken_number_queues_nothing() -> None:
    queue = InMemoryWorkQueue()
    coach = service(queue=queue)
    coach.enroll(EnrollParticipant(phone_number="+12065550100"))

    with pytest.raises(PhoneNumberTaken):
        coach.enroll(EnrollParticipant(phone_number="206.555.0100"))

    assert len(queue.sent) == 1


def test_a_queue_failure_is_reported_and_the_enrollment_stands() -> None:
    reported: list[str] = []
    coach = service(queue=FlakyQueue())
    coach.on_queue_failure = lambda kind, exc: reported.append(kind)

    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100"))

    assert coach.get(participant.id) == participant
    assert reported == ["enrolled"]


def test_a_queue_failure_with_nobody_to_report_to_is_raised() -> None:
    coach = service(queue=FlakyQueue())

    with pytest.raises(ConnectionError):
        coach.enroll(EnrollParticipant(phone_number="+12065550100"))


def test_update_retries_a_lost_race_and_keeps_the_other_writers_change() -> None:
    store = RacingStore(losses=2)
    coach = service(store=store)
    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100"))

    updated = coach.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))

    assert updated.status is ParticipantStatus.PAUSED
    assert updated.study_arm == "arm-0"  # the concurrent write survived
    kinds = [e.kind for e in store.events[participant.id]]
    assert kinds.count("status_changed") == 1


def test_update_gives_up_after_repeated_races() -> None:
    store = RacingStore(losses=50)
    coach = service(store=store)
    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100"))

    with pytest.raises(Conflict):
        coach.update(participant.id, UpdateParticipant(name="Ada"))


def test_update_with_nothing_new_writes_nothing() -> None:
    coach = service()
    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100", name="Ada"))

    same = coach.update(participant.id, UpdateParticipant(name="Ada", phone_number="206 555 0100"))

    assert same.version == participant.version
    assert [e.kind for e in coach.store.list_events(participant.id, limit=10, next_token=None).items] == ["enrolled"]


def test_null_clears_a_text_field_but_not_a_required_one() -> None:
    coach = service()
    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100", name="Ada"))

    cleared = coach.update(participant.id, UpdateParticipant(name=None))

    assert cleared.name is None
    with pytest.raises(InvalidField) as caught:
        coach.update(participant.id, UpdateParticipant(timezone=None))
    assert caught.value.field == "timezone"


def test_reset_needs_an_existing_participant() -> None:
    with pytest.raises(NotFound):
        service().reset("nobody")


def test_api_reset_removes_the_schedule_and_the_engines_reset_turn_keeps_consent() -> None:
    from coach.bots.engine import run_turn
    from coach.bots.turn import TurnEvent, TurnInput
    from coach.domain.flow import DailySchedule
    from coach.domain.schedules import daily_schedule_name
    from coach.services.schedules import reconcile_stored
    from tests.support.memory import InMemoryScheduler

    scheduler = InMemoryScheduler()
    coach = service()
    coach.scheduler = scheduler
    participant = coach.enroll(EnrollParticipant(phone_number="+12065550100"))
    flow = coach.store.get_flow_state(participant.id)
    coach.store.save_flow_state(
        flow.model_copy(
            update={"consent": True, "sub_state": SubState.FEEDBACK, "daily_schedule": DailySchedule(time="07:30")}
        )
    )
    reconcile_stored(coach.store, scheduler, participant.id, START)
    assert daily_schedule_name(participant.id) in scheduler.schedules

    coach.reset(participant.id)
    after_api = coach.store.get_flow_state(participant.id)
    turn = run_turn(TurnInput(flow=after_api, participant=participant, now=START, event=TurnEvent.RESET))

    assert after_api.sub_state is SubState.INTAKE
    assert after_api.user_profile.preferred_time is None
    assert after_api.daily_schedule is None
    assert scheduler.schedules == {}  # the API's reset reconciled: no orphan schedule
    assert turn.flow.consent is True
    assert turn.flow.daily_schedule is None
    assert turn.replies
    assert turn.flow.intake_question not in (None, "consent")  # straight back to the habit questions
