"""Reading a reply to a habit nudge: completed, attempted, skipped, rejected or modified.

Cues match whole words only ("done" is not in "abandoned"), and a cue with a negation just before it
in the same clause counts the other way: "didn't do it" is a skip, "haven't tried" is a skip, "don't
like" is a rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

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


def _tokens(text: str) -> list[str]:
    lowered = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    lowered = re.sub(r"\b(can)'?t\b", r"\1 not", lowered)
    lowered = re.sub(r"\bwon'?t\b", "will not", lowered)
    lowered = re.sub(r"n't\b", " not", lowered)
    lowered = re.sub(r"\b(did|does|do|have|has|had|was|is|are|were|could|would|should)nt\b", r"\1 not", lowered)
    # Punctuation ends a clause; keep it as a token so negation does not leak across it.
    return re.findall(r"[a-z0-9']+|[.,;!?]", lowered)


def _clause_start(tokens: list[str], index: int) -> int:
    start = index
    while start > 0 and tokens[start - 1] not in _CLAUSE_BREAKS and not re.fullmatch(r"[.,;!?]", tokens[start - 1]):
        start -= 1
    return start


def _matches(tokens: list[str], phrases: tuple[str, ...]) -> list[tuple[int, bool]]:
    """Each whole-word occurrence of a phrase: (position, negated?)."""
    found = []
    for phrase in phrases:
        words = phrase.split()
        for i in range(len(tokens) - len(words) + 1):
            if tokens[i : i + len(words)] == words:
                window = tokens[max(_clause_start(tokens, i), i - _NEGATION_WINDOW) : i]
                found.append((i, any(w in _NEGATORS for w in window)))
    return found


def _any(tokens: list[str], phrases: tuple[str, ...], *, negated: bool) -> bool:
    return any(is_negated == negated for _, is_negated in _matches(tokens, phrases))


def _reason(text: str) -> str | None:
    """The why of a reply, bounded: "forgot because work ran late" → "work ran late"."""
    found = re.search(r"\b(?:because|since|as|cos|cause|coz)\b\s+(.+)", text, re.IGNORECASE)
    reason = (found.group(1) if found else text).strip(" .!?")
    return reason[:200] or None


def classify_feedback(text: str) -> Classification | None:
    """The kind of a reply to a nudge, or None when it says nothing about the habit."""
    tokens = _tokens(text)
    if not tokens:
        return None
    new_time = parse_time_beside_anchor(text)
    new_anchor = parse_anchor(text)
    wants_change = _any(tokens, _CHANGE_CUES, negated=False) or "?" in tokens
    if wants_change and (new_time or new_anchor):
        return Classification(FeedbackKind.MODIFIED, new_time=new_time, new_anchor=new_anchor, reason=text[:200])
    if _any(tokens, _TWEAK_CUES, negated=False) and (wants_change or _any(tokens, ("make it",), negated=False)):
        return Classification(FeedbackKind.MODIFIED, reason=text[:200])
    if _any(tokens, _REJECTED, negated=False) or _any(tokens, _REJECT_WHEN_NEGATED, negated=True):
        return Classification(FeedbackKind.REJECTED, reason=_reason(text))
    tried = _matches(tokens, _ATTEMPTED)
    if any(not negated for _, negated in tried):
        return Classification(FeedbackKind.ATTEMPTED, reason=_reason(text))
    if tried or _any(tokens, _COMPLETED, negated=True):
        return Classification(FeedbackKind.SKIPPED, reason=_reason(text))
    if _any(tokens, _COMPLETED, negated=False) and not _any(tokens, _SKIPPED, negated=False):
        return Classification(FeedbackKind.COMPLETED)
    if _any(tokens, _SKIPPED, negated=False):
        return Classification(FeedbackKind.SKIPPED, reason=_reason(text))
    if _any(tokens, _COMPLETED, negated=False):
        return Classification(FeedbackKind.COMPLETED)
    return None
