"""Study arms at work (issue 10): allocation at enrollment by seeded permuted blocks (or as given), and what an
arm changes: its nudge probability, reminders, the intensity check, the LLM or the offline coach."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.arms import parse_study_arms
from coach.domain.chat import ModelReply
from coach.domain.errors import InvalidField
from coach.services.enrollment import EnrollParticipant
from tests.support.conversation import Harness, harness
from tests.support.memory import InMemoryEnrollmentSequence

ARMS = json.dumps(
    [
        {"name": "always", "nudge_probability": 1.0},
        {"name": "never", "nudge_probability": 0.0, "reminders": False, "coach": "offline"},
    ]
)
INTAKE = ["yes", "physical activity", "to have more energy", "7:30am", "after my morning coffee", "no"]
ZONE = ZoneInfo("America/New_York")


def with_arms(h: Harness) -> None:
    h.enrollment.arms = parse_study_arms(ARMS)
    h.enrollment.seed = "study-a"
    h.enrollment.sequence = InMemoryEnrollmentSequence()


def test_enrollment_allocates_balanced_permuted_blocks_reproducibly() -> None:
    def arms_of_twenty() -> list[str | None]:
        with harness("memory") as h:
            with_arms(h)
            return [h.enroll(phone=f"+120655502{n:02d}").study_arm for n in range(20)]

    first, again = arms_of_twenty(), arms_of_twenty()

    assert first == again  # seeded: the same study gives the same sequence of arms
    for block in range(10):  # each block of two holds each arm once
        assert sorted(first[2 * block : 2 * block + 2]) == ["always", "never"]  # type: ignore[type-var]


def test_an_arm_can_be_given_and_must_be_one_of_the_study() -> None:
    with harness("memory") as h:
        with_arms(h)
        given = h.enrollment.enroll(EnrollParticipant(phone_number="+12065550301", study_arm="never"))
        with pytest.raises(InvalidField) as wrong:
            h.enrollment.enroll(EnrollParticipant(phone_number="+12065550302", study_arm="sometimes"))

    assert given.study_arm == "never"
    assert wrong.value.field == "study_arm"
    assert "always, never" in wrong.value.message


def test_an_arms_probability_and_reminders_decide_its_participants_nudges() -> None:
    with harness("memory", study_arms=ARMS) as h:
        with_arms(h)
        people = {}
        for arm in ("always", "never"):
            participant = h.enrollment.enroll(
                EnrollParticipant(phone_number=f"+1206555040{len(people)}", study_arm=arm)
            )
            h.run_queued()
            for text in INTAKE:
                h.text(participant, text)
            people[arm] = participant
        counts: Counter[str] = Counter()
        for _day in range(1, 4):
            local = datetime.combine(
                h.clock.now().astimezone(ZONE).date() + timedelta(days=1), time(7, 30), tzinfo=ZONE
            )
            h.clock.set(local)
            for arm, participant in people.items():
                counts[arm] += len(h.fire_scheduled(participant))

        never = h.participants.list_decisions(people["never"].id, limit=10, next_token=None).items
        always = h.participants.list_decisions(people["always"].id, limit=10, next_token=None).items

    assert counts == {"always": 3, "never": 0}
    assert {(d.arm, d.probability, d.decision) for d in never} == {("never", 0.0, "no_nudge")}
    assert {(d.arm, d.probability, d.decision) for d in always} == {("always", 1.0, "nudge")}


def test_an_arm_without_reminders_gets_none_and_an_offline_arm_never_asks_the_llm() -> None:
    class Counting:
        calls = 0

        def complete(self, messages: object, tools: object, *, time_left: float | None = None) -> ModelReply:
            Counting.calls += 1
            return ModelReply(content="From the LLM")

    arms = json.dumps([{"name": "quiet", "reminders": False, "coach": "offline"}, {"name": "other"}])
    with harness("memory", language_model=Counting(), study_arms=arms) as h:  # type: ignore[arg-type]
        h.enrollment.arms = parse_study_arms(arms)
        participant = h.enrollment.enroll(EnrollParticipant(phone_number="+12065550501", study_arm="quiet"))
        h.run_queued()
        for text in INTAKE:
            h.text(participant, text)
        local = datetime.combine(h.clock.now().astimezone(ZONE).date() + timedelta(days=1), time(7, 30), tzinfo=ZONE)
        h.clock.set(local)
        h.fire_scheduled(participant)

        flow = h.participants.get_flow_state(participant.id)
        events = h.participants.list_events(participant.id, limit=500, next_token=None).items

    assert Counting.calls == 0  # the offline coach did intake and the nudge
    assert flow.pending_reminder is None
    assert "reminder" not in {spec.kind for spec in h.scheduler.of(participant.id).values()}
    assert {e.data["reason"] for e in events if e.kind == "llm_not_used"} == {"arm_offline_coach"}
