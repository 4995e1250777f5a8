"""Reading a time of day and a habit anchor out of what people text ("7:30am", "evenings", "after my coffee").

Each reading looks at READ_CHARS characters a line (coach.domain.sms_text) and no pattern here backtracks
over a run it has already tried, so the time taken grows with the text, not with its square.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from coach.domain.sms_text import read_prefix

# Words people use for a part of the day, and the local time a nudge then goes out.
_DAY_PARTS: tuple[tuple[str, str], ...] = (
    (r"early\s+mornings?|wake\s+up|get\s+up", "07:00"),
    (r"mornings?|breakfast(?:\s*time)?", "08:00"),
    (r"noon|midday", "12:00"),
    (r"lunch(?:\s*time)?|lunchtimes?", "12:30"),
    (r"afternoons?", "15:00"),
    (r"after\s+work|(?:get|come|am|i'm)\s+(?:back\s+)?home|home\s+from\s+work", "18:00"),
    (r"evenings?|dinner(?:\s*time)?", "19:00"),
    (r"nights?|tonight|bed(?:\s*time)?", "21:00"),
    (r"midnight", "00:00"),
)

_MERIDIEM = r"(?P<mer>a\.?\s?m\.?|p\.?\s?m\.?)"
# The spaces after a meridiem belong to it: two optional runs of spaces side by side ("\s*(am)?\s*") split
# every run of spaces after a number in every way before failing, which is quadratic in the run.
_RANGE = re.compile(
    r"\b(?P<h1>\d{1,2})(?::(?P<m1>\d{2}))?\s*(?:(?P<mer1>a\.?m\.?|p\.?m\.?)\s*)?(?:-|\u2013|\u2014|to|until|till|and)\s*"
    r"(?P<h2>\d{1,2})(?::(?P<m2>\d{2}))?\s*(?P<mer2>a\.?m\.?|p\.?m\.?)",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"\b(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?\s*" + _MERIDIEM + r"(?![a-z])", re.IGNORECASE)
_TWENTY_FOUR = re.compile(r"\b(?P<h>[01]?\d|2[0-3])[:h](?P<m>[0-5]\d)\b", re.IGNORECASE)
_AT_HOUR = re.compile(r"\b(?:at|around|about|by)\s+(?P<h>\d{1,2})(?:\s*o'?clock)?\b(?![:.]\d)", re.IGNORECASE)

_ANCHOR = re.compile(
    r"\b(?P<anchor>(?:right\s+|just\s+)?(?:after|before|when|while|once|as\s+soon\s+as|during)\s+[^.,;!?\n]+)",
    re.IGNORECASE,
)
# Words that end an anchor without naming the routine ("after lunch instead please"). They are taken off the
# end word by word: a pattern "(?:\s+(?:...))+$" tries every space of the anchor, which is quadratic in it.
_ANCHOR_TRAILER = re.compile(
    r"instead|please|pls|every\s*day|each\s+day|daily|maybe|i\s+think|i\s+guess|works|would\s+work|"
    r"is\s+best|is\s+good|would\s+be\s+good|thanks?|thank\s+you",
    re.IGNORECASE,
)
_TRAILER_WORDS = 3  # the most words of one trailer ("would be good")
_DAY_PART_PATTERNS = tuple((re.compile(rf"\b(?:{words})\b"), hhmm) for words, hhmm in _DAY_PARTS)
_MAX_ANCHOR_CHARS = 60


def _hhmm(hour: int, minute: int) -> str | None:
    if 0 <= hour <= 23 and 0 <= minute <= 59:
        return f"{hour:02d}:{minute:02d}"
    return None


def _with_meridiem(hour: int, minute: int, meridiem: str) -> str | None:
    if not 1 <= hour <= 12:
        return None
    is_pm = meridiem.lower().startswith("p")
    hour = hour % 12 + (12 if is_pm else 0)
    return _hhmm(hour, minute)


def parse_time(text: str) -> str | None:
    """The local time ("HH:MM", 24 h) a text names, or None when it names none.

    A range ("8-9am") means its start; a part of the day ("evenings") means a typical hour in it.
    """
    return _time_in(read_prefix(text))


def _time_in(text: str) -> str | None:
    if found := _RANGE.search(text):
        meridiem = found["mer1"] or found["mer2"]
        return _with_meridiem(int(found["h1"]), int(found["m1"] or 0), meridiem)
    if found := _CLOCK.search(text):
        return _with_meridiem(int(found["h"]), int(found["m"] or 0), found["mer"])
    if found := _TWENTY_FOUR.search(text):
        return _hhmm(int(found["h"]), int(found["m"]))
    if found := _AT_HOUR.search(text):
        hour = int(found["h"])
        if 13 <= hour <= 23:
            return _hhmm(hour, 0)
        if 1 <= hour <= 12:
            # "at 7" without am/pm: people mean waking hours, so 1-5 is the afternoon.
            return _hhmm(hour + 12 if hour <= 5 else hour, 0)
    lowered = text.lower()
    for words, hhmm in _DAY_PART_PATTERNS:
        if words.search(lowered):
            return hhmm
    return None


def parse_time_beside_anchor(text: str) -> str | None:
    """A time named outside the anchor clause: "mornings after lunch" is 08:00, "after lunch" names no time."""
    text = read_prefix(text)
    if found := _ANCHOR.search(text):
        text = text[: found.start()] + " " + text[found.end() :]
    return _time_in(text)


def time_for_people(hhmm: str) -> str:
    """ "19:00" → "7pm", "07:30" → "7:30am": how a time reads in a text message."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    suffix = "am" if hour < 12 else "pm"
    shown = hour % 12 or 12
    return f"{shown}{suffix}" if minute == 0 else f"{shown}:{minute:02d}{suffix}"


