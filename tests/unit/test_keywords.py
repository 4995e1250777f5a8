"""Carrier keywords: the whole message, any case, punctuation and surrounding whitespace ignored."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coach.domain.keywords import KeywordKind, carrier_keyword

OPT_OUT = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"]
OPT_IN = ["START", "UNSTOP", "YES"]
HELP = ["HELP", "INFO"]


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        *[(word, KeywordKind.OPT_OUT) for word in OPT_OUT],
        *[(word, KeywordKind.OPT_IN) for word in OPT_IN],
        *[(word, KeywordKind.HELP) for word in HELP],
        ("stop!", KeywordKind.OPT_OUT),
        ("Stop.", KeywordKind.OPT_OUT),
        ("  sToP \n", KeywordKind.OPT_OUT),
        ('"STOP"', KeywordKind.OPT_OUT),
        ("¿Stop?", KeywordKind.OPT_OUT),
        ("stop 🛑", KeywordKind.OPT_OUT),
        ("\u200bstop", KeywordKind.OPT_OUT),  # zero-width space pasted in front
        ("\uff33\uff34\uff2f\uff30", KeywordKind.OPT_OUT),  # full-width letters
        ("\u00a0end\u00a0", KeywordKind.OPT_OUT),  # no-break spaces around
        ("Yes!", KeywordKind.OPT_IN),
        ("help?", KeywordKind.HELP),
    ],
)
def test_a_whole_message_keyword_is_recognised(body: str, kind: KeywordKind) -> None:
    # Given a text that is only a keyword, decorated
    # When it is read
    found = carrier_keyword(body)
    # Then it is that keyword
    assert found is kind


@pytest.mark.parametrize(
    "body",
    [
        "weekend",
        "please stop",
        "stop it",
        "don't stop",
        "st op",
        "stopp",
        "the end",
        "yes please",
        "helpful",
        "information",
        "",
        "   ",
        "!!!",
        "start tomorrow",
    ],
)
def test_ordinary_text_is_not_a_keyword(body: str) -> None:
    assert carrier_keyword(body) is None


decoration = st.text(alphabet=st.sampled_from(" \t\n.,!?;:'\"()-…🙂"), max_size=5)


@given(
    word=st.sampled_from(OPT_OUT + OPT_IN + HELP),
    before=decoration,
    after=decoration,
    case=st.lists(st.booleans(), min_size=11, max_size=11),
)
def test_property_decoration_and_case_never_hide_a_keyword(
    word: str, before: str, after: str, case: list[bool]
) -> None:
    styled = "".join(c.upper() if up else c.lower() for c, up in zip(word, case, strict=False))
    assert carrier_keyword(before + styled + after) is not None


@given(
    word=st.sampled_from(OPT_OUT + OPT_IN + HELP),
    other=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    glue=st.sampled_from([" ", ", ", " - ", "\n"]),
    first=st.booleans(),
)
def test_property_a_keyword_beside_another_word_is_ordinary_text(word: str, other: str, glue: str, first: bool) -> None:
    # Given a keyword and any other word in one text
    body = word + glue + other if first else other + glue + word
    # When it is read
    found = carrier_keyword(body)
    # Then it is ordinary text
    assert found is None


@given(prefix=st.text(alphabet=st.characters(categories=["L"]), min_size=1, max_size=6))
def test_property_a_keyword_inside_a_longer_word_is_ordinary_text(prefix: str) -> None:
    # "weekend" ends with END, "helpful" starts with HELP: neither is a keyword
    for word in ("end", "stop", "yes", "help"):
        body = prefix + word
        if unicodedata.normalize("NFKC", body).casefold() not in {w.casefold() for w in OPT_OUT + OPT_IN + HELP}:
            assert carrier_keyword(body) is None, body
