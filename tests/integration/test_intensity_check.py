"""The optional intensity check: after a success, asked at most once per local day, and it sizes the next
nudge. Off by default."""

from __future__ import annotations

from tests.integration.test_nudges import at_local, coached
from tests.support.conversation import Harness, harness


def kinds(h: Harness, participant_id: str) -> list[str]:
    return [e.kind for e in h.participants.list_events(participant_id, limit=500, next_token=None).items]


def test_asked_once_a_day_after_a_success_and_the_answer_sizes_tomorrows_nudge() -> None:
    with harness("memory", intensity_check=True) as h:
        participant = coached(h)
        at_local(h, participant, "07:30")
        h.fire(participant)

        first = h.text(participant, "did it!")
        answer = h.text(participant, "a bit more please")
        again = h.text(participant, "did it again!")  # same local day: not asked twice

        assert first[-1].startswith("Quick check")
        assert answer == ["Got it - tomorrow's will be a little bigger."]
        assert not any(r.startswith("Quick check") for r in again)
        assert kinds(h, participant.id).count("intensity_asked") == 1
        assert h.participants.get_flow_state(participant.id).user_profile.intensity == 1

        at_local(h, participant, "07:30")
        [nudge] = h.fire(participant)
        assert "second round" in nudge
        next_day = h.text(participant, "done!")
        assert next_day[-1].startswith("Quick check")  # a new local day


def test_an_answer_to_something_else_is_not_trapped() -> None:
    with harness("memory", intensity_check=True) as h:
        participant = coached(h)
        at_local(h, participant, "07:30")
        h.fire(participant)
        h.text(participant, "did it!")

        reply = h.text(participant, "can we do evenings instead?")

        assert not reply[0].startswith("Got it -")
        assert h.participants.get_flow_state(participant.id).awaiting_intensity is False


def test_off_by_default() -> None:
    with harness("memory") as h:
        participant = coached(h)
        at_local(h, participant, "07:30")
        h.fire(participant)

        assert not any(r.startswith("Quick check") for r in h.text(participant, "did it!"))
        assert "intensity_asked" not in kinds(h, participant.id)
