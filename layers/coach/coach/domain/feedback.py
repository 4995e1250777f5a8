"""Reading a reply to a habit nudge: completed, attempted, skipped, rejected or modified, or not feedback.

A reply is read as a run of cues: the set phrases of the table below, matched as whole words, the longest
first, each word once ("no thanks" is a rejection, not a "no"; "done" is not in "abandoned"). A cue is read
in its frame, the few words before it in its clause: a negation turns a completion into a skip ("didn't do
it"), a plan turns it into future intent ("I'll do it later": not done, and so not feedback yet), "almost"
makes it partial ("almost finished") or cancels a lapse ("almost forgot").

Mixed replies are settled clause by clause (a clause ends at punctuation or a word such as "but"): part of
the habit is an attempt ("did it but only half"); of a completion and a lapse, the later clause says how today
went ("forgot, but then did it"); a clause about yesterday counts only when none speaks of today ("skipped
yesterday but did it today"); a barrier is weaker than a completion ("did it though I was tired").

A reply is read up to READ_CHARS characters a line (coach.domain.sms_text); each word is looked up once and
each cue looks back a bounded number of words, so reading costs time in proportion to the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, StrEnum, auto

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


class _Cue(Enum):
    """What a phrase of a reply is about, before the words around it are taken into account."""

    DONE = auto()  # "did it", "finished", ✅
    ACTION = auto()  # "do it", "try", "get to it": the habit named, not said to be done
    TRIED = auto()  # "tried", "started", "gave it a go"
    PARTIAL = auto()  # "half", "some of it", "did a bit"
    SKIP = auto()  # "skipped", "forgot", ❌
    BARRIER = auto()  # "busy", "tired", "no time": why a day went without, weaker than a completion
    REJECT = auto()  # "hate", "pointless", "not for me"
    REJECT_IF_NEGATED = auto()  # "like", "help": "don't like" is a rejection, "like" alone says nothing
    YES = auto()  # "yes", 👍: done, when nothing says more
    NO = auto()  # "no", "nope", 👎: not done, when nothing says more
    DID_NOT = auto()  # "didn't", "couldn't": says "no" on its own ("no, I didn't") and negates what follows
    NOT_YET = auto()  # not done so far: today is not over
    LATER = auto()  # "later", "tonight": a plan for later today
    ANOTHER_DAY = auto()  # "tomorrow": a plan for another day says today's is skipped
    YESTERDAY = auto()  # its clause is about a day already past
    YET = auto()  # "haven't done it yet": its clause's lapse is not done so far
    CHANGE = auto()  # "instead", "can we", "move": asking for another time or routine
    TWEAK = auto()  # "easier", "smaller": asking for another size, when it is a request
    PLEASE = auto()  # "please", "make": a tweak word or a time becomes a request
    NEGATOR = auto()  # "not", "never": negates what follows, says nothing itself
    WILL = auto()  # "will", "going to": what follows is a plan
    ALMOST = auto()  # "almost", "nearly": what follows nearly happened
    HEDGE = auto()  # "kinda", "partly": what follows happened in part
    BREAK = auto()  # punctuation, "but", "because": a new clause
    NEUTRAL = auto()  # set phrases that say none of the above ("no worries", "don't know")


def _phrases(text: str) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(p.split()) for p in text.split("|"))


# The phrase table. Emojis arrive as the words of _EMOJI_WORDS and SMS spellings as the words of _SPELLINGS;
# contractions are spelt out ("didn't" is "did not", "I'll" is "i will").
_PHRASES: tuple[tuple[_Cue, str], ...] = (
    (
        _Cue.DONE,
        "did|did it|did that|did them|done|finished|completed|complete|managed|nailed it|smashed it|made it|"
        "success|achieved|accomplished|check|checkmark|went well|got it done|got to it|got round to it|"
        "got around to it|got through it|sorted|ticked off|ticked it off",
    ),
    # Only a negation ("didn't get to it") or a plan ("will do it") makes these say anything.
    (
        _Cue.ACTION,
        "do|do it|doing|try|finish|manage|able|happen|happened|get to it|get round to it|get around to it|"
        "get a chance|got a chance|get it done|have time|had time|got time|got back to it|start|bother|"
        "feel like it|remember|keep it up",
    ),
    (
        _Cue.TRIED,
        "tried|trying|attempted|attempt|started|began|gave it a go|gave it a shot|gave it a try|had a go|"
        "had a try|stopped|gave up|got interrupted",
    ),
    (
        _Cue.PARTIAL,
        "half|halfway|half way|part of it|some of it|most of it|a bit of it|a little of it|bits of it|did a bit|"
        "did a little|did some|did a few|only a few|only some|not all|not the whole",
    ),
    (
        _Cue.SKIP,
        "skipped|skip|missed|forgot|forget|slipped my mind|overslept|slept in|fell asleep|crossmark|not today|"
        "did nothing|nothing today|not this time",
    ),
    (
        _Cue.BARRIER,
        "busy|tired|exhausted|knackered|sick|ill|unwell|no time|ran out of time|out of time|too hard|"
        "too difficult|hectic|long day|rough day|bad day",
    ),
    (
        _Cue.REJECT,
        "hate|hated|dislike|pointless|useless|stupid|dumb|silly|boring|annoying|sucks|ridiculous|waste of time|"
        "not for me|not my thing|no thanks|no thank you|not interested|not helpful|no point|what's the point|"
        "done with this|done with it|done with these|sick of|tired of|fed up|over it|quit|never again",
    ),
    (
        _Cue.REJECT_IF_NEGATED,
        "like|liking|want|enjoy|enjoying|help|helps|helping|helpful|useful|work|works|working|care|see the point",
    ),
    (
        _Cue.YES,
        "yes|yeah|yep|yup|of course|yay|woohoo|not bad|thumbs up|thumbsup|flexed|raisedhands|tada|okhand",
    ),
    # "No" answers; it does not negate what follows ("nope, forgot again"): the phrases it starts are listed.
    (_Cue.NO, "no|nope|nah|not really|not at all|no way|no chance|thumbsdown"),
    # "Is not" and "was not" are left to "not", so that what follows them is read ("isn't for me").
    (
        _Cue.DID_NOT,
        "did not|do not|does not|have not|has not|had not|could not|can not|cannot|will not|would not",
    ),
    (_Cue.NOT_YET, "not yet"),
    (
        _Cue.LATER,
        "later|later on|tonight|soon|this evening|this afternoon|in a bit|in a while|in a min|in a minute|in a sec",
    ),
    (_Cue.ANOTHER_DAY, "tomorrow|next time|another day|next week"),
    (_Cue.YESTERDAY, "yesterday"),
    (_Cue.YET, "yet"),
    (
        _Cue.CHANGE,
        "instead|change|switch|move|reschedule|shift|swap|prefer|rather|different|can we|could we|can you|"
        "could you|how about|what about|would be better|be better|works better|work better|better for me|"
        "suits me better|suit me better|would suit me|text me|remind me|message me|nudge me|send it|from now on|"
        "going forward",
    ),
    (_Cue.TWEAK, "easier|harder|smaller|bigger|shorter|longer|simpler|quicker|earlier|tweak|adjust|modify"),
    (_Cue.PLEASE, "please|make"),
    # "I don't think it helps" negates "helps".
    (_Cue.NEGATOR, "not|never|without|nothing|neither|nor|hardly|barely|do not think"),
    (
        _Cue.WILL,
        "will|gonna|going to|plan to|planning to|about to|intend to|hope to|hoping to|let me|lemme|need to|"
        "have to|gotta|should|shall|might",
    ),
    (_Cue.ALMOST, "almost|nearly|not quite"),
    (_Cue.HEDGE, "kinda|sorta|kind of|sort of|partly|partially|mostly|more or less"),
    (_Cue.BREAK, ".|,|;|!|?|but|though|although|however|because|so|then|except"),
    # "Did you get my text?" asks the coach; it says nothing done.
    (_Cue.NEUTRAL, "no worries|no problem|no probs|thank you|not sure|do not know|dunno|no idea|did you|did u"),
)

# Emojis people answer with, as words of the phrase table; a skin tone after them, or the variation selector of
# ✔️, is dropped with the other symbols.
_EMOJI_WORDS = str.maketrans(
    {
        "\u2705": " checkmark ",  # ✅
        "\u2714": " checkmark ",  # ✔
        "\u2611": " checkmark ",  # ☑
        "\u2713": " checkmark ",  # ✓
        "\u274c": " crossmark ",  # ❌
        "\u274e": " crossmark ",  # ❎
        "\u2716": " crossmark ",  # ✖
        "\u2717": " crossmark ",  # ✗
        "\U0001f44d": " thumbsup ",  # 👍
        "\U0001f44e": " thumbsdown ",  # 👎
        "\U0001f4aa": " flexed ",  # 💪
        "\U0001f64c": " raisedhands ",  # 🙌
        "\U0001f389": " tada ",  # 🎉
        "\U0001f973": " tada ",  # 🥳
        "\U0001f44c": " okhand ",  # 👌
    }
)

# SMS spellings and common slips, each under the words the phrase table reads them as.
_SPELT_AS = {
    "done": "dun donee",
    "finished": "finshed finsihed finised",
    "completed": "compleated completd",
    "tried": "tryed tride",
    "skipped": "skiped",
    "forgot": "forgt fogot forgor",
    "missed": "mised",
    "yes": "yess yas",
    "yeah": "yh ya yah yea yeh",
    "yep": "yeap",
    "no": "noo",
    "nope": "nop",
    "nah": "naw",
    "did not": "dint",
    "tomorrow": "tmrw tmr tmrow tomoz 2moro 2morrow tomorow tommorow tommorrow",
    "later": "l8r ltr",
    "tonight": "2nite tonite",
    "gonna": "gunna",
    "because": "bc cuz coz cos cause",
    "though": "tho",
    "please": "pls plz",
}
_SPELLINGS = {spelling: words for words, spellings in _SPELT_AS.items() for spelling in spellings.split()}


def _lexicon() -> dict[str, tuple[tuple[tuple[str, ...], _Cue], ...]]:
    """The phrases by their first word, longest first; a phrase listed under two cues is a mistake."""
    cue_of: dict[tuple[str, ...], _Cue] = {}
    for cue, phrases in _PHRASES:
        for words in _phrases(phrases):
            if words in cue_of:
                raise ValueError(f"{' '.join(words)!r} is listed as {cue_of[words].name} and {cue.name}")
            cue_of[words] = cue
    by_first: dict[str, list[tuple[tuple[str, ...], _Cue]]] = {}
    for words, cue in sorted(cue_of.items(), key=lambda item: -len(item[0])):
        by_first.setdefault(words[0], []).append((words, cue))
    return {first: tuple(entries) for first, entries in by_first.items()}


_LEXICON = _lexicon()


class _Says(Enum):
    """What a cue says of today's habit, read in its frame."""

    DONE = auto()
    PARTIAL = auto()
    TRIED = auto()
    NOT_DONE = auto()
    NOT_YET = auto()
    BARRIER = auto()
    REJECT = auto()
    PLANNED = auto()
    ANOTHER_DAY = auto()
    YES = auto()
    NO = auto()


