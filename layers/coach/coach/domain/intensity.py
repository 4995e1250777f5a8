"""The once-a-day intensity check: "a bit more, the same, or less?" and how big the next prompt is."""

from __future__ import annotations

import re

from coach.domain.sms_text import read_prefix

QUESTION = "Quick check: tomorrow, would you like a bit more, the same, or a bit less?"
MIN_INTENSITY, MAX_INTENSITY = -1, 1  # smaller than designed, as designed, bigger

_MORE = re.compile(r"\b(?:more|bigger|harder|longer|step it up|challenge)\b", re.IGNORECASE)
_LESS = re.compile(r"\b(?:less|smaller|easier|shorter|fewer|lighter|too much)\b", re.IGNORECASE)
_SAME = re.compile(r"\b(?:same|as is|keep it|fine|good as it is|no change|just right)\b", re.IGNORECASE)


def read_answer(text: str) -> int | None:
    """-1 (less), 0 (the same) or +1 (more), or None when the text answers something else."""
    text = read_prefix(text)
    more, less, same = bool(_MORE.search(text)), bool(_LESS.search(text)), bool(_SAME.search(text))
    if more and not less:
        return 1
    if less and not more:
        return -1
    if same and not (more or less):
        return 0
    return None


def adjusted(intensity: int, answer: int) -> int:
    return max(MIN_INTENSITY, min(MAX_INTENSITY, intensity + answer))


def acknowledgement(answer: int) -> str:
    if answer > 0:
        return "Got it - tomorrow's will be a little bigger."
    if answer < 0:
        return "Got it - tomorrow's will be a little smaller."
    return "Got it - same size tomorrow."


def sized(action: str, intensity: int) -> str:
    """The prompt's action at the person's chosen size (the 1-minute version is the design)."""
    if intensity < 0:
        return f"{action} (even 30 seconds counts)"
    if intensity > 0:
        return f"{action}, then a second round"
    return action