def parse_anchor(text: str) -> str | None:
    """The routine a habit hangs on ("after my coffee"), as the person said it, or None."""
    found = _ANCHOR.search(read_prefix(text))
    if not found:
        return None
    anchor = re.sub(r"\s+", " ", found["anchor"]).strip()
    anchor = re.sub(r"^(?:right|just)\s+", "", anchor, flags=re.IGNORECASE)
    anchor = _without_trailers(anchor).strip()
    words = anchor.split(" ")
    if len(words) < 2:
        return None
    if len(anchor) > _MAX_ANCHOR_CHARS:
        anchor = anchor[:_MAX_ANCHOR_CHARS].rsplit(" ", 1)[0]
    return anchor[0].lower() + anchor[1:]


def _without_trailers(anchor: str) -> str:
    """`anchor` (single-spaced) less the longest run of trailers that ends it, its first word always kept.

    From the last word back: `ends[i]` says whether the words from i on are all trailers. A trailer has at
    most three words, so three words in a row that start no such run mean none starts further back.
    """
    words = anchor.split(" ")
    ends = [False] * len(words) + [True]
    first = len(words)
    for i in range(len(words) - 1, 0, -1):
        spans = range(1, min(_TRAILER_WORDS, len(words) - i) + 1)
        ends[i] = any(ends[i + n] and _ANCHOR_TRAILER.fullmatch(" ".join(words[i : i + n])) for n in spans)
        if ends[i]:
            first = i
        elif not any(ends[i : i + _TRAILER_WORDS]):
            break
    return " ".join(words[:first])


def anchor_from_answer(text: str) -> str | None:
    """An anchor from a direct answer to "what could it follow?": "my morning coffee" → "after my morning coffee"."""
    text = read_prefix(text)
    if anchor := parse_anchor(text):
        return anchor
    cleaned = re.sub(r"[^\w\s'-]", " ", text).strip()
    cleaned = re.sub(r"\s+", " ", cleaned)
    if len(cleaned.split(" ")) < 2 or len(cleaned) > _MAX_ANCHOR_CHARS:
        return None
    return f"after {cleaned[0].lower() + cleaned[1:]}"


def same_local_time(moment: datetime, old_zone: str, new_zone: str) -> datetime:
    """The moment that shows in `new_zone` the wall-clock time `moment` shows in `old_zone` (UTC): what a
    participant's pending reminder becomes when their timezone is corrected."""
    wall = moment.astimezone(ZoneInfo(old_zone)).replace(tzinfo=None)
    return wall.replace(tzinfo=ZoneInfo(new_zone)).astimezone(UTC)
