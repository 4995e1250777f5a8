"""Whether a short answer means something: not a refusal, a question back, filler or keyboard mashing.

Intake stores what people text as their habit, their reason and their routine, and texts it back to them
every day, so "no", "what do you mean?" or "xkcd qwpoe zzz" must not pass for an answer. The reading is
plain and deterministic: the words are looked up in a few small sets, and a word none of them knows is
judged by its letters (vowels, runs, letter pairs English rarely writes), once each, so the time taken grows
with the text. A real word in another script is not judged: what cannot be read here is not called noise.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

from coach.domain.sms_text import read_prefix


class NonAnswer(StrEnum):
    """Why a text answers nothing."""

    REFUSAL = "refusal"  # "no", "nothing", "idk", "whatever", "up to you"
    QUESTION = "question"  # "what do you mean?", "why?", "like what?"
    FILLER = "filler"  # "ok", "lol", "hmm", "thanks": words that carry no answer
    GIBBERISH = "gibberish"  # no real words: "asdfgh", "xkcd qwpoe zzz", "???", a lone emoji


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no answer wherever they stand; they are set aside before the rest is read.
_FILLERS = _words(
    "um uh hm hmm er erm eh ah oh ooh lol lmao haha hahaha hehe ok okay k kk yes yeah yep yup ya sure please "
    "pls plz thanks thx tbh honestly well hi hey hello yo test testing blah meh ugh"
)
# Words of function, not of content: an answer needs at least one word beside them.
_FUNCTION = _words(
    "a an the to of in on at for with by from into about as and or but so if than then i im me my mine myself "
    "you your yours we us our it its is am are was were be been being do does did doing have has had will "
    "would can could should shall may might must this that these those there here very just too also some "
    "any all each every more most less much many such own same other after before while during once up down "
    "out off over under again not no"
)
# A refusal is made of these words only, with at least one of the cues among them.
_REFUSAL_CUES = _words(
    "no nope nah nay none nothing nada nil zilch not idk dunno dno idc dont doesnt whatever whatevs anything "
    "any anytime whenever maybe unsure pass skip na n nvm neither depends knows up choose pick decide surprise"
)
_REFUSAL_WORDS = _REFUSAL_CUES | _words(
    "i im me my you your it its is that thats this to of the a really sure know who idea clue care matter want "
    "wanna say tell telling rather prefer would will do comment business thank at all much yet now right today "
    "for one ones them those these answer preference reason particular "
    "specific in mind can cant think else fine good works time either way just later sorry"
)
# A question back is made of these words only, with a question mark or one of the cues among them.
_QUESTION_CUES = _words(
    "what whats why how which huh pardon mean meaning meant understand explain example examples eg confused "
    "options choices suggest suggestions"
)
_ASKING = _words(
    "who whos when where like such instance option choice give say again come tell ideas suggestion kind sort "
    "type types supposed question exactly try other"
)
_QUESTION_WORDS = _QUESTION_CUES | _ASKING | _REFUSAL_WORDS | _FUNCTION

# Letter pairs that English words rarely write and hands on a keyboard often do. A word of five letters or
# more may have one ("wisdom", "handful"); more than a quarter of a word's pairs marks it as noise.
_RARE_PAIRS = _words(
    "bc bn bq bx bz cb cf cg cj cp cv cw cx cz df dq dx dz fb fc fd fg fh fj fk fm fn fp fq fv fw fx fz "
    "gc gf gj gk gq gv gx gz hc hg hj hk hq hv hx hz jb jc jd jf jg jh jj jk jl jm jn jp jq jr js jt jv jw "
    "jx jz kj kq kv kx kz lj lq lx mj mq mv mx mz pj pq pv px pz qa qb qc qd qe qf qg qh qi qj qk ql qm qn "
    "qo qp qq qr qs qt qv qw qx qy qz rx sd sj sx tq vb vc vd vf vg vh vj vk vm vn vp vq vt vw vx vz wb wc "
    "wg wj wm wp wq wv wx wz xd xf xg xj xk xn xq xs xv xw xz yj yq yx yy zb zc zd zf zg zj zk zm zn zp zq "
    "zr zs zt zv zw zx"
)
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_KEYBOARD_WALKS = (*_KEYBOARD_ROWS, *(row[::-1] for row in _KEYBOARD_ROWS))
_KNOWN = _QUESTION_WORDS | _FILLERS
_SHORT_WORDS = _words("tv pc hr hrs txt msg bf gf dr mr mrs ms pm am u ur r n b")  # real, without a vowel
_VOWELS = frozenset("aeiouy")
_LONGEST_WORD = 24
_MOST_CONSONANTS = 5  # in a row: "strengths"; "sdfghj" has six
_MOST_VOWELS = 5  # in a row: "queueing"
_TOKEN = re.compile(r"[^\W_]+")
_RUN_OF_THREE = re.compile(r"(.)\1{2,}")
_LAUGH = re.compile(r"(?:[hj][aeiou]){2,}h?|l+o+l+|lmf?ao+|x+d+")


def non_answer(text: str) -> NonAnswer | None:
    """Why `text` answers nothing, or None when it means something ("walking", "after coffee", "energy")."""
    text = read_prefix(text)
    tokens = _TOKEN.findall(text.lower().replace("'", "").replace("\u2019", ""))
    if not tokens:
        return NonAnswer.GIBBERISH
    content = [t for t in tokens if _spelled(t) not in _FILLERS and not _LAUGH.fullmatch(t)]
    if not content:
        return NonAnswer.FILLER
    said = {_spelled(t) for t in content}
    if said <= _QUESTION_WORDS and (said & _QUESTION_CUES or ("?" in text and not said & _REFUSAL_CUES)):
        return NonAnswer.QUESTION
    if said <= _REFUSAL_WORDS | _FUNCTION and said & _REFUSAL_CUES:
        return NonAnswer.REFUSAL
    if said <= _QUESTION_WORDS:
        return NonAnswer.QUESTION if "?" in text else NonAnswer.FILLER
    return None if _has_real_words(content) else NonAnswer.GIBBERISH


def _spelled(token: str) -> str:
    """`token` as the word it stretches: "nooo" is "no", "hmmm" is "hm" ("zzz" stays, a letter is no word)."""
    squeezed = _RUN_OF_THREE.sub(r"\1", token)
    return squeezed if len(squeezed) > 1 else token


def _has_real_words(tokens: list[str]) -> bool:
    """At least half the words read as words, and one of those carries content. Numbers are not judged."""
    letters = [t for t in tokens if not any(c.isdigit() for c in t)]
    if not letters:
        return False
    real = [t for t in letters if _reads_as_a_word(t)]
    return 2 * len(real) >= len(letters) and any(_spelled(t) not in _FUNCTION for t in real)


def _reads_as_a_word(token: str) -> bool:
    word = "".join(c for c in unicodedata.normalize("NFKD", token) if not unicodedata.combining(c))
    if not word.isascii():
        return True  # another script: not for these rules to judge
    if word in _SHORT_WORDS or _spelled(word) in _KNOWN:
        return True
    if len(word) < 2 or len(word) > _LONGEST_WORD or not _VOWELS & set(word):
        return False
    if len(word) >= 4 and any(word in walk for walk in _KEYBOARD_WALKS):
        return False
    pairs = [word[i : i + 2] for i in range(len(word) - 1)]
    rare = sum(pair in _RARE_PAIRS for pair in pairs)
    return 4 * rare <= len(pairs) and _runs_are_pronounceable(word)


def _runs_are_pronounceable(word: str) -> bool:
    """No letter three times in a row, no more than five consonants or five vowels in a row."""
    same = consonants = vowels = 0
    for i, char in enumerate(word):
        same = same + 1 if i and char == word[i - 1] else 1
        is_vowel = char in _VOWELS
        vowels = vowels + 1 if is_vowel else 0
        consonants = 0 if is_vowel else consonants + 1
        if same >= 3 or consonants > _MOST_CONSONANTS or vowels > _MOST_VOWELS:
            return False
    return True
