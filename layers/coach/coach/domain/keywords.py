"""Carrier keywords: texts that opt a number out of (or back into) messages, or ask for help.

A text is a keyword only when the whole message is one, ignoring case, surrounding whitespace,
punctuation and symbols: "Stop." and "stop!" are STOP; "weekend" is not END; "please stop" is an
ordinary text.
"""

from __future__ import annotations

import unicodedata
from enum import StrEnum


class KeywordKind(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


_KEYWORDS = {
    **dict.fromkeys(("stop", "stopall", "unsubscribe", "cancel", "end", "quit"), KeywordKind.OPT_OUT),
    **dict.fromkeys(("start", "unstop", "yes"), KeywordKind.OPT_IN),
    **dict.fromkeys(("help", "info"), KeywordKind.HELP),
}

# Punctuation (P*), symbols such as emoji (S*) and invisible format characters (Cf, e.g. zero-width space).
_IGNORED_CATEGORIES = ("P", "S", "Cf")


def normalised_keyword(body: str) -> str | None:
    """The keyword `body` spells (lower case), or None when it is not a single known keyword."""
    # NFKC first, so look-alike forms (full-width letters) read as the plain letters.
    text = unicodedata.normalize("NFKC", body)
    kept = "".join(c for c in text if not unicodedata.category(c).startswith(_IGNORED_CATEGORIES))
    word = kept.strip().casefold()
    return word if word in _KEYWORDS else None


def carrier_keyword(body: str) -> KeywordKind | None:
    """What a whole text asks for, if it is a carrier keyword (see the module docstring)."""
    word = normalised_keyword(body)
    return None if word is None else _KEYWORDS[word]
