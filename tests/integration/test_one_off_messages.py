"""A researcher's one-off messages (issue 10): through the same outbox as the coach's texts, honouring
opt-out, status and quiet hours (unless overridden), within the segment budget, in the transcript and the
audit trail. On DynamoDB (moto) and in memory."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from coach.domain.audit import Actor
from coach.domain.errors import InvalidField, NotFound
from coach.domain.message import Direction
from coach.domain.participant import Participant, ParticipantStatus
from coach.services.enrollment import UpdateParticipant
from coach.services.messages import Broadcast, ResearcherMessages, SendMessage
from tests.support.conversation import Harness, harness
from tests.support.memory import InMemoryAuditLog, InMemoryParticipantStore

ADA = Actor(name="dr-ada", key_id="k1", source_ip="198.51.100.7")
ZONE = ZoneInfo("America/New_York")


@pytest.fixture(params=["dynamodb", "memory"])
def h(request: pytest.FixtureRequest) -> Iterator[Harness]:
    with harness(request.param) as built:
        at = built.clock.now().astimezone(ZONE).date() + timedelta(days=1)
        built.clock.set(datetime.combine(at, time(11, 0), tzinfo=ZONE))  # mid-morning: outside quiet hours
        yield built


def messages(h: Harness) -> ResearcherMessages:
    return ResearcherMessages(h.enrollment, segment_budget=2)


def consented(h: Harness, phone: str = "+12065550100") -> Participant:
    participant = h.enroll(phone=phone)
    h.text(participant, "yes")
    return h.participants.get_participant(participant.id)


def sent_to(h: Harness, participant: Participant, text: str) -> list[str]:
    h.run_queued()
    return [body for body in h.sms.bodies_to(participant.phone_number) if body == text]


def test_a_one_off_message_is_sent_once_and_is_in_the_transcript_as_the_researchers(h: Harness) -> None:
    participant = consented(h)

    queued = messages(h).send(participant.id, SendMessage(text="Thanks for taking part this week!"), ADA)

    assert sent_to(h, participant, "Thanks for taking part this week!") == ["Thanks for taking part this week!"]
    transcript = h.participants.list_messages(participant.id, limit=100, next_token=None).items
    [mine] = [m for m in transcript if m.message_id == queued.message_ids[0]]
    assert (mine.direction, mine.coach, mine.status) == (Direction.OUTBOUND, "researcher", "queued")


@pytest.mark.parametrize(
    ("change", "reason"),
    [({"opted_out": True}, "opted_out"), ({"status": ParticipantStatus.WITHDRAWN}, "withdrawn")],
)
def test_an_opted_out_or_withdrawn_participant_gets_no_one_off_message(
    h: Harness, change: dict[str, object], reason: str
) -> None:
    participant = consented(h)
    h.participants.update_participant(participant.model_copy(update=change))

    messages(h).send(participant.id, SendMessage(text="Hello from the study team"), ADA)

    assert sent_to(h, participant, "Hello from the study team") == []
    events = h.participants.list_events(participant.id, limit=200, next_token=None).items
    assert [e.data["reason"] for e in events if e.kind == "message_withheld"] == [reason]


def test_a_paused_participant_still_gets_a_researchers_message(h: Harness) -> None:
    participant = consented(h)
    h.enrollment.update(participant.id, UpdateParticipant(status=ParticipantStatus.PAUSED))

    messages(h).send(participant.id, SendMessage(text="We paused your nudges, as you asked."), ADA)

    assert len(sent_to(h, participant, "We paused your nudges, as you asked.")) == 1


def test_quiet_hours_hold_a_message_back_unless_the_researcher_overrides_them(h: Harness) -> None:
    participant = consented(h)
    night = h.clock.now().astimezone(ZONE).date() + timedelta(days=1)
    h.clock.set(datetime.combine(night, time(23, 30), tzinfo=ZONE))

    messages(h).send(participant.id, SendMessage(text="Late note"), ADA)
    messages(h).send(participant.id, SendMessage(text="Urgent note", override_quiet_hours=True), ADA)

    assert sent_to(h, participant, "Late note") == []
    assert sent_to(h, participant, "Urgent note") == ["Urgent note"]


def test_a_text_over_the_segment_budget_is_refused_not_cut(h: Harness) -> None:
    participant = consented(h)

    with pytest.raises(InvalidField) as refused:
        messages(h).send(participant.id, SendMessage(text="x" * 400), ADA)

    assert refused.value.field == "text"
    assert "3 SMS segments" in refused.value.message
    assert h.queue.sent == []
    with pytest.raises(NotFound):
        messages(h).send("nobody", SendMessage(text="hi"), ADA)


def test_a_broadcast_reaches_the_arms_active_participants_only(h: Harness) -> None:
    first, second, third = (consented(h, f"+1206555011{n}") for n in range(3))
    for participant, arm in [(first, "a"), (second, "b"), (third, "a")]:
        stored = h.participants.get_participant(participant.id)
        h.participants.update_participant(stored.model_copy(update={"study_arm": arm}))
    h.enrollment.update(third.id, UpdateParticipant(status=ParticipantStatus.PAUSED))

    queued = messages(h).broadcast(Broadcast(text="Arm A: week two starts today", arm="a"), ADA)

    assert queued.participant_ids == [first.id]
    assert len(sent_to(h, first, "Arm A: week two starts today")) == 1
    assert sent_to(h, second, "Arm A: week two starts today") == []


def test_every_message_is_on_the_audit_trail() -> None:
    with harness("memory") as h:
        assert isinstance(h.participants, InMemoryParticipantStore)
        h.enrollment.audit = InMemoryAuditLog(h.participants)
        participant = consented(h)

        queued = messages(h).send(participant.id, SendMessage(text="Thanks!"), ADA)

        trail = h.enrollment.audit_entries(participant_id=participant.id, limit=50, next_token=None).items
        [entry] = [e for e in trail if e.action == "message"]
        assert (entry.researcher, entry.details["text"], entry.details["message_id"]) == (
            "dr-ada",
            "Thanks!",
            queued.message_ids[0],
        )
