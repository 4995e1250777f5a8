"""Reading times and anchors out of what people text."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.domain.times import anchor_from_answer, parse_anchor, parse_time, parse_time_beside_anchor, time_for_people

FAST = settings(max_examples=150, deadline=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7:30am", "07:30"),
        ("7:30 PM", "19:30"),
        ("7.30pm", "19:30"),
        ("19:00", "19:00"),
        ("0:05", "00:05"),
        ("evenings", "19:00"),
        ("in the morning please", "08:00"),
        ("8-9am", "08:00"),
        ("8am - 9am", "08:00"),
        ("between 8 and 9am", "08:00"),
        ("12pm", "12:00"),
        ("12am", "00:00"),
        ("noon", "12:00"),
        ("at 7", "07:00"),
        ("around 3", "15:00"),
        ("I am not sure", None),
        ("13pm", None),
        ("whenever", None),
        ("", None),
    ],
)
def test_parse_time_examples(text: str, expected: str | None) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("after my coffee", "after my coffee"),
        ("Right after I brush my teeth, please", "after I brush my teeth"),
        ("mornings, before breakfast instead", "before breakfast"),
        ("when I get home from work", "when I get home from work"),
        ("7am", None),
        ("after", None),
    ],
)
def test_parse_anchor_examples(text: str, expected: str | None) -> None:
    assert parse_anchor(text) == expected


def test_a_plain_routine_answer_becomes_an_after_anchor() -> None:
    assert anchor_from_answer("My morning coffee") == "after my morning coffee"
    assert anchor_from_answer("coffee") is None


def test_the_time_of_an_anchor_clause_is_not_the_nudge_time() -> None:
    assert parse_time_beside_anchor("after lunch") is None
    assert parse_time_beside_anchor("evenings, after dinner") == "19:00"


def test_times_read_as_people_write_them() -> None:
    assert [time_for_people(t) for t in ("07:30", "19:00", "00:00", "12:05")] == ["7:30am", "7pm", "12am", "12:05pm"]


@FAST
@given(st.integers(1, 12), st.integers(0, 59), st.sampled_from(["am", "pm", "AM", " pm", "p.m."]), st.text(max_size=8))
def test_twelve_hour_clock_times_are_read_exactly(hour: int, minute: int, meridiem: str, noise: str) -> None:
    expected_hour = hour % 12 + (12 if "p" in meridiem.lower() else 0)
    text = f"at {hour}:{minute:02d}{meridiem}"
    assert parse_time(text) == f"{expected_hour:02d}:{minute:02d}"


@FAST
@given(st.integers(0, 23), st.integers(0, 59))
def test_twenty_four_hour_times_are_read_exactly(hour: int, minute: int) -> None:
    assert parse_time(f"{hour:02d}:{minute:02d}") == f"{hour:02d}:{minute:02d}"


@FAST
@given(st.text(max_size=80))
def test_any_text_gives_a_valid_time_or_none(text: str) -> None:
    parsed = parse_time(text)
    assert parsed is None or re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", parsed)
    if parsed is not None:
        assert parse_time(time_for_people(parsed)) == parsed  # what we show reads back the same
