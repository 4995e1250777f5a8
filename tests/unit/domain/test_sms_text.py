"""SMS shaping: GSM-7 where meaning allows, emojis only when welcome, never over the segment budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coach.domain.sms_text import Encoding, count_segments, is_emoji, is_gsm7, normalise, shape_sms

FAST = settings(max_examples=200, deadline=None)


def test_gsm7_segments_are_160_then_153() -> None:
    assert count_segments("a" * 160) == count_segments("a" * 160)
    assert count_segments("a" * 160).segments == 1
    assert count_segments("a" * 161).segments == 2
    assert count_segments("a" * 306).segments == 2
    assert count_segments("a" * 307).segments == 3
    assert count_segments("").segments == 1


def test_extension_characters_cost_two_septets_and_are_not_split() -> None:
    assert count_segments("€" * 80).units == 160
    assert count_segments("€" * 80).segments == 1
    # 152 septets, then an escape pair that would straddle the boundary: it moves to segment two
    counted = count_segments("a" * 152 + "€" + "a" * 150)
    assert (counted.encoding, counted.segments) == (Encoding.GSM7, 2)
    assert count_segments("a" * 152 + "€" + "a" * 153).segments == 3


def test_one_non_gsm_character_makes_it_ucs2() -> None:
    assert count_segments("a" * 69 + "ł").encoding is Encoding.UCS2
    assert count_segments("a" * 70).segments == 1
    assert count_segments("ł" * 70).segments == 1
    assert count_segments("ł" * 71).segments == 2
    assert count_segments("ł" * 134).segments == 2
    assert count_segments("ł" * 135).segments == 3


def test_emoji_outside_the_basic_plane_counts_as_two_units() -> None:
    assert count_segments("\U0001f600" * 35).units == 70
    assert count_segments("\U0001f600" * 35).segments == 1
    assert count_segments("\U0001f600" * 36).segments == 2


def test_typography_becomes_gsm7() -> None:
    text = "\u201cIt\u2019s done\u201d \u2014 nice\u2026\u00a0see you\u2009tomorrow \u2022 caf\u00e1"
    shaped = normalise(text, emojis_allowed=False)
    assert shaped == '"It\'s done" - nice... see you tomorrow - cafa'
    assert is_gsm7(shaped)


def test_gsm_letters_stay_as_they_are() -> None:
    assert normalise("Café über niño", emojis_allowed=False) == "Café über niño"


def test_emojis_go_unless_the_tone_allows_them() -> None:
    assert normalise("Nice work! \U0001f389\u2705 See you", emojis_allowed=False) == "Nice work! See you"
    assert normalise("Nice work! \U0001f389", emojis_allowed=True) == "Nice work! \U0001f389"


def test_a_long_reply_is_cut_at_a_sentence_boundary() -> None:
    sentences = [f"This is sentence number {i} of a long reply." for i in range(12)]
    shaped = shape_sms(" ".join(sentences), emojis_allowed=False, segment_budget=2)
    assert count_segments(shaped).segments <= 2
    assert shaped.endswith(".")
    assert shaped == " ".join(sentences[: len(shaped.split(". "))])


def test_one_endless_sentence_is_cut_at_a_word() -> None:
    shaped = shape_sms("word " * 200, emojis_allowed=False, segment_budget=1)
    assert count_segments(shaped).segments == 1
    assert shaped.endswith("word...")


_SMS_ALPHABET = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("€[]{}|^~\u2019\u201c\u2014\u2026 .!?\U0001f389\U0001f44d\u2764\ufe0f")),
)


@FAST
@given(st.text(_SMS_ALPHABET, max_size=700), st.integers(1, 4), st.booleans())
def test_shaped_text_never_exceeds_the_budget_nor_has_forbidden_emojis(text: str, budget: int, emojis: bool) -> None:
    shaped = shape_sms(text, emojis_allowed=emojis, segment_budget=budget)
    assert count_segments(shaped).segments <= budget
    if not emojis:
        assert not any(is_emoji(c) for c in shaped)


@FAST
@given(st.text(st.sampled_from(list("abc XYZ,.!?'\"-\u2019\u201c\u201d\u2013\u2014\u2026")), max_size=400))
def test_typographic_english_always_becomes_gsm7(text: str) -> None:
    assert is_gsm7(normalise(text, emojis_allowed=False))
