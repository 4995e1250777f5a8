"""How the coach should sound to one person: a whitelist of tone tags, learnt from what they say and do.

Explicit requests ("no emojis please") apply at once. Implicit signals (short replies, emojis of their
own) move an exponential average per tag; a tag turns on at ≥ 0.7 and off at ≤ 0.4, so one odd
message does not flip it back and forth, and at most one implicit update counts per 3 minutes, so a
burst of quick texts is one signal, not five.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from coach.domain.sms_text import read_prefix

TONE_TAGS: tuple[str, ...] = (
    "concise",
    "detailed",
    "formal",
    "casual",
    "no_emojis",
    "emojis_ok",
    "bullet_points",
    "one_question_at_a_time",
    "warm_supportive",
    "neutral_professional",
    "direct_coach",
    "gentle_coach",
    "confirm_before_acting",
    "default_actionable",
    "high_autonomy",
)
PAIRED_TAGS: tuple[tuple[str, str], ...] = (
    ("concise", "detailed"),
    ("formal", "casual"),
    ("no_emojis", "emojis_ok"),
    ("warm_supportive", "neutral_professional"),
    ("direct_coach", "gentle_coach"),
)
ALPHA = 0.15
ON_AT = 0.7
OFF_AT = 0.4
IMPLICIT_INTERVAL = timedelta(minutes=3)


def _partner(tag: str) -> str | None:
    for first, second in PAIRED_TAGS:
        if tag == first:
            return second
        if tag == second:
            return first
    return None


class Tone(BaseModel):
    """The active tags, the running score of each tag seen so far, and when implicit signals last counted."""

    model_config = ConfigDict(extra="ignore")

    active: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    last_implicit_update_at: datetime | None = None

    @property
    def emojis_allowed(self) -> bool:
        return "emojis_ok" in self.active and "no_emojis" not in self.active

    def has(self, tag: str) -> bool:
        return tag in self.active

    def with_explicit(self, tags: Iterable[str]) -> Tone:
        """Apply what the person asked for, at once. Unknown tags are ignored; `no_emojis` beats `emojis_ok`."""
        requested = [t for t in dict.fromkeys(tags) if t in TONE_TAGS]
        if "no_emojis" in requested and "emojis_ok" in requested:
            requested.remove("emojis_ok")
        active, scores = set(self.active), dict(self.scores)
        for tag in requested:
            active.add(tag)
            scores[tag] = 1.0
            if (partner := _partner(tag)) is not None:
                active.discard(partner)
                scores[partner] = 0.0
        return self.model_copy(update={"active": _ordered(active), "scores": scores})

    def with_implicit(self, signals: Mapping[str, float], now: datetime) -> Tone:
        """Move each tag's average toward what the person's behaviour suggests (0..1 per tag).

        Nothing changes within 3 minutes of the last implicit update.
        """
        known = {t: min(max(float(v), 0.0), 1.0) for t, v in signals.items() if t in TONE_TAGS}
        if not known:
            return self
        last = self.last_implicit_update_at
        if last is not None and now - last < IMPLICIT_INTERVAL:
            return self
        active, scores = set(self.active), dict(self.scores)
        for tag, observed in known.items():
            score = (1 - ALPHA) * scores.get(tag, 0.0) + ALPHA * observed
            scores[tag] = round(score, 6)
            if score >= ON_AT:
                active.add(tag)
            elif score <= OFF_AT:
                active.discard(tag)
        for first, second in PAIRED_TAGS:
            if first in active and second in active:
                # Both crossed the threshold: the stronger one stays; on a tie the first of the pair
                # (no_emojis over emojis_ok) wins.
                active.discard(second if scores.get(first, 0.0) >= scores.get(second, 0.0) else first)
        return self.model_copy(update={"active": _ordered(active), "scores": scores, "last_implicit_update_at": now})


def _ordered(tags: set[str]) -> list[str]:
    return [t for t in TONE_TAGS if t in tags]


_EXPLICIT_REQUESTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("no_emojis", ("no emojis", "no emoji", "without emojis", "stop using emojis", "less emojis")),
    ("emojis_ok", ("use emojis", "emojis are fine", "emojis ok", "love emojis", "more emojis")),
    ("concise", ("shorter", "be brief", "keep it short", "too long", "less text", "short messages")),
    ("detailed", ("more detail", "explain more", "longer messages", "tell me more")),
    ("formal", ("be formal", "more formal", "more professional")),
    ("casual", ("be casual", "more casual", "less formal", "chill")),
    ("gentle_coach", ("be gentle", "gentler", "too pushy", "less pushy")),
    ("direct_coach", ("be direct", "push me", "be strict", "tough love")),
    ("one_question_at_a_time", ("one question at a time", "too many questions")),
    ("bullet_points", ("bullet points", "use bullets", "as a list")),
)


def requested_tone_tags(text: str) -> list[str]:
    """Tags a text asks for in so many words ("no emojis please" → ["no_emojis"])."""
    lowered = " ".join(read_prefix(text).lower().split())
    return [tag for tag, phrases in _EXPLICIT_REQUESTS if any(p in lowered for p in phrases)]


def without_tone_requests(text: str) -> str:
    """The text less its tone requests, so "no emojis please" is not read as a "no"."""
    lowered = " ".join(text.lower().split())
    for _, phrases in _EXPLICIT_REQUESTS:
        for phrase in phrases:
            lowered = lowered.replace(phrase, " ")
    return re.sub(r"^\W*(?:please|pls|thanks?)\W*$", "", lowered).strip()


def implicit_tone_signals(text: str, *, has_emoji: bool) -> dict[str, float]:
    """What a message suggests without saying it: short replies ask for short answers, emojis invite emojis."""
    words = len(text.split())
    return {
        "concise": 1.0 if words <= 6 else 0.0,
        "emojis_ok": 1.0 if has_emoji else 0.0,
    }