class _Frame(Enum):
    PLAIN = auto()
    NEGATED = auto()
    PLANNED = auto()
    ALMOST = auto()
    HEDGED = auto()


# The words a cue looks back on, within its clause. A bounded look keeps reading linear in the text.
_FRAME_WINDOW = 3
# Which cues frame the ones after them, strongest first: "will not do it" is negated, not planned.
_FRAMING = (
    (_Cue.NEGATOR, _Frame.NEGATED),
    (_Cue.DID_NOT, _Frame.NEGATED),
    (_Cue.WILL, _Frame.PLANNED),
    (_Cue.ALMOST, _Frame.ALMOST),
    (_Cue.HEDGE, _Frame.HEDGED),
)
_FRAMING_CUES = frozenset(cue for cue, _ in _FRAMING) | {_Cue.BREAK}
_REQUESTS = frozenset({_Cue.CHANGE, _Cue.TWEAK, _Cue.PLEASE})

_PLAIN: dict[_Cue, _Says] = {
    _Cue.DONE: _Says.DONE,
    _Cue.TRIED: _Says.TRIED,
    _Cue.PARTIAL: _Says.PARTIAL,
    _Cue.SKIP: _Says.NOT_DONE,
    _Cue.BARRIER: _Says.BARRIER,
    _Cue.REJECT: _Says.REJECT,
    _Cue.YES: _Says.YES,
    _Cue.NO: _Says.NO,
    _Cue.DID_NOT: _Says.NO,
    _Cue.NOT_YET: _Says.NOT_YET,
    _Cue.LATER: _Says.PLANNED,
    _Cue.ANOTHER_DAY: _Says.ANOTHER_DAY,
    _Cue.WILL: _Says.PLANNED,  # "will do", "I will": a plan even with nothing after it
    _Cue.ALMOST: _Says.TRIED,  # "almost" alone: nearly did it
    _Cue.HEDGE: _Says.TRIED,  # "kinda", "partly"
}
# A negation says the opposite of a cue, or nothing ("not busy", "not boring"); a frame other than plain
# changes only the cues it names here.
_IN_FRAME: dict[_Frame, dict[_Cue, _Says | None]] = {
    _Frame.NEGATED: {
        _Cue.DONE: _Says.NOT_DONE,
        _Cue.ACTION: _Says.NOT_DONE,
        _Cue.TRIED: _Says.NOT_DONE,  # "haven't tried", "didn't even try"
        _Cue.PARTIAL: _Says.NOT_DONE,
        _Cue.SKIP: _Says.YES,  # "didn't forget"
        _Cue.REJECT_IF_NEGATED: _Says.REJECT,
        _Cue.NO: _Says.NO,
        _Cue.DID_NOT: _Says.NO,
    },
    _Frame.PLANNED: {
        _Cue.DONE: _Says.PLANNED,  # "I'll get it done"
        _Cue.ACTION: _Says.PLANNED,  # "I'll do it later"
        _Cue.TRIED: _Says.PLANNED,
        _Cue.PARTIAL: _Says.PLANNED,
    },
    _Frame.ALMOST: {
        _Cue.DONE: _Says.PARTIAL,  # "almost finished"
        _Cue.SKIP: None,  # "almost forgot": it did not happen
        _Cue.TRIED: None,  # "nearly gave up"
    },
    _Frame.HEDGED: {_Cue.DONE: _Says.PARTIAL},  # "kind of did it", "partially done"
}


