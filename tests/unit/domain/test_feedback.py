"""The whole-word, negation-aware reading of replies to a nudge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.domain.feedback import FeedbackKind, classify_feedback

FAST = settings(max_examples=150, deadline=None)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("did it!", FeedbackKind.COMPLETED),
        ("Done", FeedbackKind.COMPLETED),
        ("yes, finished it this morning", FeedbackKind.COMPLETED),
        ("didn't do it", FeedbackKind.SKIPPED),
        ("I did not do it today", FeedbackKind.SKIPPED),
        ("not done yet", FeedbackKind.SKIPPED),
        ("forgot, too busy", FeedbackKind.SKIPPED),
        ("I haven't tried", FeedbackKind.SKIPPED),
        ("tried but stopped", FeedbackKind.ATTEMPTED),
        ("did half of it", FeedbackKind.ATTEMPTED),
        ("I don't like this", FeedbackKind.REJECTED),
        ("this is pointless", FeedbackKind.REJECTED),
        ("it doesn't help me", FeedbackKind.REJECTED),
        ("can we do evenings instead?", FeedbackKind.MODIFIED),
        ("could we move it to 8am", FeedbackKind.MODIFIED),
        ("can we make it easier?", FeedbackKind.MODIFIED),
    ],
)
def test_examples(text: str, kind: FeedbackKind) -> None:
    found = classify_feedback(text)
    assert found is not None
    assert found.kind is kind


def test_cues_match_whole_words_only() -> None:
    # "done" inside "abandoned", "no" inside "nothing new", "try" inside "pastry"
    assert classify_feedback("abandoned pastry") is None
    assert classify_feedback("hello there") is None


def test_a_modification_carries_the_new_time_and_anchor() -> None:
    found = classify_feedback("Can we switch to 7pm, after dinner instead?")
    assert found is not None
    assert (found.kind, found.new_time, found.new_anchor) == (FeedbackKind.MODIFIED, "19:00", "after dinner")


def test_the_reason_is_what_follows_because() -> None:
    found = classify_feedback("skipped because I was sick")
    assert found is not None
    assert found.reason == "I was sick"


_COMPLETIONS = st.sampled_from(["did it", "done", "finished it", "completed it", "managed it"])
_NEGATIONS = st.sampled_from(["didn't", "did not", "haven't", "never", "not", "couldn't"])


@FAST
@given(st.text(max_size=120))
def test_any_text_is_classified_or_left_alone_without_crashing(text: str) -> None:
    found = classify_feedback(text)
    assert found is None or found.kind in FeedbackKind


@FAST
@given(_COMPLETIONS, st.sampled_from(["", "!", " :)", " today", "!!"]), st.booleans())
def test_a_plain_completion_is_completed_whatever_its_case(phrase: str, tail: str, shout: bool) -> None:
    text = f"{phrase}{tail}"
    found = classify_feedback(text.upper() if shout else text)
    assert found is not None
    assert found.kind is FeedbackKind.COMPLETED


@FAST
@given(_NEGATIONS, _COMPLETIONS)
def test_a_negated_completion_is_never_completed(negation: str, phrase: str) -> None:
    found = classify_feedback(f"I {negation} {phrase.replace('did it', 'do it')}")
    assert found is not None
    assert found.kind is not FeedbackKind.COMPLETED
