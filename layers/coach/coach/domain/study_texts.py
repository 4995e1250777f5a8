"""Texts the study sends whatever the coach says, with their defaults and the check each configured one
passes at start-up (a deploy with a text that would be cut short or cost more than its segments fails with
what to fix, instead of a participant in crisis getting half a sentence)."""

from __future__ import annotations

from coach.domain.sms_text import Encoding, count_segments, normalise

# Sent, unchanged, to a text that screens as a safety concern (coach.domain.safety), in place of any coaching.
DEFAULT_CRISIS_TEXT = (
    "I'm concerned about what you wrote. If you might hurt yourself or are in danger, please call or text 988 "
    "(Suicide & Crisis Lifeline) now, or call 911 for an emergency. You are not alone. Someone from the study "
    "team will also check in with you."
)
STUDY_TEXT_SEGMENTS = 2  # the coach's own segment budget: a study text goes out whole within it


def checked_study_text(name: str, text: str, segments: int = STUDY_TEXT_SEGMENTS) -> str:
    """`text` when it goes out whole in `segments` SMS segments as the coach shapes texts; else a ValueError
    naming the setting, its length and what to do."""
    shaped = normalise(text, emojis_allowed=True).strip()
    if not shaped:
        raise ValueError(f"{name} is empty: give the text to send")
    count = count_segments(shaped)
    if count.segments > segments:
        raise ValueError(
            f"{name} takes {count.segments} SMS segments ({count.units} {count.encoding.value} units); "
            f"shorten it to {segments} segments"
            + (" or drop the characters GSM-7 lacks (they make it UCS-2)" if count.encoding is Encoding.UCS2 else "")
        )
    return shaped
