"""The safety screen: inbound texts that speak of crisis, a medical emergency, abuse or an eating disorder, and
coach texts that must not go out (links, weight numbers, medical or diet advice).

The screen is deterministic (phrases and linear-time patterns, no model), so it runs before any LLM call, costs
the same every time and can be audited rule by rule: a hit names its rule, never the text. It reads the first
SCREEN_CHARS characters after spelling them out ("kms", "dont", curly quotes, "soooo"), and drops a hit when
- the phrase is denied in its clause ("I'm not going to hurt myself", "never thought about suicide"); a denial
  that is itself doubted ("trying not to", "can't promise I won't") still counts;
- someone else is its subject ("my friend is suicidal") or it sits inside words a third person or a film, song
  or book said ('my friend said "I want to die" as a joke'); "I said 'I want to die'" still counts;
- it is an idiom the rule knows (breathing while laughing, "passed out on the couch", "purged my closet").
Coaching idioms ("this workout is killing me", "dying to try it", "dead tired", "killed it") match no rule at all.
When a first-person statement is in doubt ("kms lol", "I want to die after that run") the screen flags it: a
missed crisis costs more than a careful reply to a joke. Medical emergencies count whoever has them ("my dad
can't breathe"), and they come first when a text holds more than one category, being the most urgent.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise

# How much of an inbound text the screen reads: ten SMS segments, more than anyone writes about themselves.
SCREEN_CHARS = 1_600


class SafetyCategory(StrEnum):
    CRISIS = "crisis"
    MEDICAL_EMERGENCY = "medical_emergency"
    ABUSE = "abuse"
    EATING_DISORDER = "eating_disorder"


@dataclass(frozen=True, slots=True)
class SafetyHit:
    """What the screen found: the category and the rule that matched (say `crisis.kill_myself`), not the text."""

    category: SafetyCategory
    rule: str


# --- spelling a text out ------------------------------------------------------------------------------------

_CHARACTERS = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032`\u00b4", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212_/", " "),
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", ""),
        **dict.fromkeys("\n\r", " . "),
        **dict.fromkeys("\U0001f602\U0001f923\U0001f606\U0001f639\U0001f480", " lol "),
    }
)
_LETTER_RUNS = re.compile(r"([a-z])\1{2,}")  # "soooo" → "so", "dieee" → "die"
_DISTANCES = "one|two|three|four|five|six|seven|eight|nine|ten|few|couple|several|many|more|extra|some|the"
_SPELLINGS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\bod(?:'e?d|ed)\b", "overdosed"),
        (r"\bcan'?t\b|\bcannot\b", "can not"),
        (r"\bwon'?t\b", "will not"),
        (r"\bain'?t\b", "am not"),
        (r"\b([a-z]+)n't\b", r"\1 not"),
        (r"\b(do|does|did|is|are|was|were|have|has|had|could|would|should|must|need)nt\b", r"\1 not"),
        (r"\bdnt\b", "do not"),
        (r"\bi'?m\b", "i am"),
        (r"\bi'?ve\b", "i have"),
        (r"\bi'll\b", "i will"),
        (r"\bi'd\b", "i would"),
        (r"'re\b", " are"),
        (r"'ll\b", " will"),
        (r"'ve\b", " have"),
        (r"\b(it|that|he|she|what|there|who|life|everything|nothing)'?s\b", r"\1 is"),
        (r"\b(?:imma|ima)\b", "i am going to"),
        (r"\bwann?a\b", "want to"),
        (r"\b(?:gonna|finna)\b", "going to"),
        (r"\btryna\b", "trying to"),
        (r"\bkinda\b", "kind of"),
        (r"\bidk\b", "i do not know"),
        (r"\bdunno\b", "do not know"),
        (r"\bidw\b", "i do not want"),
        (r"\bu\b", "you"),
        (r"\bur\b", "your"),
        (r"\brn\b", "right now"),
        (r"\b(?:bc|cuz|coz|cos)\b", "because"),
        (r"\b(?:abt|bout)\b", "about"),
        (r"\b(want|going|need|trying|have) 2\b", r"\1 to"),
        (r"\b(?:my ?self|myslef|mysef|me self)\b", "myself"),
        (r"\bkil\b", "kill"),
        (r"\bkms\b", "kill myself"),
        (r"\bod\b", "overdose"),
        (r"\b(?:sucide|suicde|suiside|suicid|suiscide|sewer ?slide)\b", "suicide"),
        (r"\b(?:sucidal|suicdal|suisidal|suicidle)\b", "suicidal"),
        (r"\bselfharm", "self harm"),
    )
)
_NUMBERED_KMS = re.compile(rf"\b([0-9]+|{_DISTANCES}) kms\b")  # "5 kms" is a run, not "kill myself"
_TOKEN = re.compile(r"[^\W_]+(?:'[^\W_]+)*|[.,;:!?]")
_CLAUSE_MARKS = frozenset(".,;:!?")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words before a quotation that make it someone else's words, or a title.
_REPORTING = _words(
    "said says say texted texts wrote writes posted posts tweeted joked jokes yelled screamed sang sings "
    "told asked goes went captioned quoted"
)
_TITLES = _words(
    "movie film show song book episode podcast video article series album documentary titled headline meme lyrics "
    "lyric line quote watching watched listening singing"
)
_QUOTE_REACH = 300


def _normalised(text: str) -> str:
    """The text as the rules read it: lower case, spelled out, someone else's quoted words dropped, tokens
    joined by single spaces (clause marks are tokens of their own)."""
    read = unicodedata.normalize("NFKC", text[:SCREEN_CHARS]).casefold().translate(_CHARACTERS)
    read = _LETTER_RUNS.sub(r"\1", read)
    read = _NUMBERED_KMS.sub(r"\1 km", read)
    for pattern, replacement in _SPELLINGS:
        read = pattern.sub(replacement, read)
    return " ".join(_TOKEN.findall(_without_reported_quotes(read)))


def _without_reported_quotes(read: str) -> str:
    """Drop a quotation that follows a third person's reporting verb or a title word; keep the rest, and keep
    what the texter quotes themselves ("I said 'I want to die'")."""
    kept: list[str] = []
    start = i = 0
    while i < len(read):
        mark = read[i]
        if mark in "\"'" and (i == 0 or not read[i - 1].isalnum()) and _reported(read[max(0, i - 60) : i]):
            end = _closing_quote(read, i)
            if end is not None:
                kept.append(read[start:i])
                kept.append(" , ")
                start = i = end + 1
                continue
        i += 1
    kept.append(read[start:])
    return "".join(kept)


def _closing_quote(read: str, opening: int) -> int | None:
    mark, limit = read[opening], min(len(read), opening + _QUOTE_REACH)
    i = read.find(mark, opening + 1, limit)
    # A single quote closes only where no letter follows it: the one in "friend's" is an apostrophe.
    while i != -1 and mark == "'" and i + 1 < len(read) and read[i + 1].isalpha():
        i = read.find(mark, i + 1, limit)
    return None if i == -1 else i


def _reported(lead: str) -> bool:
    words = re.findall(r"[^\W_]+(?:'[^\W_]+)*", lead)[-5:]
    for at, word in enumerate(words):
        if word in _TITLES:
            return True
        if word in _REPORTING:
            speaker = next((w for w in reversed(words[:at]) if w not in _BRIDGE), None)
            if speaker is not None and speaker not in _SELF:
                return True
    return False


# --- denial and subject --------------------------------------------------------------------------------------

_SELF = frozenset({"i", "me", "my", "myself", "mine"})
_DENIALS = frozenset({"not", "never", "nor", "no"})
_DOUBTED_DENIAL = frozenset({"trying", "try", "tried", "tries", "struggling", "hard", "fighting", "help", "how"})
_DOUBT = frozenset({"promise", "sure", "say", "saying", "said", "guarantee", "swear", "know", "certain"})
# Words that may stand between a subject or a denial and what is said of it.
_BRIDGE = _words(
    """am is are was were be been being do does did have has had will would could should can may might must shall
    going to want wanted wanting really ever even actually honestly seriously truly just currently any
    feel feeling felt feels like think thinking thought thoughts about of planning plan plans trying try tried
    intend intention intentions so very kind sort bit a little too also still always sometimes often get getting
    got having considered considering urge urges desire wish ready longer"""
)
_OTHERS = _words(
    """he she they them him her his their someone somebody people person everyone everybody anyone anybody nobody
    who friend friends bestie bff mom mum mother dad father parents parent brother sister bro sis son daughter
    kid kids child children husband wife partner boyfriend girlfriend bf gf ex cousin aunt uncle grandma grandpa
    grandmother grandfather coworker colleague boss neighbor neighbour roommate character characters guy girl man
    woman celebrity actor singer patient patients student students teen teens teenager teenagers classmate"""
)
_LOOK_BACK = 80  # characters: the few words before a match that can deny it or name its subject
_NEAR = 40  # characters either side of a match that can make it an idiom


def _words_before(read: str, start: int) -> list[str]:
    window = read[max(0, start - _LOOK_BACK) : start].split()
    if start > _LOOK_BACK and window and read[start - _LOOK_BACK - 1] != " ":
        window = window[1:]  # cut mid-word
    return window


def _denied(before: list[str], first: str) -> bool:
    """A denial just before the match, with only bridge words between, that is not itself doubted ("trying not
    to", "can not promise i will not")."""
    following = first
    for at in range(len(before) - 1, -1, -1):
        word = before[at]
        if word in _DENIALS and not (word == "no" and following in _SELF):
            earlier = _same_clause(before[max(0, at - 4) : at])
            if earlier and earlier[-1] in _DOUBTED_DENIAL:
                return False
            return not any(w in ("not", "never") and v in _DOUBT for w, v in pairwise(earlier))
        if word not in _BRIDGE and word not in _SELF:
            return False
        following = word
    return False


def _same_clause(words: list[str]) -> list[str]:
    for at in range(len(words) - 1, -1, -1):
        if words[at] in _CLAUSE_MARKS:
            return words[at + 1 :]
    return words


def _someone_else(before: list[str]) -> bool:
    """The subject of the match, found past bridge words, is a third person ("my friend is suicidal")."""
    for word in reversed(before):
        if word in _SELF:
            return False
        if word in _OTHERS or word.endswith("'s"):
            return True
        if word not in _BRIDGE:
            return False
    return False


# --- the rules ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    id: str
    pattern: re.Pattern[str]
    first_person: bool = False  # dropped when someone else is the subject
    unless_near: re.Pattern[str] | None = None  # an idiom when this is near the match
    unless_before: re.Pattern[str] | None = None  # a hypothetical when this leads up to the match

    @property
    def category(self) -> SafetyCategory:
        return SafetyCategory(self.id.split(".", 1)[0])

    def hits(self, read: str) -> bool:
        return any(self._counts(read, found) for found in self.pattern.finditer(read))

    def _counts(self, read: str, found: re.Match[str]) -> bool:
        before = _words_before(read, found.start())
        if _denied(before, found.group(0).split(" ", 1)[0]):
            return False
        if self.first_person and _someone_else(before):
            return False
        start = max(0, found.start() - _NEAR)
        if self.unless_near is not None and self.unless_near.search(read, start, found.end() + _NEAR):
            return False
        return self.unless_before is None or self.unless_before.search(read, start, found.start()) is None


def _rule(
    rule_id: str,
    *patterns: str,
    first_person: bool = False,
    unless_near: str | None = None,
    unless_before: str | None = None,
) -> _Rule:
    return _Rule(
        rule_id,
        re.compile("|".join(rf"\b(?:{p})\b" for p in patterns)),
        first_person,
        None if unless_near is None else re.compile(rf"\b(?:{unless_near})\b"),
        None if unless_before is None else re.compile(rf"\b(?:{unless_before})\b"),
    )


_END = r"(?= ?(?:$|[.,;:!?]))"  # the clause ends here
# "tired of living" ends its clause or goes on about life, not about living on takeout
_STOPS = r"(?= ?(?:$|[.,;:!?]|(?:any ?more|like this|this way|honestly|lol|and|so|because|i)\b))"
_PEOPLE = (
    r"he|she|they|partner|husband|hubby|wife|boyfriend|girlfriend|bf|gf|fiance|fiancee|spouse|dad|daddy|father|"
    r"stepdad|stepfather|mom|mum|mother|stepmom|stepmum|stepmother|parents?|brother|stepbrother|sister|uncle|aunt|"
    r"cousin|grandpa|grandfather|grandma|grandmother|son|daughter|ex|roommate|flatmate|boss|coworker|someone|"
    r"somebody|family|guy|man|neighbou?r|teacher|landlord|carer|caretaker|caregiver"
)
_ABUSER_BRIDGE = (
    r"always|sometimes|often|keeps|kept|still|again|just|also|even|then|has|have|had|been|is|was|are|were|will|"
    r"would|used to|started|starts|tried to|tries to|literally|really|actually|constantly"
)
_VIOLENCE = (
    r"hits|hit|hitting|punches|punched|punching|slaps|slapped|slapping|kicks|kicked|kicking|"
    r"chokes|choked|choking|strangles|strangled|strangling|shoves|shoved|shoving|hurts|hurt|hurting|abuses|abused|"
    r"abusing|attacks|attacked|attacking|rapes|raped|raping|molests|molested|molesting|assaults|assaulted|"
    r"assaulting|threatens|threatened|threatening|stalks|stalked|stalking|gropes|groped|groping|smacks|smacked|"
    r"whips|whipped|pins|pinned|throws things at|threw things at"
)
_LAUGHING = r"lol|lmao|lmfao|rofl|haha|hahaha|hehe|laugh|laughing|laughed|laughter|funny|hilarious"
# "What should I do if my chest hurts?" asks about an emergency; it does not report one.
_HYPOTHETICAL = r"in case|what (?:to do )?if|what should i do if|how do (?:i|you) know if"
_IF_EVER = r"if (?:i|you|someone|they|he|she) ever"
_INJURY = (
    r"gym|lift\w*|running|ran|run|knee|knees|back|ankle|ankles|wrist|shoulder|hip|neck|leg|legs|foot|feet|workout|"
    r"work out|working out|exercis\w*|squats?|yoga|stretch\w*|fell|fall|falling|slipped|tripped|sport\w*|training|"
    r"push ups?|weights|pulled|sprain\w*|injur\w*|sore|playing|hike|hiking|bike|biking|cycling|swim\w*|danc\w*|lol|"
    r"haha|accident\w*|doing"
)
_SLEEPING = r"couch|sofa|bed|asleep|sleep|sleepy|nap|napping|tv|netflix|movie|early|tired|goodnight|night night"


def _medical(rule_id: str, *patterns: str, unless_near: str | None = None) -> _Rule:
    """A medical rule: it counts whoever has the emergency, but not when the text only asks "what if"."""
    idioms = _IF_EVER if unless_near is None else f"{_IF_EVER}|{unless_near}"
    return _rule(f"medical_emergency.{rule_id}", *patterns, unless_near=idioms, unless_before=_HYPOTHETICAL)


_MEDICAL = (
    _medical(
        "chest_pain",
        r"chest (?:is |feels |has been |keeps )?(?:really |so |very |kind of )?(?:pain|pains|hurting|hurts|tight|"
        r"tightness|heavy|pressure|killing me)",
        r"(?:pain|pressure|tightness|crushing) in (?:my|the|his|her) chest",
        r"tight chest",
    ),
    _medical(
        "heart_attack_or_stroke",
        r"(?:having|just had|think i had|might have had|may have had) an? (?:\w+ ){0,2}?(?:heart attack|stroke|seizure|"
        r"cardiac arrest|allergic reaction|anaphylactic \w+|asthma attack)(?! of)",
        r"(?:hit|banged|bumped) (?:my|his|her) head(?: \w+){0,4}? (?:throwing up|vomit\w*|puk\w+|dizzy|confused|"
        r"bleeding|passed out|not responding|can not remember)",
        r"anaphylaxis|anaphylactic shock|(?:use|used|need|needed) (?:my|an|the) epi ?pen",
    ),
    _medical(
        "stroke_signs",
        r"(?:face|mouth|smile) (?:is )?(?:drooping|droopy|lopsided)",
        r"drooping (?:face|mouth)",
        r"slurr(?:ed|ing) (?:speech|my words|words)|speech is slurred",
        r"(?:numb|numbness|weak|weakness|paralyzed) (?:on |in )?(?:one|my left|my right|the left|the right) "
        r"(?:side|arm|leg)",
        r"one side of (?:my|his|her) (?:face|body) (?:is |feels |went )?(?:numb|weak|drooping|droopy|paralyzed)",
        r"can not (?:feel|move) (?:my )?(?:left|right) (?:arm|leg|side|hand)",
        r"worst headache of my life|sudden (?:severe|terrible|splitting) headache",
    ),
    _medical(
        "breathing",
        r"(?:can not|could not|unable to|struggling to|hard to|barely) breathe(?! (?:through my nose|in))",
        r"(?:having |have )?(?:trouble|difficulty) breathing",
        r"(?:not|stopped) breathing|short(?:ness)? of breath|gasping for (?:air|breath)",
        r"throat (?:is )?(?:closing|swelling|closing up)|(?:tongue|lips) (?:is |are )?swelling",
        r"can not catch my breath",
        r"(?:lips|face|fingers) (?:are |is )?(?:turning |going |gone |went |look |looks )?(?:blue|purple|grey|gray)",
        unless_near=_LAUGHING,
    ),
    _medical(
        "overdose",
        r"(?:overdosed|(?:am|is|are) overdosing)(?! on (?:caffeine|coffee|espresso|sugar|candy|chocolate|carbs|cake|"
        r"cookies|sweets|netflix|tv|memes|sun|sunshine|energy drinks|cuteness))",
        r"(?:took|taken|had) an overdose",
        r"(?:took|taken|had|injected|swallowed) (?:way )?too (?:much|many) (?:of )?(?:my )?(?:insulin|medication|meds|"
        r"pills|tablets|painkillers|tylenol|paracetamol|\w+ pills)",
        r"(?:took|swallowed|taken) (?:too many|a bunch of|a handful of|a lot of|lots of|all (?:of )?my|all the) "
        r"(?:pills|tablets|meds|medication|painkillers|sleeping pills)",
        r"(?:took|swallowed|taken) (?:a|the|an entire|a whole|the whole) (?:bottle|pack|packet|box) of "
        r"(?:pills|tablets|meds|painkillers|sleeping pills|tylenol|advil|aspirin|paracetamol|\w+ pills)",
        r"(?:drank|swallowed) (?:bleach|poison|antifreeze|drain cleaner)|alcohol poisoning|poison control",
    ),
    _medical(
        "bleeding",
        r"bleeding (?:heavily|a lot|badly|everywhere|profusely|nonstop|non stop|so much|really bad|like crazy|out)",
        r"(?:can not|will not|would not|does not) stop bleeding|bleeding (?:will not|would not|does not) stop",
        r"blood (?:everywhere|is everywhere|will not stop|all over)|(?:lots|a lot|so much|tons) of blood"
        r"(?! orange)|losing (?:a lot of |lots of |so much )?blood",
        r"(?:coughing|coughed|vomiting|vomited|throwing|threw|puking|puked) (?:up )?blood",
    ),
    _medical(
        "passing_out",
        r"(?:passed|passing|pass|blacked|blacking) out",
        unless_near=f"{_SLEEPING}|{_LAUGHING}",
    ),
    _medical("collapsed", r"collaps(?:ed|ing)", unless_near=_SLEEPING + r"|tent|chair|shelf|bridge|roof"),
    _medical(
        "fainting",
        r"faint(?:ed|ing)|feel(?:ing)? faint(?! hearted)",
        r"(?:lost|losing) consciousness|unconscious(?! (?:bias|mind|habits?))|unresponsive",
        r"(?:not|stopped) (?:responding|responsive)|(?:will not|can not|is not|are not|does not) wake up" + _END,
    ),
    _medical(
        "call_for_help",
        r"(?:call|called|calling|need|get|send) (?:an? )?(?:ambulance|paramedics?|911|999|112|emergency services)",
        r"(?:in|at|to|going to) the (?:er|emergency room|a and e|a e)",
    ),
)

_CRISIS = (
    _rule(
        "crisis.kill_myself",
        r"kill(?:ing|ed|s)? myself",
        r"(?:hang|hanging|hanged|shoot|shooting) myself",
        r"(?:jump|jumping) (?:off|from) (?:a|the|my) (?:bridge|building|roof|balcony)",
        r"(?:jump|jumping|step|stepping|throw myself) in front of (?:a|the) (?:train|car|bus|truck)",
    ),
    _rule(
        "crisis.suicidal",
        r"suicidal(?! (?:character|person|people|man|woman|patient|patients|friend|teen|teens|kid|kids|guy|girl))",
        r"unaliv(?:e|ing|ed)",
        first_person=True,
    ),
    _rule(
        "crisis.suicide",
        r"(?:commit|committing|committed|attempt|attempted|attempting) suicide",
        r"suicide (?:attempt|attempts|note|plan|plans)",
        r"(?:tried|try|trying|want|going|planning|plan) to (?:commit )?suicide",
        r"(?:thinking|thought|think|thoughts|considering|considered|contemplating|contemplated|ideas?) (?:of |about )?"
        r"(?:suicide|killing myself|ending my life|ending it all|ending it(?! with))"
        r"(?! (?:prevention|awareness|rates?|statistics|squad))",
        first_person=True,
    ),
    _rule(
        "crisis.end_my_life",
        r"(?:end|ending|ended|take|taking|took) my (?:own )?life(?! back)",
        r"end(?:ing)? it all|(?:end|ending) (?:everything|my existence)",
        r"(?:going to|want to|ready to|about to|plan to|planning to|will|need to) end it(?! (?:with|between))",
        r"end (?:it|things|everything)(?= ?(?:$|[.,;:!?]|tonight|today|right now|now|soon|for good|lol))",
        first_person=True,
    ),
    _rule(
        "crisis.want_to_die",
        r"(?:want|wants|wanted|wanting|wish|wishing|ready|deserve|plan|planning|trying|need|tempted) to die"
        r"(?! (?:of|from|laughing|with laughter|my|her|his|the|it|them)\b)",
        r"(?:should|might as well|need to) (?:just )?die(?= ?(?:$|[.,;:!?]|already|now|tonight|lol))",
        r"wish i (?:was|were) not (?:alive|here|born)|why (?:am i|do i) (?:even |still )*(?:alive|exist|bother living)",
        r"(?:want to|wish i could|just want to) sleep forever",
        r"wish i (?:was|were|had been) (?:dead|never born)|wish i (?:had )?never (?:been|was) born",
        r"(?:better off|rather be|want to be|wanted to be) dead",
        r"wish i (?:could|would) (?:just )?(?:die|disappear forever|not wake up|never wake up|sleep forever)",
        r"(?:sleep|go to sleep|fall asleep) and never wake up",
        r"hope i (?:die|do not wake up|never wake up)|let me die|rather die(?! than)|want to disappear forever",
        r"(?:stop|cease) (?:existing|to exist)|not (?:want to )?exist any ?more",
        r"(?:thinking|think|thought|thoughts) (?:about|of) (?:dying|death|being dead|not being here|not existing)",
        first_person=True,
    ),
    _rule(
        "crisis.not_want_to_live",
        r"(?:not|never|no longer) (?:even |really )?(?:want|wish) to (?:live(?! (?:in|with|there|here|near|alone|at|"
        r"on|by|together|abroad|somewhere|like that))|be alive|exist|be here any ?more|go on" + _END + ")",
        r"(?:not|never) (?:want|wish) to wake up(?: (?:again|ever|any ?more)|" + _END + ")",
        r"not (?:sure|certain|know) (?:if |that |whether )?i (?:want|wish) to (?:live|be alive|go on|be here)",
        r"not think i can (?:go on|keep going|keep living|live like this)"
        r"(?= ?(?:$|[.,;:!?]|any ?more|like this|living))",
    ),
    _rule(
        "crisis.no_reason_to_live",
        r"no (?:reason|point|will) (?:to|in|of) (?:live|living|going on|being alive|keep going)",
        r"nothing (?:left )?to live for|not worth living|life is not worth (?:it|living)",
        r"point (?:of|in) (?:living|life|being alive|going on|existing)" + _STOPS,
        r"(?:tired|sick|done) (?:of|with) (?:living|being alive|life|existing)" + _STOPS,
        r"can not (?:go on|keep going|keep living|do life)(?= ?(?:$|[.,;:!?]|any ?more|like this|living))",
        r"better (?:off )?without me|better off (?:not (?:existing|alive|here|being here|being alive|around)|gone)",
        r"(?:pain|it all|everything) to (?:stop|end) forever|(?:stop|end) (?:the pain|everything|it all) forever",
        r"(?:better|happier|easier) (?:off )?(?:if|when) i (?:was|were|am|died|disappeared|killed myself)"
        r"(?: (?:dead|gone|not here|not around|never born))?",
        r"(?:care|notice|miss me|matter) if i (?:died|was gone|were gone|disappeared|was not here|were not here|"
        r"killed myself)",
    ),
    _rule(
        "crisis.self_harm",
        r"harm(?:ing|ed|s)? myself",
        r"(?:i|been|started|start|keep|kept|relapsed|relapse|urges? to|want to|going to|thoughts? of|thinking "
        r"(?:of|about)|my|back to|used to|still) self (?:harm|harming|harmed|injury|injuring|injure)",
        r"self harm(?:ing|ed)? (?:again|urges|scars)",
        r"cutting myself(?! (?:some |a little |a bit of |any )?slack| off| out| short| free| down)",
        r"(?:want|wanted|wanting|plan|planning|urge|urges|tempted|need|needed|trying|tried|thinking about|thought "
        r"about|thoughts of|feel like|felt like|thinking of) (?:to )?(?:hurt|hurting|harm|harming|cut|cutting|burn|"
        r"burning|punish|punishing|hit|hitting) myself",
        r"(?:going to|will) (?:hurt|harm|cut|burn|punish) myself(?! (?:if|doing|trying|running|lifting|on|with|at|"
        r"in|when|by|lol|haha|exercising|working))",
        r"(?:hurt|hurting|hurts|cut|cutting|burn|burned|burnt|burning|hit|hitting|punch|punched|scratch|scratching|"
        r"bang|banged) myself (?:on purpose|deliberately|intentionally)",
        r"(?:urges? to|want to|started|keep|kept|been|relapsed and|went back to) cut(?:ting)?(?: again)?"
        r"(?= ?(?:$|[.,;:!?]|again|my (?:arm|arms|wrist|wrists|leg|legs|thigh|thighs|skin)))",
        r"(?:slit|slitting|slice|slicing|cut|cutting) (?:my|both) wrists?|cutting (?:my )?(?:arms?|thighs?|skin)",
    ),
    _rule(
        "crisis.hurt_myself",
        r"(?:hurt|hurting|hurts) myself",
        r"(?:trying|try|tried|struggling|hard) not to (?:hurt|harm|cut|kill) myself",
        unless_near=_INJURY,
    ),
    _rule(
        "crisis.overdose_intent",
        r"(?:want|wanted|going|plan|planning|thinking about|thought about|thinking of|tempted|trying|tried|urge) "
        r"(?:to )?(?:overdos(?:e|ing)|take all (?:of )?my (?:pills|meds|medication)|swallow all (?:of )?my "
        r"(?:pills|meds))",
    ),
    _rule(
        "crisis.plans_and_goodbyes",
        r"(?:the|a) rope (?:is )?ready|noose|gun to my head|(?:saving|saved|stockpiling|hoarding) (?:up )?(?:my )?"
        r"(?:pills|meds)|pills saved",
        r"(?:how many|enough) (?:pills|tablets|\w+) (?:would it take|does it take|to) (?:to )?"
        r"(?:die|kill myself|overdose)",
        r"(?:painless|easiest|quickest|best) ways? to (?:die|go)|ways? to (?:die|kill myself)",
        r"how to (?:die|kill myself)",
        r"(?:is )?my last (?:night|day)(?= ?(?:$|[.,;:!?]|alive|on earth))|last (?:night|day) (?:alive|on earth)",
        r"this is (?:my )?goodbye|goodbye forever|(?:will not|won't) be (?:here|around|alive) (?:tomorrow|much longer)",
        first_person=True,
    ),
    _rule(
        "crisis.reaching_out",
        r"(?:call|called|calling|text|texted|texting|number for|need|reach|reached) (?:the |a )?(?:988|suicide "
        r"(?:hotline|line|prevention line|crisis line)|crisis (?:line|text line|hotline)|samaritans)",
    ),
    _rule(
        "crisis.not_safe",
        r"(?:(?:i am|am|i feel|feel|feeling) (?:not safe|unsafe)|(?:i do not|do not|i never|never) feel safe)"
        r"(?= ?(?:$|[.,;:!?]|right now|tonight|any ?more|with myself|around myself|alone|at all))",
    ),
)

_ABUSE = (
    _rule(
        "abuse.violence",
        rf"(?:{_PEOPLE})(?: (?:{_ABUSER_BRIDGE})){{0,3}}(?:(?: \w+){{1,2}} and)? (?:{_VIOLENCE}) me"
        r"(?! (?:up|to it|to the|out|back|with (?:an? |the |some )?(?:idea|question|news|text|message|link|plan|"
        r"reminder|list|joke|fact|great|good|new|fun)))",
        rf"(?:{_PEOPLE})(?: (?:{_ABUSER_BRIDGE})){{0,3}} (?:pushed|pushes|pushing|threw|throws|thrown|slammed|slams|"
        r"dragged|drags) me (?:down|into|against|off|over|across|to the (?:ground|floor))",
        rf"(?:{_PEOPLE})(?: (?:{_ABUSER_BRIDGE})){{0,3}} (?:beat|beats|beating|beaten) me(?! (?:at|to|in|by|on))",
        r"(?:hit|beaten|beaten up|hurt|attacked|choked|punched|kicked|slapped|raped|threatened|abused|assaulted) by "
        rf"(?:my|our) (?:{_PEOPLE})",
        r"abus(?:es|ed|ing) me",
    ),
    _rule(
        "abuse.threats",
        r"threat(?:en|ens|ened|ening) to (?:kill|hurt|hit|beat|stab|shoot|rape) me",
        r"(?:he|she|they) (?:said|says|told me) (?:he|she|they) (?:would|will|is going to|was going to|are going to) "
        r"(?:kill|hurt|hit|beat|stab|shoot) me",
        r"(?:afraid|scared|terrified) (?:he|she|they) (?:will|is going to|might|would|is going) (?:kill|hurt|hit|beat) "
        r"me",
        rf"(?:afraid|scared|terrified) of (?:him|her|my (?:{_PEOPLE}))(?! (?:finding|seeing|knowing|judging|reaction))",
    ),
    _rule(
        "abuse.unsafe_at_home",
        r"(?:not|never) (?:feel |felt |feeling )?safe (?:at home|in (?:my|our|the) (?:home|house|apartment|flat)|at my "
        rf"(?:house|place)|(?:around|with) (?:him|her|them|my (?:{_PEOPLE})))",
        r"unsafe (?:at home|in (?:my|our) (?:home|house|apartment|flat)|(?:around|with) (?:him|her|them|my "
        rf"(?:{_PEOPLE})))",
    ),
    _rule(
        "abuse.abusive_relationship",
        rf"(?:my|an) abusive (?:{_PEOPLE}|relationship|home|household|marriage)",
        r"(?:being|been|was|am|getting|got|get) (?:abused|raped|molested|sexually (?:abused|assaulted|harassed)|"
        r"assaulted|groomed|trafficked|choked|strangled|beaten(?! (?:in|at|on|by)))",
        r"domestic (?:violence|abuse) (?:at|in) (?:my|our) (?:home|house)",
        r"(?:experiencing|victim of|living with|dealing with|escape|escaping|leave|leaving) (?:domestic (?:violence|"
        r"abuse)|abuse)",
        rf"my (?:{_PEOPLE}) (?:is|gets|get|got|becomes) (?:violent|abusive|physical with me)",
        first_person=True,
    ),
    _rule(
        "abuse.sexual",
        r"(?:raped|molested|sexually (?:assaulted|abused|harassed)) me",
        r"(?:touch(?:es|ed|ing)?|grop(?:es|ed|ing)) me (?:inappropriately|down there|without|when i|where|at night)",
        r"(?:forc(?:es|ed|ing)|made|makes|pressur(?:es|ed|ing)) me (?:to|into) (?:have sex|having sex|sex|do sexual|"
        r"sexual|send nudes)",
    ),
    _rule(
        "abuse.control",
        rf"(?:{_PEOPLE})(?: (?:{_ABUSER_BRIDGE})){{0,2}} (?:will not|would not|does not|never) let me (?:leave|go out|"
        r"go outside|see my|call|talk to|have my phone|out of the house)",
        rf"(?:{_PEOPLE})(?: (?:{_ABUSER_BRIDGE})){{0,2}} (?:locks|locked) me (?:in|out|up)",
    ),
)

_EATING_DISORDER = (
    _rule(
        "eating_disorder.purging",
        r"purg(?:e|ed|es|ing)(?! (?:my|the|our|all|old|his|her|some|your|files|emails|inbox|closet|wardrobe|stuff|"
        r"clothes|pantry|fridge|house|room|apps))",
        r"fingers? down (?:my )?throat",
        unless_near=r"closet|wardrobe|declutter\w*|clutter|clothes|inbox|emails?|files|pantry|fridge|garage|apps?|"
        r"spring cleaning|followers",
    ),
    _rule(
        "eating_disorder.making_myself_sick",
        r"(?:make|made|making|makes|force|forced|forcing) myself (?:to )?(?:sick|throw up|vomit|puke|be sick|gag)",
        r"(?:throw|throwing|threw|vomit|vomiting|vomited|puke|puking|puked) (?:it |everything |food )?(?:up )?"
        r"(?:after (?:eating|meals|every meal|i eat|each meal|food)|everything i eat|what i eat|on purpose|to lose "
        r"weight|so i do not gain)",
        r"bing(?:e|ed|es|ing)(?: \w+){0,4}? (?:and|then) (?:threw up|throw up|throwing up|vomit\w*|puk\w+)",
    ),
    _rule(
        "eating_disorder.starving",
        r"starv(?:e|ed|es|ing) myself(?! of (?!food))",
        r"(?:not|stopped|stop) eating (?:for|in) (?:days|weeks|\w+ days|[0-9]+ days|a week|a few days)",
        r"(?:have not|has not|had not|did not) eaten (?:anything |any food )?(?:in|for) (?:like |about |over |almost )?"
        r"(?:days|weeks|[0-9]+ days|"
        r"(?:two|three|four|five|six|several|a few|many) days|a week|(?:two|three|[0-9]+) weeks)",
        r"no food (?:in|for) (?:days|[0-9]+ days|(?:two|three|four|five|several|a few) days|a week)",
        r"fast(?:ing|ed)? for (?:days|weeks|a week|[0-9]+ days|(?:two|three|four|five|several|a few) days)",
        r"barely (?:eating|eaten|eat)(?= ?(?:$|[.,;:!?]|anything|at all|lately|these days|because|so))",
        r"refus(?:e|ing|ed) to eat(?= ?(?:$|[.,;:!?]|anything|at all|food|because|so|until))",
        r"stopped eating(?= ?(?:$|[.,;:!?]|altogether|completely|entirely|again|since|because|so|to lose|and))",
        r"(?:eat|eating|ate|eaten|had|having|allow myself|allowing myself|limit myself to|limiting myself to|stay "
        r"under|staying under) (?:only |just |under |less than |fewer than |no more than |maybe |like |about )?"
        r"[1-9][0-9]{0,2} (?:calories|kcal|cals?)(?= ?(?:a day|per day|today|all day|yesterday|each day|every day|"
        r"daily|$|[.,;:!?]))",
    ),
    _rule(
        "eating_disorder.laxatives",
        r"(?:laxatives?|diuretics?|diet pills|water pills) (?:to|so i can|so i|for) (?:lose|drop|get thin|be thin|"
        r"weight|purge|get rid|flush|make up)",
        r"(?:abus(?:e|ing|ed)|overus(?:e|ing)|taking (?:lots of|a lot of|too many|so many|handfuls of)|took (?:a lot "
        r"of|lots of|too many|a bunch of)) (?:laxatives|diuretics|diet pills)",
        r"laxative abuse",
        r"(?:laxatives?|diuretics?) (?:after|when|whenever|every time) (?:i )?(?:eat|ate|eating|binge|binged|binging|"
        r"bingeing|meals?|a binge|every meal)",
    ),
    _rule(
        "eating_disorder.fear_of_food",
        r"(?:do not|never) deserve (?:to eat|food)",
        r"(?:afraid|scared|terrified) (?:to eat|of eating)(?= ?(?:$|[.,;:!?]|anything|at all|food|because|in front))",
        r"punish(?:ing)? myself (?:for eating|by not eating|by starving)",
        r"chew(?:ing)? and spit(?:ting)?",
    ),
    _rule(
        "eating_disorder.named",
        r"(?:my|i am|i have|i had|i have been|relapsed|relapsing|relaps(?:ed|ing) (?:into|with)|struggling with|"
        r"recovering from|recovery from|"
        r"diagnosed with|back into|feel|feeling) (?:an? |so |kind of )?(?:eating disorder|anorexia|anorexic|"
        r"bulimia|bulimic|binge eating disorder|arfid|ednos|osfed)",
        r"pro ?ana|pro ?mia|thinspo|meanspo",
    ),
)

# Most urgent first: one text can hold more than one category, and its hit names the most urgent.
_RULES: tuple[_Rule, ...] = (*_MEDICAL, *_CRISIS, *_ABUSE, *_EATING_DISORDER)


def screen(text: str) -> SafetyHit | None:
    """The first safety rule an inbound text meets (most urgent category first), or None."""
    read = _normalised(text)
    for rule in _RULES:
        if rule.hits(read):
            return SafetyHit(rule.category, rule.id)
    return None


# --- what the coach may not write ---------------------------------------------------------------------------

_OUTPUT_CHARACTERS = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032`\u00b4", "'"),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff", ""),
    }
)
_NUMBER = (
    r"[0-9]+(?:[.,][0-9]+)?|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
    r"forty|fifty|hundred|thousand"
)
_MEDICINES = (
    r"ibuprofen|aspirin|tylenol|advil|motrin|paracetamol|acetaminophen|naproxen|aleve|melatonin|benadryl|"
    r"antihistamines?|antidepressants?|painkillers?|sleeping pills?|xanax|valium|ambien|metformin|insulin|statins?|"
    r"laxatives?|diet pills|supplements?|vitamins?|creatine|cbd"
)
_OUTPUT_CHECKS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (reason, re.compile("|".join(rf"(?:{p})" for p in patterns)))
    for reason, patterns in (
        (
            "link",
            (
                r"\bhttps?://|\bwww\.",
                r"\b[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.(?:com|org|net|io|ly|app|info|biz|gov|edu|health|ai|gl|tv|"
                r"xyz|link|site|online|co|me|co\.uk|org\.uk)\b(?![.-]?[a-z])",
            ),
        ),
        (
            "calories_or_weight_numbers",
            (
                rf"\b(?:{_NUMBER}) ?-?(?:k?cals?|kcals?|calories|calorie|lbs?|pounds?|kgs?|kilos?|kilograms?|stone)\b"
                r"(?! (?:weights?|dumbbells?|kettlebells?|bags?|backpacks?))",
            ),
        ),
        (
            "medical_advice",
            (
                r"\b[0-9]+(?:[.,][0-9]+)? ?(?:mg|mcg|\u03bcg|milligrams?|micrograms?|iu)\b",
                r"\b(?:stop|stopping|start|starting|skip|skipping|change|changing|adjust|adjusting|increase|decrease|"
                r"reduce|lower|raise|double|halve|come off|go off|quit) (?:taking |using )?(?:your |the |any |some |"
                r"a |an |more |less |extra )?(?:medications?|meds|medicines?|pills|tablets|prescriptions?|doses?|"
                r"dosage|insulin|antidepressants?|inhaler|painkillers?)\b",
                rf"\b(?:take|taking|try|trying|use|using|pop|have) (?:an? |some |two |2 |one |1 )?(?:{_MEDICINES})\b",
                r"\bdiagnos\w*",
                r"\byou (?:probably |likely |might |may |could |must )?(?:have|have got|are suffering from|"
                r"suffer from) (?:an? )?(?:\w+ )?(?:depression|anxiety disorder|adhd|diabetes|infection|disorder|"
                r"syndrome|deficiency|insomnia|hypertension|disease|concussion|fracture|tendonitis)\b",
            ),
        ),
        (
            "diet_advice",
            (
                r"\b(?:fasting|intermittent fast\w*|water fast|juice fast|omad|one meal a day)\b",
                r"\bfast (?:for|until) (?:[0-9]+|an?|one|two|three|twelve|sixteen|\w+teen) (?:hours?|days?)\b",
                r"\b(?:16|18|20) ?: ?(?:8|6|4)\b|\b5 ?: ?2 diet\b",
                r"\b(?:cut|cutting|cuts|reduce|reducing|limit|limiting|avoid|avoiding|skip|skipping|drop|dropping|"
                r"ditch|ditching|eliminate|eliminating|fewer|less|lower) (?:out |back on |down on |down |back )?"
                r"(?:your |the |all |some )?(?:carbs|carbohydrates|calories|fats?|gluten|dairy)\b",
                r"\b(?:low|no|zero) ?-?(?:carbs?|fat)\b|\b(?:keto|ketogenic|paleo|atkins|whole ?30|weight watchers|"
                r"slimming world|south beach)\b|\b(?:juice|detox|body|liver|sugar) (?:cleanse|detox)\b|"
                r"\bdetox (?:diet|teas?|juices?|plan|drinks?)\b",
                r"\b(?:count|counting|track|tracking|log|logging|restrict|restricting|watch|watching|burn off) "
                r"(?:your |the |all )?(?:calories|cals|kcals?|macros)\b|\bcalorie (?:counting|deficit|intake|target|"
                r"goal|budget|limit|restriction|tracking|counter)\b|\bcaloric deficit\b|\bfewer calories\b",
                r"\b(?:skip|skipping|skipped|miss|missing|cut out|drop|dropping|go without|forgo) (?:a |your |the |"
                r"one |some )?(?:meals?|breakfast|lunch|dinner|supper|snacks?)\b",
                r"\b(?:do not|don't|dont|never|stop|avoid|no) eat(?:ing)? (?:after|before|past|between|until|anything)"
                r"\b",
                r"\b(?:go|going|get|getting|start|starting|try|trying|follow|following|stick to|sticking to|begin|on) "
                r"(?:on )?(?:a|the|this|that|an) (?:\w+ )?diet\b(?! (?:soda|coke|pop|drinks?|pepsi|sprite|cola))",
                r"\b(?:dieting|diet plans?|crash diet|fad diet)\b|\bweigh (?:yourself|in)\b",
            ),
        ),
    )
)


def check_coach_output(text: str) -> list[str]:
    """Why a text the LLM wrote may not go out (`link`, `calories_or_weight_numbers`, `medical_advice`,
    `diet_advice`), in that order; an empty list when it may."""
    read = unicodedata.normalize("NFKC", text).casefold().translate(_OUTPUT_CHARACTERS)
    return [reason for reason, pattern in _OUTPUT_CHECKS if pattern.search(read)]
