"""How the coach should sound to one person: a whitelist of tone tags, learnt from what they say and do.

Explicit requests ("no emojis please") apply at once. Implicit signals (short replies, emojis of their
own) move an exponential average per tag; a tag turns on at ≥ 0.7 and off at ≤ 0.4, so one odd
message does not flip it back and forth, and at most one implicit update counts per 3 minutes, so a
burst of quick texts is one signal, not five.

An update that counts also moves every tag it did not observe toward 0, as if it had observed 0, so a
tag nobody shows any more fades and turns off instead of staying on forever. Tags the person asked for
in words are kept in `requested` and do not fade: most tags have no implicit signal at all, so fading
would undo every request after a few messages. A request holds until the person asks for its partner;
what their messages show still moves a requested tag (as it did before), and a requested tag that their
behaviour turns off is no longer requested.

Paired tags exclude each other. When one of a pair turns on, its partner goes off: to 0 when the person
asked for the other one, to at most `DEMOTED_SCORE` when behaviour chose, so the loser needs fresh
evidence to come back instead of sitting just under the threshold. When both would be on, the one asked
for wins, else the stronger, else the first of the pair.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
# The two tags of a pair exclude each other; on a tie the first wins, which is how `no_emojis` beats `emojis_ok`.
PAIRED_TAGS: tuple[tuple[str, str], ...] = (
    ("concise", "detailed"),
    ("formal", "casual"),
    ("no_emojis", "emojis_ok"),
    ("warm_supportive", "neutral_professional"),
    ("direct_coach", "gentle_coach"),
)
# Weight of one implicit observation (and of one step of fading): small, so one message is a hint.
ALPHA = 0.15
# An off tag turns on at this score, from 0 after 8 steady observations.
ON_AT = 0.7
# An on tag turns off at this score; the gap to ON_AT keeps a tag from flickering.
OFF_AT = 0.4
# The loser of a pair drops to at most this when behaviour turns its partner on: clearly off, and
# 6 steady observations from being on again (1 - (1 - 0.3) * 0.85**6 ≥ 0.7).
DEMOTED_SCORE = 0.3
# A burst of texts within this window is one implicit signal, not several.
IMPLICIT_INTERVAL = timedelta(minutes=3)


def _partner(tag: str) -> str | None:
    for first, second in PAIRED_TAGS:
        if tag == first:
            return second
        if tag == second:
            return first
    return None


class Tone(BaseModel):
    """The active tags, the ones asked for in words, the running score of each tag seen so far, and when
    implicit signals last counted."""

    model_config = ConfigDict(extra="ignore")

    active: list[str] = Field(default_factory=list)
    requested: list[str] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    last_implicit_update_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _requests_stored_before_they_were_named(cls, data: object) -> object:
        """Tone stored without `requested` marked a request only by its score: a request sets 1.0, which
        implicit signals never reach (rounded to 6 places they stall at 0.999997). Those tags stay requested."""
        if isinstance(data, dict) and "requested" not in data:
            scores = data.get("scores") or {}
            data = {**data, "requested": [t for t in data.get("active") or () if scores.get(t) == 1.0]}
        return data

    @property
    def emojis_allowed(self) -> bool:
        return "emojis_ok" in self.active and "no_emojis" not in self.active

    def has(self, tag: str) -> bool:
        return tag in self.active

    def with_explicit(self, tags: Iterable[str]) -> Tone:
        """Apply what the person asked for, at once. Unknown tags are ignored; `no_emojis` beats `emojis_ok`."""
        asked = [t for t in dict.fromkeys(tags) if t in TONE_TAGS]
        if "no_emojis" in asked and "emojis_ok" in asked:
            asked.remove("emojis_ok")
        active, requested, scores = set(self.active), set(self.requested), dict(self.scores)
        for tag in asked:
            active.add(tag)
            requested.add(tag)
            scores[tag] = 1.0
            if (partner := _partner(tag)) is not None:
                active.discard(partner)
                requested.discard(partner)
                scores[partner] = 0.0
        return self.model_copy(update={"active": _ordered(active), "requested": _ordered(requested), "scores": scores})

    def with_implicit(self, signals: Mapping[str, float], now: datetime) -> Tone:
        """Move each tag's average toward what the person's behaviour suggests (0..1 per tag), and every
        other tag not asked for toward 0.

        Nothing changes within 3 minutes of the last implicit update.
        """
        known = {t: min(max(float(v), 0.0), 1.0) for t, v in signals.items() if t in TONE_TAGS}
        if not known:
            return self
        last = self.last_implicit_update_at
        if last is not None and now - last < IMPLICIT_INTERVAL:
            return self
        faded = {t: 0.0 for t in self.scores if t not in known and t not in self.requested}
        active, scores = set(self.active), dict(self.scores)
        for tag, observed in (known | faded).items():
            score = (1 - ALPHA) * scores.get(tag, 0.0) + ALPHA * observed
            scores[tag] = round(score, 6)
            if score >= ON_AT:
                active.add(tag)
            elif score <= OFF_AT:
                active.discard(tag)
        for first, second in PAIRED_TAGS:
            on = [t for t in (first, second) if t in active]
            if not on:
                continue
            winner = on[0] if len(on) == 1 else _pair_winner(first, second, scores, self.requested)
            # Demote only when the pair changes hands or clashes, so a partner may still build up evidence
            # while the other tag stays on.
            if len(on) == 2 or winner not in self.active:
                loser = second if winner == first else first
                active.discard(loser)
                scores[loser] = min(scores.get(loser, 0.0), DEMOTED_SCORE)
        return self.model_copy(
            update={
                "active": _ordered(active),
                "requested": [t for t in self.requested if t in active],
                "scores": scores,
                "last_implicit_update_at": now,
            }
        )


def _pair_winner(first: str, second: str, scores: Mapping[str, float], requested: list[str]) -> str:
    """Of a pair both on: the one asked for, else the stronger, else the first (no_emojis over emojis_ok)."""
    rank_first = (first in requested, scores.get(first, 0.0))
    rank_second = (second in requested, scores.get(second, 0.0))
    return first if rank_first >= rank_second else second


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
