"""Reading a text costs time in proportion to its length (issue 9): long texts cannot stall a turn.

No test here times anything itself (`make bench` measures the speed). Instead:
- reading, scoring and parsing look at a bounded prefix, so on a 16,000-character text they give what they
  give on that prefix;
- turns of up to ten texts as long as Twilio delivers, adversarial ones included, go through `run_turn` in
  every sub-state within hypothesis' deadline;
- each pattern that was quadratic (or cubic) gets the input that took seconds to minutes before the fix,
  at that size, within the same deadline; a regression fails by the deadline or by the suite's timeout.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coach.bots.engine import DEFAULT_SEGMENT_BUDGET, run_turn
from coach.bots.intake import is_no, is_vague, is_yes
from coach.bots.prompt_generator import canonical_domain
from coach.bots.turn import TurnEvent, TurnInput, TurnResult
from coach.domain.feedback import FeedbackKind, classify_feedback
from coach.domain.flow import FlowState, SubState
from coach.domain.intensity import read_answer
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.participant import Participant
from coach.domain.sms_text import READ_CHARS, count_segments, fit_to_budget, normalise, read_prefix, shape_sms
from coach.domain.times import anchor_from_answer, parse_anchor, parse_time, parse_time_beside_anchor
from coach.domain.tone import requested_tone_tags
from tests.unit.bots.conversation import Conversation, participant

LONG = 16_000
TEXTS_PER_TURN = 10
BOUNDED = settings(max_examples=40, deadline=2000)  # hypothesis' own bound per example, not a timing test

READERS: dict[str, Callable[[str], Any]] = {
    "classify_feedback": classify_feedback,
    "parse_time": parse_time,
    "parse_time_beside_anchor": parse_time_beside_anchor,
    "parse_anchor": parse_anchor,
    "anchor_from_answer": anchor_from_answer,
    "read_answer": read_answer,
    "requested_tone_tags": requested_tone_tags,
    "is_yes": is_yes,
    "is_no": is_no,
    "is_vague": is_vague,
    "canonical_domain": canonical_domain,
}

# What replies are made of, and runs that made the old patterns backtrack.
_VOCABULARY = (
    "yes no did done not didn't tried skipped but because after before right just my morning coffee lunch "
    "please instead every day thanks would be good at 7 7:30am 8-9pm evenings more less same no emojis walk "
    "idk hmm ? ! , . - to and 1 🎉 é мир 你好"
)
_WORDS = st.sampled_from(_VOCABULARY.split(" "))
_REPLY = st.lists(_WORDS, min_size=1, max_size=40).map(" ".join)
_RUNS = st.sampled_from(
    [
        " ",
        "  \t",
        "after ",
        "a,",
        "7",
        "7 ",
        "12 - ",
        "?",
        "!?",
        "please ",
        "done ",
        "yes done did it ",
        "'",
        "é",
        "🎉",
        "\U0001f44d\u200d",
        "мир ",
        "你好",
        "\u00a0",
        "word ",
        "a. ",
        "after lunch instead ",
    ]
)


@st.composite
def _texts(draw: st.DrawFn, size: int = MAX_BODY_CHARS) -> str:
    """A text of up to `size` characters: a reply, a repeated run, or a run then a reply (a letter after a run
    is what makes a backtracking pattern fail late)."""
    run = draw(_RUNS | st.text(min_size=1, max_size=12))
    length = draw(st.just(size) | st.integers(min_value=1, max_value=size))
    shape = draw(st.sampled_from(["reply", "run", "run then reply"]))
    if shape == "reply":
        return _one_line(draw(_REPLY), length)
    body = (run * (length // len(run) + 1))[:length]
    return body if shape == "run" else body[: max(1, length - 40)] + draw(_REPLY)


def _one_line(text: str, size: int) -> str:
    return ((text.replace("\n", " ") + " ") * (size // (len(text) + 1) + 1))[:size]


# --- the bounded prefix -------------------------------------------------------------------------------------


def test_the_prefix_keeps_short_texts_and_the_first_characters_of_each_line() -> None:
    assert read_prefix("did it!") == "did it!"
    assert read_prefix("x" * LONG) == "x" * READ_CHARS
    lines = read_prefix("\n".join(["a" * 2000, "done", "b" * 700]))
    assert lines.split("\n") == ["a" * READ_CHARS, "done", "b" * READ_CHARS]


@given(st.text(max_size=3 * READ_CHARS) | _texts())
def test_the_prefix_is_idempotent_and_never_longer_than_a_line_limit(text: str) -> None:
    prefix = read_prefix(text)
    assert read_prefix(prefix) == prefix
    assert prefix.count("\n") == text.count("\n")
    assert all(len(line) <= READ_CHARS for line in prefix.split("\n"))
    if len(text) <= READ_CHARS:
        assert prefix == text


@pytest.mark.parametrize("name", READERS)
@settings(max_examples=25, deadline=2000)
@given(reply=_REPLY, lines=st.integers(min_value=1, max_value=TEXTS_PER_TURN))
def test_a_long_text_reads_as_its_bounded_prefix(name: str, reply: str, lines: int) -> None:
    """Given a reply repeated to 16,000 characters (on one line, or on several as a coalesced turn),
    when a reader reads it, then it says what it says of the prefix it reads."""
    read = READERS[name]
    single = _one_line(reply, LONG)
    assert read(single) == read(single[:READ_CHARS])
    coalesced = "\n".join([_one_line(reply, LONG // lines)] * lines)
    assert read(coalesced) == read(read_prefix(coalesced))


def test_what_comes_after_the_prefix_is_not_read() -> None:
    filler = "x" * READ_CHARS
    assert classify_feedback(f"{filler} did it") is None
    assert parse_time(f"{filler} at 7pm") is None
    assert classify_feedback(f"did it {filler} not really") == classify_feedback("did it")
    assert parse_time(f"{filler}\nat 7pm") == "19:00"  # each text (line) of a turn is read on its own


# --- whole turns --------------------------------------------------------------------------------------------


_WHO: Participant = participant()


@cache
def _states() -> dict[str, FlowState]:
    """The flow in each sub-state and at each question a text can arrive in."""
    states: dict[str, FlowState] = {}
    chat = Conversation()
    states["before the greeting"] = chat.flow
    chat.event(TurnEvent.ENROLLED)
    states["consent"] = chat.flow
    for answer, question in [
        ("yes", "habit_domain"),
        ("physical activity", "motivation"),
        ("to feel more energetic", "preferred_time"),
        ("7:30am", "prompt_anchor"),
        ("after my morning coffee", "additional_info"),
    ]:
        chat.text(answer)
        states[f"intake: {question}"] = chat.flow
    states["intake: a vague answer twice already"] = states["intake: preferred_time"].model_copy(
        update={"intake_retries": 2}, deep=True
    )
    chat.text("no")
    assert chat.flow.sub_state is SubState.FEEDBACK
    states["feedback: try it now?"] = chat.flow
    chat.text("done")
    states["feedback"] = chat.flow
    states["feedback: awaiting the intensity answer"] = chat.flow.model_copy(
        update={"awaiting_intensity": True}, deep=True
    )
    return states


def _valid(result: TurnResult) -> None:
    assert TurnResult.model_validate(result.model_dump()) == result
    assert result.coach in ("offline", "none")
    for reply in result.replies:
        assert reply.strip()
        assert count_segments(reply).segments <= DEFAULT_SEGMENT_BUDGET


@settings(max_examples=60, deadline=2000)
@given(
    state=st.sampled_from(sorted(_states())),
    texts=st.lists(_texts(), min_size=1, max_size=TEXTS_PER_TURN),
    intensity_check=st.booleans(),
)
def test_turns_of_long_texts_complete_in_every_state(state: str, texts: list[str], intensity_check: bool) -> None:
    """Given a participant in any state, when up to ten texts of up to 1,600 characters arrive as one turn,
    then the turn completes (within the deadline) with a valid result."""
    flow = _states()[state]
    turn = TurnInput(
        flow=flow,
        participant=_WHO,
        now=flow.updated_at + timedelta(hours=1),
        texts=texts,
        intensity_check=intensity_check,
    )
    _valid(run_turn(turn))


@pytest.mark.parametrize("state", sorted(_states()))
def test_the_longest_adversarial_turn_completes_in_every_state(state: str) -> None:
    """Ten 1,600-character texts of each run that used to backtrack, in each state (a plain call: before the
    fix some of these took hours, so a regression fails by the suite's timeout)."""
    flow = _states()[state]
    for run in ["?", "7 ", " ", "yes done did it ", "after lunch instead ", "a,"]:
        body = (run * MAX_BODY_CHARS)[: MAX_BODY_CHARS - 1] + "x"
        turn = TurnInput(
            flow=flow, participant=_WHO, now=flow.updated_at + timedelta(hours=1), texts=[body] * TEXTS_PER_TURN
        )
        _valid(run_turn(turn))


# --- each pattern that was quadratic, at the size that took seconds --------------------------------------------


@BOUNDED
@given(marks=st.integers(min_value=LONG - 100, max_value=LONG), mark=st.sampled_from(["?", "?!", "??."]))
def test_question_marks_before_a_letter_are_not_tried_in_every_split(marks: int, mark: str) -> None:
    """intake._VAGUE had "\\W*", "\\?+" and "\\W*" side by side: cubic (1,600 characters took 11 s).
    Lines of a coalesced turn are each within the prefix, so all 16,000 characters are read."""
    line = (mark * READ_CHARS)[:READ_CHARS]
    text = "\n".join([line] * (marks // (READ_CHARS + 1)))[:-1] + "x"
    assert is_vague(text) is False
    assert is_vague(text[:-1]) is True
    assert is_vague("?" * READ_CHARS) is True


@BOUNDED
@given(spaces=st.integers(min_value=LONG - 100, max_value=LONG), hour=st.integers(min_value=1, max_value=12))
def test_a_number_before_a_long_run_of_spaces_is_not_split_in_every_way(spaces: int, hour: int) -> None:
    """times._RANGE had "\\s*(am)?\\s*": quadratic in the spaces after a number (16,000 took 5 s, 32,000 27 s)."""
    line = " " * READ_CHARS
    text = f"{hour}" + "\n".join([line] * (spaces // (READ_CHARS + 1))) + "x"
    assert parse_time(text) is None
    assert parse_time(f"{hour}  -  {hour + 1}pm") == f"{(hour % 12) + 12:02d}:00"


@BOUNDED
@given(repeats=st.integers(min_value=9000, max_value=9400), trailer=st.sampled_from(["please", "thanks", "every day"]))
def test_trailers_are_taken_off_an_anchor_from_its_end(repeats: int, trailer: str) -> None:
    """times._ANCHOR_TRAILERS was "(?:\\s+(?:...))+$", tried at every space of the anchor: quadratic (16,000
    characters took 1.3 s; this is the webhook's 64 KiB)."""
    endless = "after lunch " + f"{trailer} " * repeats + "x"
    assert parse_anchor(endless) == parse_anchor(endless[:READ_CHARS])
    assert parse_anchor(f"after lunch {trailer} {trailer}") == "after lunch"
    assert parse_anchor(f"right after my coffee {trailer} instead please") == "after my coffee"


@BOUNDED
@given(cue=st.sampled_from(["done", "yes done did it", "did not", "no"]), lines=st.integers(min_value=30, max_value=34))
def test_many_cues_in_one_long_clause_are_read_once_each(cue: str, lines: int) -> None:
    """feedback._clause_start walked back to the clause's start for every cue found: quadratic in a clause
    with many cues (16,000 characters of "done" took 8 s). A newline does not end a clause, so the lines of
    a coalesced turn make one clause of 16,000 characters."""
    line = _one_line(cue, READ_CHARS)
    text = "\n".join([line] * lines)
    found = classify_feedback(text)
    assert found is not None
    assert found.kind is (FeedbackKind.COMPLETED if cue.startswith(("done", "yes")) else FeedbackKind.SKIPPED)


@BOUNDED
@given(words=st.integers(min_value=LONG // 5 - 50, max_value=LONG // 5), budget=st.integers(1, 10))
def test_an_endless_sentence_is_cut_at_a_word_in_one_pass(words: int, budget: int) -> None:
    """sms_text._cut_at_words dropped one word at a time and counted the rest again: quadratic in the text
    (16,000 characters took 3.6 s). Shaping reads the whole text: it has no prefix."""
    shaped = shape_sms("word " * words, emojis_allowed=False, segment_budget=budget)
    assert shaped.endswith("word...")
    assert count_segments(shaped).segments <= budget
    assert len(shaped) > (budget * 153 if budget > 1 else 160) - 10


@BOUNDED
@given(sentences=st.integers(min_value=20_000, max_value=21_000), budget=st.sampled_from([80, 100]))
def test_many_short_sentences_are_counted_once_each(sentences: int, budget: int) -> None:
    """sms_text.fit_to_budget counted the whole run again for each sentence it added: quadratic in what fits
    (in 50 segments it took 1.5 s, in 100 about 6 s)."""
    shaped = fit_to_budget("a. " * sentences, budget)
    assert count_segments(shaped).segments <= budget
    assert shaped == ("a. " * (len(shaped) // 3 + 1)).strip()


# --- shaping stays exact for the whole text ---------------------------------------------------------------


def _shaped_plainly(text: str, budget: int) -> str:
    """fit_to_budget by its plain definition (what it was before it counted each character once)."""

    def fits(candidate: str) -> bool:
        return count_segments(candidate).segments <= budget

    if fits(text):
        return text
    kept = ""
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        candidate = f"{kept} {sentence}".strip() if kept else sentence
        if not fits(candidate):
            break
        kept = candidate
    if kept:
        return kept
    words = text.split(" ")
    while len(words) > 1:
        words.pop()
        candidate = " ".join(words).rstrip(",;:-") + "..."
        if fits(candidate):
            return candidate
    word = words[0]
    while word and not fits(word + "..."):
        word = word[: len(word) // 2]
    return word + "..." if word else ""


_SHAPED = st.lists(
    st.sampled_from(["a", "word", " ", "  ", ". ", "! ", "?", ",", "-", ";", "€", "ł", "\U0001f600", "\n", "é"]),
    max_size=600,
).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_SHAPED, budget=st.integers(min_value=0, max_value=10))
def test_fitting_to_the_budget_keeps_its_plain_definition(text: str, budget: int) -> None:
    assert fit_to_budget(text, budget) == _shaped_plainly(text, budget)


def test_a_long_reply_within_the_budget_is_kept_whole() -> None:
    reply = " ".join(f"Sentence {n} of a long reply." for n in range(50))[:1500]
    assert shape_sms(reply, emojis_allowed=False, segment_budget=10) == normalise(reply, emojis_allowed=False)
