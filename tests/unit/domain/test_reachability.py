"""The reachability rule, as a table: every status x opt-out x consent x sub-state x safety flag x time x purpose.

The table below says, for each purpose, what one departure from a fully reachable participant (active, opted
in, consented, in the feedback phase) does: the reason it adds, or "-" when it is no reason not to text.
The product test checks every combination of departures against it: the reasons of a combination are the
reasons of its departures, in the rule's order, whatever else is true.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time

import pytest

from coach.domain.flow import FlowState, SafetyReview, SubState
from coach.domain.participant import Participant, ParticipantStatus
from coach.domain.reachability import Purpose, QuietHours, at_chosen_time, unreachable_reasons

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
QUIET = QuietHours.parse("21:00", "08:00")
PURPOSES = (
    Purpose.REPLY,
    Purpose.GREETING,
    Purpose.NUDGE,
    Purpose.REMINDER,
    Purpose.INTENSITY_CHECK,
    Purpose.TRANSITION,
    Purpose.ONE_OFF,
)

# departure -> the reason it adds for: reply, greeting, nudge, reminder, intensity check, transition, one-off
TABLE = {
    "paused": ("-", "-", "paused", "paused", "paused", "paused", "-"),
    "completed": ("completed",) * 7,
    "withdrawn": ("withdrawn",) * 7,
    "opted_out": ("opted_out",) * 7,
    "consent_unknown": ("-", "-", "no_consent", "no_consent", "no_consent", "no_consent", "-"),
    "consent_declined": ("consent_declined",) * 7,
    "in_intake": ("-", "-", "intake_incomplete", "intake_incomplete", "intake_incomplete", "-", "-"),
    "in_review": ("-", "-", "needs_review", "needs_review", "needs_review", "needs_review", "-"),
    "quiet_hours": ("-", "-", "quiet_hours", "quiet_hours", "-", "quiet_hours", "quiet_hours"),
    "quiet_but_chosen": ("-", "-", "-", "quiet_hours", "-", "quiet_hours", "quiet_hours"),
}
# The order the rule lists reasons in (status, opt-out, consent, phase, safety review, time).
ORDER = (
    "paused",
    "completed",
    "withdrawn",
    "opted_out",
    "no_consent",
    "consent_declined",
    "intake_incomplete",
    "needs_review",
    "quiet_hours",
)

STATUSES = {
    ParticipantStatus.ACTIVE: None,
    ParticipantStatus.PAUSED: "paused",
    ParticipantStatus.COMPLETED: "completed",
    ParticipantStatus.WITHDRAWN: "withdrawn",
}
CONSENTS = {True: None, None: "consent_unknown", False: "consent_declined"}
SUB_STATES = {SubState.FEEDBACK: None, SubState.INTAKE: "in_intake"}
REVIEWS = {False: None, True: "in_review"}  # a safety flag waiting for a researcher
TIMES = {time(12, 0): None, time(22, 0): "quiet_hours", time(23, 0): "quiet_but_chosen"}  # chosen: 23:00


def who(status: ParticipantStatus = ParticipantStatus.ACTIVE, opted_out: bool = False) -> Participant:
    return Participant(
        id="p-1",
        phone_number="+12065550100",
        timezone="America/New_York",
        status=status,
        opted_out=opted_out,
        enrolled_at=NOW,
        created_at=NOW,
        updated_at=NOW,
    )


def flow(consent: bool | None = True, sub_state: SubState = SubState.FEEDBACK, flagged: bool = False) -> FlowState:
    state = FlowState.start("p-1", "", NOW)
    state.consent, state.sub_state = consent, sub_state
    if flagged:
        state.safety_review = SafetyReview(category="crisis", rule="crisis.test", flagged_at=NOW)
    state.user_profile.preferred_time = "23:00"
    return state


def expected(departures: list[str | None], purpose: Purpose) -> tuple[str, ...]:
    column = PURPOSES.index(purpose)
    reasons = {TABLE[d][column] for d in departures if d is not None} - {"-"}
    return tuple(r for r in ORDER if r in reasons)


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_fully_reachable_participant_may_get_a_text_for_every_purpose(purpose: Purpose) -> None:
    assert unreachable_reasons(who(), flow(), purpose, local=time(12, 0), quiet=QUIET) == ()


@pytest.mark.parametrize("purpose", PURPOSES)
def test_a_deleted_participant_gets_nothing_for_any_purpose(purpose: Purpose) -> None:
    assert unreachable_reasons(None, None, purpose, local=time(12, 0), quiet=QUIET) == ("deleted",)


@pytest.mark.parametrize(
    ("status", "opted_out", "consent", "sub_state", "flagged", "local", "purpose"),
    list(itertools.product(STATUSES, (False, True), CONSENTS, SUB_STATES, REVIEWS, TIMES, PURPOSES)),
)
def test_every_combination_gives_exactly_the_reasons_of_its_departures(
    status: ParticipantStatus,
    opted_out: bool,
    consent: bool | None,
    sub_state: SubState,
    flagged: bool,
    local: time,
    purpose: Purpose,
) -> None:
    # Given a participant departing from "fully reachable" in these ways
    departures = [STATUSES[status], "opted_out" if opted_out else None, CONSENTS[consent], SUB_STATES[sub_state]]
    departures += [REVIEWS[flagged], TIMES[local]]

    # When the rule is asked about a text for this purpose at that local time
    state = flow(consent, sub_state, flagged)
    reasons = unreachable_reasons(who(status, opted_out), state, purpose, local=local, quiet=QUIET)

    # Then it gives every reason the table gives for those departures, and nothing else
    assert reasons == expected(departures, purpose)


def test_without_a_time_quiet_hours_are_not_judged() -> None:
    # The outbox asks again right before a send: the time was judged at the decision, the window bounds the rest.
    assert unreachable_reasons(who(), flow(), Purpose.NUDGE) == ()
    assert unreachable_reasons(who(), flow(), Purpose.NUDGE, local=time(22, 0)) == ()


@pytest.mark.parametrize(
    ("preferred", "local", "chosen"),
    [
        ("07:30", time(7, 30), True),
        ("07:30", time(8, 0), True),
        ("07:30", time(8, 1), False),
        ("23:50", time(0, 10), True),  # across midnight
        (None, time(7, 30), False),
    ],
)
def test_the_chosen_time_has_half_an_hour_of_tolerance_either_way(
    preferred: str | None, local: time, chosen: bool
) -> None:
    assert at_chosen_time(preferred, local) is chosen


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        ("21:00", "08:00", [time(21, 0), time(3, 0), time(7, 59)], [time(8, 0), time(20, 59)]),
        ("13:00", "14:00", [time(13, 30)], [time(14, 0), time(12, 59)]),
    ],
)
def test_quiet_hours_may_wrap_past_midnight(start: str, end: str, inside: list[time], outside: list[time]) -> None:
    quiet = QuietHours.parse(start, end)
    assert all(quiet.contains(t) for t in inside)
    assert not any(quiet.contains(t) for t in outside)
