"""What the hot paths cost in AWS requests (counted, not timed), on moto with the template's resources.

A conversation turn: one consistent read (participant, flow state, the text it answers, the open outbox keys),
the query for other texts still waiting, one transaction that saves the turn with its texts marked as being
sent, and one write that closes the sends; the schedule a turn changes is one more request. A nudge: the
read, the save, the reminder's schedule, the close. The webhook: the same few requests however many texts
the participant has sent.
"""

from __future__ import annotations

from collections import Counter

import pytest

from tests.bench.support import INTAKE, measured_turn, nudge_timings, webhook_requests

TURN = Counter(
    {
        "dynamodb.BatchGetItem": 1,  # participant, flow state, the text, the open outbox keys
        "dynamodb.Query": 1,  # other texts waiting for a turn
        "dynamodb.TransactWriteItems": 2,  # the saved turn; the close of its sends
    }
)
NEVER = ("dynamodb.Scan", "dynamodb.GetItem", "scheduler.UpdateSchedule", "scheduler.GetSchedule")


@pytest.mark.parametrize(
    ("answers", "text", "replies"),
    [
        pytest.param(("yes",), "physical activity", 1, id="one reply"),
        pytest.param((), "yes", 2, id="two replies"),
    ],
)
def test_a_turn_costs_four_requests_whatever_the_number_of_replies(
    answers: tuple[str, ...], text: str, replies: int
) -> None:
    turn = measured_turn(answers=answers, text=text)

    assert turn.replies == replies
    assert turn.requests == TURN


def test_the_turn_that_ends_the_intake_pays_one_request_more_for_the_daily_schedule() -> None:
    turn = measured_turn(answers=tuple(INTAKE[:-1]), text=INTAKE[-1])

    assert turn.requests == TURN + Counter({"scheduler.CreateSchedule": 1})
    assert sum(turn.requests.values()) <= 5


def test_requests_per_turn_do_not_grow_with_the_transcript() -> None:
    short, long = measured_turn(0), measured_turn(400)

    assert short.requests == long.requests == TURN
    assert not any(operation in NEVER for operation in long.requests)


def test_a_nudge_costs_four_requests() -> None:
    # Given one coached participant, when its daily nudge fires (a decision, the nudge, its reminder scheduled)
    timings, requests = nudge_timings(1)

    assert len(timings) == 1
    assert requests == Counter(
        {
            "dynamodb.BatchGetItem": 1,  # participant, flow state, the day's nudge key, the open outbox keys
            "dynamodb.TransactWriteItems": 2,  # the decision, the nudge and the reminder saved; their close
            "scheduler.CreateSchedule": 1,  # the reminder: new every time, so created in one call
        }
    )
    assert sum(requests.values()) <= 4


def test_the_webhook_costs_the_same_few_requests_however_many_texts_came_before() -> None:
    first, later = webhook_requests(0), webhook_requests(300)

    assert first == later
    assert first == Counter(
        {
            "dynamodb.GetItem": 2,  # the number's participant, then the participant
            "dynamodb.TransactWriteItems": 1,  # the text and its MessageSid, once
            "sqs.SendMessage": 1,
        }
    )
