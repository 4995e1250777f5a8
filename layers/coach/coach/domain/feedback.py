"""Reading a reply to a habit nudge: completed, attempted, skipped, rejected or modified.

Cues match whole words only ("done" is not in "abandoned"), and a cue with a negation just before it
in the same clause counts the other way: "didn't do it" is a skip, "haven't tried" is a skip, "don't
like" is a rejection.

A reply is read up to READ_CHARS characters a line (coach.domain.sms_text), and each cue is looked up where
its first word occurs, so reading costs time in proportion to the text, not to its square.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from coach.domain.sms_text import read_prefix
from coach.domain.times import parse_anchor, parse_time_beside_anchor


class FeedbackKind(StrEnum):
    COMPLETED = "completed"
    ATTEMPTED = "attempted"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    MODIFIED = "modified"


@dataclass(frozen=True)
class Classification:
    kind: FeedbackKind
    new_time: str | None = None  # "HH:MM" when a modification names a time
    new_anchor: str | None = None  # when a modification names a routine to follow
    reason: str | None = None  # the barrier (skipped/attempted/rejected) or the requested tweak (modified)


_NEGATORS = frozenset({"not", "no", "never", "cannot", "without", "nothing", "neither", "nor", "hardly"})
_CLAUSE_BREAKS = frozenset({"but", "though", "although", "however", "yet", "because", "so"})
_PUNCTUATION = frozenset(".,;!?")
_NEGATION_WINDOW = 3


def _phrases(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split("|"))


_COMPLETED = _phrases(
    "did it|done|did|do it|finished|completed|complete|managed|nailed it|success|yes|yep|yup|yeah|"
    "achieved|accomplished|check|went well|did that|did them"
)
_ATTEMPTED = _phrases(
    "tried|try|trying|attempted|started|began|partly|partially|half|some of it|a bit|a little|almost|"
    "kind of|sort of|kinda|sorta|stopped|gave up"
)
_SKIPPED = _phrases(
    "skipped|skip|missed|forgot|forget|busy|no time|too tired|tired|not today|nope|no|could not|did not|"
    "have not|not able|not yet|sick|ill"
)
_REJECTED = _phrases(
    "hate|dislike|pointless|useless|stupid|boring|annoying|waste of time|not for me|no thanks|"
    "no thank you|not interested|not helpful|silly"
)
_REJECT_WHEN_NEGATED = _phrases("like|want|enjoy|help|helps|helpful|work|works|care")
_CHANGE_CUES = _phrases(
    "instead|change|switch|move|moved|rather|prefer|can we|could we|can you|could you|how about|"
    "what about|different|earlier|later|reschedule|shift"
)
_TWEAK_CUES = _phrases("easier|harder|smaller|bigger|shorter|longer|simpler|tweak|adjust|modify")


@dataclass(frozen=True)
class _Words:
    """A reply's tokens, and where each token occurs (so a cue is only tried where its first word is)."""

    tokens: list[str]
    at: dict[str, list[int]]

    @classmethod
    def of(cls, text: str) -> _Words:
        tokens = _tokens(text)
        at: dict[str, list[int]] = {}
        for index, token in enumerate(tokens):
            at.setdefault(token, []).append(index)
        return cls(tokens, at)


def _tokens(text: str) -> list[str]:
    lowered = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    lowered = re.sub(r"\b(can)'?t\b", r"\1 not", lowered)
    lowered = re.sub(r"\bwon'?t\b", "will not", lowered)
    lowered = re.sub(r"n't\b", " not", lowered)
    lowered = re.sub(r"\b(did|does|do|have|has|had|was|is|are|were|could|would|should)nt\b", r"\1 not", lowered)
    # Punctuation ends a clause; keep it as a token so negation does not leak across it.
    return re.findall(r"[a-z0-9']+|[.,;!?]", lowered)


def _negated(tokens: list[str], index: int) -> bool:
    """A negator among the few tokens before `index`, in its clause. Looking back no further than the window
    keeps this constant per cue (walking back to the clause's start made reading quadratic)."""
    for token in reversed(tokens[max(0, index - _NEGATION_WINDOW) : index]):
        if token in _CLAUSE_BREAKS or token in _PUNCTUATION:
            return False
        if token in _NEGATORS:
            return True
    return False


def _matches(words: _Words, phrases: tuple[str, ...]) -> list[tuple[int, bool]]:
    """Each whole-word occurrence of a phrase: (position, negated?)."""
    tokens, found = words.tokens, []
    for phrase in phrases:
        cue = phrase.split()
        for i in words.at.get(cue[0], ()):
            if tokens[i : i + len(cue)] == cue:
                found.append((i, _negated(tokens, i)))
    return found


def _any(words: _Words, phrases: tuple[str, ...], *, negated: bool) -> bool:
    return any(is_negated == negated for _, is_negated in _matches(words, phrases))


def _reason(text: str) -> str | None:
    """The why of a reply, bounded: "forgot because work ran late" → "work ran late"."""
    found = re.search(r"\b(?:because|since|as|cos|cause|coz)\b\s+(.+)", text, re.IGNORECASE)
    reason = (found.group(1) if found else text).strip(" .!?")
    return reason[:200] or None


def classify_feedback(text: str) -> Classification | None:
    """The kind of a reply to a nudge, or None when it says nothing about the habit."""
    text = read_prefix(text)
    words = _Words.of(text)
    if not words.tokens:
        return None
    new_time = parse_time_beside_anchor(text)
    new_anchor = parse_anchor(text)
    wants_change = _any(words, _CHANGE_CUES, negated=False) or "?" in words.at
    if wants_change and (new_time or new_anchor):
        return Classification(FeedbackKind.MODIFIED, new_time=new_time, new_anchor=new_anchor, reason=text[:200])
    if _any(words, _TWEAK_CUES, negated=False) and (wants_change or _any(words, ("make it",), negated=False)):
        return Classification(FeedbackKind.MODIFIED, reason=text[:200])
    if _any(words, _REJECTED, negated=False) or _any(words, _REJECT_WHEN_NEGATED, negated=True):
        return Classification(FeedbackKind.REJECTED, reason=_reason(text))
    tried = _matches(words, _ATTEMPTED)
    if any(not negated for _, negated in tried):
        return Classification(FeedbackKind.ATTEMPTED, reason=_reason(text))
    if tried or _any(words, _COMPLETED, negated=True):
        return Classification(FeedbackKind.SKIPPED, reason=_reason(text))
    if _any(words, _COMPLETED, negated=False) and not _any(words, _SKIPPED, negated=False):
        return Classification(FeedbackKind.COMPLETED)
    if _any(words, _SKIPPED, negated=False):
        return Classification(FeedbackKind.SKIPPED, reason=_reason(text))
    if _any(words, _COMPLETED, negated=False):
        return Classification(FeedbackKind.COMPLETED)
    return None