@dataclass
class _Clause:
    says: list[_Says] = field(default_factory=list)
    yesterday: bool = False
    so_far: bool = False  # "yet": what is not done is not done so far


def _tokens(text: str) -> list[str]:
    lowered = text.translate(_EMOJI_WORDS).lower().replace("\u2019", "'").replace("\u2018", "'")
    lowered = re.sub(r"([a-z])\1{2,}", r"\1", lowered)  # "yesss", "nooo": a held letter counts once
    lowered = re.sub(r"\b(can)'?t\b", r"\1 not", lowered)
    lowered = re.sub(r"\bwon'?t\b", "will not", lowered)
    lowered = re.sub(r"(?:n't|'nt)\b", " not", lowered)
    lowered = re.sub(r"\b(did|does|do|have|has|had|was|is|are|were|could|would|should)nt\b", r"\1 not", lowered)
    lowered = re.sub(r"'ll\b", " will", lowered)
    # "ill do it" is SMS for "I'll do it", not "unwell".
    lowered = re.sub(r"\bill (?=(?:do|try|get|have|start|go|be|make)\b)", "i will ", lowered)
    # Punctuation ends a clause; keep it as a token so that a frame does not reach across it.
    words = re.findall(r"[a-z0-9']+|[.,;!?]", lowered)
    return [spelt for word in words for spelt in _SPELLINGS.get(word, word).split()]


