"""The flow-state item is bounded in bytes, not only in entries: it is rewritten whole every turn."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from coach.bots.engine import run_turn
from coach.bots.turn import TurnInput
from coach.domain.flow import HISTORY_BYTES, HISTORY_ENTRY_BYTES, HISTORY_STORED, HistoryEntry, bounded_history
from coach.domain.message import MAX_BODY_CHARS, clip_utf8
from tests.support.flow_size import (
    FLOW_ITEM_GOAL_BYTES,
    PARTICIPANT,
    START,
    WIDE,
    flow_item_bytes,
    item_size,
    worst_case_flow,
    worst_case_flows,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def entries(texts: list[str]) -> list[HistoryEntry]:
    return [HistoryEntry(role="user", content=t, at=T0 + timedelta(minutes=n)) for n, t in enumerate(texts)]


def test_the_worst_case_flow_item_stays_within_its_goal() -> None:
    for name, flow in worst_case_flows().items():
        assert flow_item_bytes(flow) <= FLOW_ITEM_GOAL_BYTES, name
        assert flow.history, name  # the newest messages are still there for the LLM


def test_a_state_stored_before_the_bound_is_trimmed_by_its_next_turn() -> None:
    flow = worst_case_flow()
    flow.history = entries([WIDE * MAX_BODY_CHARS] * HISTORY_STORED)  # as the older code kept it: 320 KB
    assert flow_item_bytes(flow) > 300_000

    after = run_turn(TurnInput(flow=flow, participant=PARTICIPANT, now=START + timedelta(hours=1), texts=["done"]))

    assert flow_item_bytes(after.flow) <= FLOW_ITEM_GOAL_BYTES
    assert [h.content for h in after.flow.history if h.role == "user"][-1] == "done"


@given(st.lists(st.text(max_size=MAX_BODY_CHARS // 4) | st.just(WIDE * MAX_BODY_CHARS), max_size=80))
def test_bounded_history_keeps_the_newest_within_both_bounds(texts: list[str]) -> None:
    kept = bounded_history(entries(texts))

    assert len(kept) <= HISTORY_STORED
    assert all(len(h.content.encode()) <= HISTORY_ENTRY_BYTES for h in kept)
    assert len(kept) == 1 or sum(len(h.content.encode()) for h in kept) <= HISTORY_BYTES
    if texts:
        assert kept, "the newest message is always kept"
        assert [h.at for h in kept] == [h.at for h in entries(texts)[-len(kept) :]], "a suffix, in order"
        assert all(texts[len(texts) - len(kept) + n].startswith(h.content) for n, h in enumerate(kept))


@given(st.text(), st.integers(min_value=0, max_value=64))
def test_clip_utf8_never_cuts_a_character(text: str, limit: int) -> None:
    clipped = clip_utf8(text, limit)

    assert text.startswith(clipped)
    assert len(clipped.encode()) <= limit or clipped == text
    assert len(clipped.encode()) > limit - 4 or clipped == text  # as much as fits


def test_item_size_counts_as_dynamodb_does() -> None:
    # Names and strings in UTF-8 bytes; a number by its significant digits; maps and lists 3 bytes and 1 per element.
    assert item_size({"a": {"S": "abc"}}) == 4
    assert item_size({"é": {"S": WIDE}}) == 6
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"l": {"L": [{"BOOL": True}, {"NULL": True}]}}) == 1 + 3 + 2 + 2
