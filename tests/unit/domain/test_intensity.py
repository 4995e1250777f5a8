"""The intensity check's answers and what they do to a prompt's size."""

from __future__ import annotations

import pytest

from coach.domain.intensity import adjusted, read_answer, sized


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("a bit more", 1),
        ("More please!", 1),
        ("make it harder", 1),
        ("less", -1),
        ("a bit less, it was a lot", -1),
        ("smaller please", -1),
        ("the same", 0),
        ("keep it as is", 0),
        ("did it again", None),
        ("more or less the same", None),
    ],
)
def test_answers_are_read_as_more_same_or_less(text: str, answer: int | None) -> None:
    assert read_answer(text) == answer


def test_intensity_stays_within_one_step_of_the_design() -> None:
    assert adjusted(1, 1) == 1
    assert adjusted(-1, -1) == -1
    assert adjusted(0, 1) == 1
    assert adjusted(1, -1) == 0


def test_size_changes_the_action_but_not_the_one_minute_design() -> None:
    assert sized("5 slow, deep breaths", 0) == "5 slow, deep breaths"
    assert "30 seconds" in sized("5 slow, deep breaths", -1)
    assert "second round" in sized("5 slow, deep breaths", 1)