def _cues(tokens: list[str]) -> list[tuple[_Cue, int, int]]:
    """The phrases of the table in `tokens`, left to right, the longest at each word: (cue, start, end)."""
    found, i = [], 0
    while i < len(tokens):
        for words, cue in _LEXICON.get(tokens[i], ()):
            if tuple(tokens[i : i + len(words)]) == words:
                found.append((cue, i, i + len(words)))
                i += len(words)
                break
        else:
            i += 1
    return found


def _frame(roles: list[_Cue | None], start: int) -> _Frame:
    """The strongest framing cue among the few words before `start`, in its clause."""
    seen: set[_Cue] = set()
    for role in reversed(roles[max(0, start - _FRAME_WINDOW) : start]):
        if role is _Cue.BREAK:
            break
        if role is not None:
            seen.add(role)
    return next((frame for cue, frame in _FRAMING if cue in seen), _Frame.PLAIN)


def _says(cue: _Cue, frame: _Frame) -> _Says | None:
    if frame is _Frame.PLAIN:
        return _PLAIN.get(cue)
    in_frame = _IN_FRAME[frame]
    if cue in in_frame:
        return in_frame[cue]
    return None if frame is _Frame.NEGATED else _PLAIN.get(cue)


@dataclass(frozen=True)
class _Reading:
    says: list[_Says]  # of today, in the order said
    asks: frozenset[_Cue]  # the requests made (CHANGE, TWEAK, PLEASE), none of them negated
    question: bool


