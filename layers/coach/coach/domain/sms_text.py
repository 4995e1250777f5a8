"""Shaping a reply for SMS: GSM-7 where the meaning allows, emojis only when welcome, within a segment budget.

A text that is all GSM-7 costs one segment per 160 characters (153 once it is split); a single other
character (a curly quote, an emoji) turns the whole text into UCS-2 at 70 (67) per segment. No
well-kept library on PyPI counts segments (gsm0338 is only a codec), so the rules of 3GPP TS 23.038
live here, small and tested.

Reading an inbound text stops at READ_CHARS characters a line, and shaping counts each character once, so
the time spent on a text grows with its length, never with its square.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

# A reply's meaning is in its first sentences: reading, scoring and parsing a text look at its first 480
# characters a line, whatever its length (a turn's texts are joined by newlines, so each text counts on its
# own). The transcript keeps the whole text.
READ_CHARS = 480

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each costs two septets: an escape and the character

_SINGLE = {"gsm7": 160, "ucs2": 70}
_CONCATENATED = {"gsm7": 153, "ucs2": 67}  # the rest of each segment carries the concatenation header

_REPLACEMENTS = {
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032`\u00b4", "'"),
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    **dict.fromkeys("•·◦‣", "-"),
    "…": "...",
    "\t": " ",
    "\u00a0": " ",
    "\u202f": " ",
    "\u205f": " ",
    "\u3000": " ",
    **{chr(c): " " for c in range(0x2000, 0x200B)},
    **dict.fromkeys("\u200b\u2060\ufeff", ""),
    "©": "(c)",
    "®": "(R)",
    "™": "(TM)",
}
_EMOJI_RANGES = (
    (0x1F000, 0x1FAFF),  # pictographs, emoticons, transport, flags, skin tones, …
    (0x2600, 0x27BF),  # miscellaneous symbols and dingbats (☀ ✅ ❤)
    (0x2300, 0x23FF),  # ⌚ ⏰
    (0x2B00, 0x2BFF),  # ⭐ ⬆
    (0x2190, 0x21FF),  # arrows, shown as emoji on phones
    (0xFE00, 0xFE0F),  # variation selectors
    (0x200D, 0x200D),  # zero-width joiner inside emoji sequences
    (0x20E3, 0x20E3),  # keycap
    (0xE0020, 0xE007F),  # tag sequences (subdivision flags)
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3299),
)
_FIRST_EMOJI = min(low for low, _ in _EMOJI_RANGES)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_CUT_OFF = ",;:-"  # not left dangling before the "..." of a cut


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class SegmentCount:
    encoding: Encoding
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    segments: int


def read_prefix(text: str) -> str:
    """What the coach reads of an inbound text: the first READ_CHARS characters of each line."""
    if len(text) <= READ_CHARS:
        return text
    return "\n".join(line[:READ_CHARS] for line in text.split("\n"))


def is_emoji(char: str) -> bool:
    code = ord(char)
    return code >= _FIRST_EMOJI and any(low <= code <= high for low, high in _EMOJI_RANGES)


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text)


@dataclass(frozen=True)
class _Packing:
    """Units so far and how they pack into concatenated segments: `segments` in all, `used` of the last."""

    units: int = 0
    segments: int = 1
    used: int = 0

    def plus(self, widths: list[int], capacity: int) -> _Packing:
        # An escape pair or a surrogate pair is never split across two segments, so pack char by char.
        segments, used = self.segments, self.used
        for width in widths:
            if used + width > capacity:
                segments, used = segments + 1, 0
            used += width
        return _Packing(self.units + sum(widths), segments, used)


@dataclass(frozen=True)
class _Meter:
    """The cost of a text built left to right, packed both ways at once (a later character may turn it into
    UCS-2), so that adding to a text never counts again what it holds already."""

    gsm7: bool = True
    septets: _Packing = _Packing()
    code_units: _Packing = _Packing()

    def plus(self, text: str) -> _Meter:
        gsm7 = self.gsm7 and is_gsm7(text)
        septets = self.septets
        if gsm7:
            septets = septets.plus([2 if c in GSM7_EXTENSION else 1 for c in text], _CONCATENATED["gsm7"])
        code_units = self.code_units.plus([2 if ord(c) > 0xFFFF else 1 for c in text], _CONCATENATED["ucs2"])
        return _Meter(gsm7, septets, code_units)

    @property
    def count(self) -> SegmentCount:
        encoding, packing = (Encoding.GSM7, self.septets) if self.gsm7 else (Encoding.UCS2, self.code_units)
        segments = 1 if packing.units <= _SINGLE[encoding] else packing.segments
        return SegmentCount(encoding, packing.units, segments)

    def fits(self, budget: int) -> bool:
        return self.count.segments <= budget


def count_segments(text: str) -> SegmentCount:
    """How many SMS segments `text` costs, by the GSM-7/UCS-2 rules (an empty text still costs one)."""
    return _Meter().plus(text).count


def _plain_letter(char: str) -> str:
    """ "á" → "a" when the character is not GSM-7 but its base letter is; otherwise the character."""
    if char in GSM7_BASIC or char in GSM7_EXTENSION:
        return char
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and is_gsm7(base) else char


def normalise(text: str, *, emojis_allowed: bool) -> str:
    """GSM-7 look-alikes for typographic characters, no emojis unless allowed, tidy spaces."""
    if not emojis_allowed:
        text = "".join(" " if is_emoji(c) else c for c in text)
    text = "".join(_REPLACEMENTS.get(c, c) for c in text)
    text = "".join(_plain_letter(c) for c in text)
    text = re.sub(r"[ ]{2,}", " ", text)
    text = re.sub(r" +([.,!?;:])", r"\1", text)
    return "\n".join(line.strip() for line in text.strip().split("\n"))


def _fits(text: str, budget: int) -> bool:
    return count_segments(text).segments <= budget


def _most_chars(budget: int) -> int:
    """No longer text fits in `budget` segments: every character costs at least one unit."""
    return max(_SINGLE["gsm7"], budget * _CONCATENATED["gsm7"])


def _cut_at_words(text: str, budget: int) -> str:
    """The most whole words of `text` (not all of them) that fit with "...", or the first word cut short."""
    words = text.split(" ")
    longest, kept = _most_chars(budget), 0
    before, length = _Meter(), 0  # the words ahead of the one tried, each with its space
    for count, word in enumerate(words[:-1], start=1):
        if length > longest:  # every cut from here on is longer still: none can fit
            break
        if before.plus(word.rstrip(_CUT_OFF) + "...").fits(budget):
            kept = count
        before, length = before.plus(word + " "), length + len(word) + 1
    if kept:
        return " ".join(words[:kept]).rstrip(_CUT_OFF) + "..."
    # One enormous word: cut characters until it fits.
    word = words[0]
    while word and not _fits(word + "...", budget):
        word = word[: len(word) // 2]
    return word + "..." if word else ""


def fit_to_budget(text: str, budget: int) -> str:
    """`text`, or its longest run of whole sentences that fits in `budget` segments (words if none does)."""
    if _fits(text, budget):
        return text
    first, *rest = _SENTENCE_END.split(text)
    if not _fits(first, budget):
        return _cut_at_words(text, budget)
    # Each longer run is the one before, a space and the next sentence (less the text's leading and trailing
    # space): the meter adds each sentence once instead of counting the whole run again.
    run = [first.lstrip()]
    meter = _Meter().plus(run[0])
    for sentence in rest:
        added = f" {sentence.rstrip()}" if sentence.strip() else ""
        longer = meter.plus(added)
        if not longer.fits(budget):
            break
        run.append(added)
        meter = longer
    return "".join(run) if len(run) > 1 else first


def shape_sms(text: str, *, emojis_allowed: bool, segment_budget: int) -> str:
    """Everything the coach sends goes through here."""
    return fit_to_budget(normalise(text, emojis_allowed=emojis_allowed), segment_budget)