def _clauses(tokens: list[str]) -> tuple[list[_Clause], frozenset[_Cue]]:
    """What each clause says, each cue read in its frame; and the requests made, none of them negated."""
    cues = _cues(tokens)
    roles: list[_Cue | None] = [None] * len(tokens)
    for cue, start, end in cues:
        if cue in _FRAMING_CUES:
            roles[start:end] = [cue] * (end - start)
    clauses, asks = [_Clause()], set()
    for cue, start, _ in cues:
        clause = clauses[-1]
        frame = _frame(roles, start)
        if cue is _Cue.BREAK:
            clauses.append(_Clause())
        elif cue in _REQUESTS:
            if frame is not _Frame.NEGATED:
                asks.add(cue)
        elif cue is _Cue.YESTERDAY:
            clause.yesterday = True
        elif cue is _Cue.YET:
            clause.so_far = True
        elif (said := _says(cue, frame)) is not None:
            clause.says.append(said)
    return clauses, frozenset(asks)


def _read(tokens: list[str]) -> _Reading:
    clauses, asks = _clauses(tokens)
    spoken = [c for c in clauses if c.says]
    about_today = [c for c in spoken if not c.yesterday] or spoken
    says = [_Says.NOT_YET if said is _Says.NOT_DONE and c.so_far else said for c in about_today for said in c.says]
    return _Reading(says, asks, "?" in tokens)


def _last(says: list[_Says], *among: _Says) -> _Says | None:
    return next((said for said in reversed(says) if said in among), None)


def _kind(says: list[_Says]) -> FeedbackKind | None:
    """The one kind that what a reply says of today adds up to, the most telling first."""
    said = set(says)
    today = _last(says, _Says.DONE, _Says.NOT_DONE, _Says.NOT_YET)
    if _Says.PARTIAL in said:
        return FeedbackKind.ATTEMPTED  # part of the habit, however it is put ("did it but only half")
    if today is _Says.DONE:
        return FeedbackKind.COMPLETED  # the last word on today ("forgot, but then did it")
    if _Says.TRIED in said:
        return FeedbackKind.ATTEMPTED  # "tried but forgot": an attempt, whatever stopped it
    if _Says.REJECT in said:
        return FeedbackKind.REJECTED
    if today is _Says.NOT_DONE:
        return FeedbackKind.SKIPPED
    if today is _Says.NOT_YET or said & {_Says.PLANNED, _Says.ANOTHER_DAY}:
        # What is still to come today is not feedback yet; a plan for another day says today is skipped.
        return None if _Says.PLANNED in said and _Says.ANOTHER_DAY not in said else FeedbackKind.SKIPPED
    if _Says.BARRIER in said:
        return FeedbackKind.SKIPPED
    answer = _last(says, _Says.YES, _Says.NO)
    return {_Says.YES: FeedbackKind.COMPLETED, _Says.NO: FeedbackKind.SKIPPED}.get(answer) if answer else None


def _reason(text: str) -> str | None:
    """The why of a reply, bounded: "forgot because work ran late" → "work ran late"."""
    found = re.search(r"\b(?:because|since|as|cos|cause|coz)\b\s+(.+)", text, re.IGNORECASE)
    reason = (found.group(1) if found else text).strip(" .!?")
    return reason[:200] or None


def _modification(text: str, reading: _Reading) -> Classification | None:
    """A request for another time, routine or size. A bare question or "please" is a request only when the reply
    says nothing of the habit ("after dinner?"; not "did it after lunch, is that ok?")."""
    asks = reading.asks
    requested = _Cue.CHANGE in asks or ((_Cue.PLEASE in asks or reading.question) and not reading.says)
    if requested:
        new_time, new_anchor = parse_time_beside_anchor(text), parse_anchor(text)
        if new_time or new_anchor:
            return Classification(FeedbackKind.MODIFIED, new_time=new_time, new_anchor=new_anchor, reason=text[:200])
    if _Cue.TWEAK in asks and (_Cue.CHANGE in asks or _Cue.PLEASE in asks or reading.question):
        return Classification(FeedbackKind.MODIFIED, reason=text[:200])
    return None


def classify_feedback(text: str) -> Classification | None:
    """The kind of a reply to a nudge, or None when it says nothing about how the habit went (a question, a
    thank-you, or a plan for later today)."""
    text = read_prefix(text)
    tokens = _tokens(text)
    if not tokens:
        return None
    reading = _read(tokens)
    if modified := _modification(text, reading):
        return modified
    kind = _kind(reading.says)
    if kind is None:
        return None
    return Classification(kind) if kind is FeedbackKind.COMPLETED else Classification(kind, reason=_reason(text))
