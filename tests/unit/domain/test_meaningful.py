"""Whether a short answer means something (coach.domain.meaningful): refusals, questions back, filler and
keyboard mashing are told from real answers, short ones included, by plain rules with examples."""

from __future__ import annotations

import pytest

from coach.domain.meaningful import NonAnswer, non_answer
from coach.domain.sms_text import READ_CHARS

REFUSAL, QUESTION, FILLER, GIBBERISH = NonAnswer.REFUSAL, NonAnswer.QUESTION, NonAnswer.FILLER, NonAnswer.GIBBERISH

EXAMPLES: list[tuple[str, NonAnswer | None]] = [
    # refusals: no answer to give, or none the person wants to give
    ("no", REFUSAL),
    ("No.", REFUSAL),
    ("Nooo", REFUSAL),
    ("nope", REFUSAL),
    ("nah", REFUSAL),
    ("idk", REFUSAL),
    ("IDK lol", REFUSAL),
    ("dunno", REFUSAL),
    ("nothing", REFUSAL),
    ("nothing really", REFUSAL),
    ("none", REFUSAL),
    ("none of them", REFUSAL),
    ("I don't know", REFUSAL),
    ("i dont know", REFUSAL),
    ("I don\u2019t know", REFUSAL),
    ("whatever", REFUSAL),
    ("not sure", REFUSAL),
    ("not really", REFUSAL),
    ("no idea", REFUSAL),
    ("maybe", REFUSAL),
    ("any time", REFUSAL),
    ("up to you", REFUSAL),
    ("you choose", REFUSAL),
    ("doesn't matter", REFUSAL),
    ("rather not say", REFUSAL),
    ("n/a", REFUSAL),
    ("tbh idk", REFUSAL),
    # questions back
    ("what do you mean?", QUESTION),
    ("What do you mean", QUESTION),
    ("why?", QUESTION),
    ("like what?", QUESTION),
    ("what?", QUESTION),
    ("huh", QUESTION),
    ("such as?", QUESTION),
    ("sorry?", QUESTION),
    ("I don't understand", QUESTION),
    ("idk what you mean", QUESTION),
    ("can you give me an example?", QUESTION),
    ("what are my options?", QUESTION),
    ("is that ok?", QUESTION),
    # filler: words that carry no answer
    ("ok", FILLER),
    ("okkk", FILLER),
    ("hmmm", FILLER),
    ("lol", FILLER),
    ("hahaha", FILLER),
    ("yes please", FILLER),
    ("thank you", FILLER),
    ("to be", FILLER),
    ("the", FILLER),
    # gibberish: no real words
    ("xkcd qwpoe zzz", GIBBERISH),
    ("asdfgh", GIBBERISH),
    ("asdf jkl", GIBBERISH),
    ("qwertyuiop", GIBBERISH),
    ("fjdksla", GIBBERISH),
    ("ajsjsjs", GIBBERISH),
    ("aaaa", GIBBERISH),
    ("jk", GIBBERISH),
    ("???", GIBBERISH),
    ("...", GIBBERISH),
    ("?", GIBBERISH),
    ("", GIBBERISH),
    ("🤷", GIBBERISH),
    ("👍👍", GIBBERISH),
    ("7", GIBBERISH),
    ("after xkcd", GIBBERISH),
    # answers, short and long
    ("walking", None),
    ("sleep", None),
    ("energy", None),
    ("after coffee", None),
    ("yoga", None),
    ("gym", None),
    ("less tv", None),
    ("café", None),
    ("10k steps", None),
    ("yoga 🧘", None),
    ("asdf walking", None),
    ("maybe walking?", None),
    ("how about walking?", None),
    ("no more back pain", None),
    ("no, but my knee hurts", None),
    ("to have more energy", None),
    ("after my morning coffee", None),
    ("physical activity", None),
    ("when I get home from work", None),
    ("I want to feel less tired when I play with my kids", None),
    ("drink less alcohol on Wednesdays", None),
    ("learn guitar", None),
    ("мир", None),  # another script: not judged by rules made for English
]


@pytest.mark.parametrize(("text", "expected"), EXAMPLES)
def test_a_text_reads_as_an_answer_or_says_why_not(text: str, expected: NonAnswer | None) -> None:
    # Given a text sent as the answer to an intake question
    # When it is read
    found = non_answer(text)

    # Then it is an answer, or the reason it is not
    assert found is expected


def listed(words: str) -> list[str]:
    return words.split()


REAL_WORDS = listed(
    "walking running stretching meditation journaling breathing swimming cycling knitting gardening cooking "
    "water fruit vegetables breakfast lunch dinner shower teeth coffee tea phone screen stress anxiety calm "
    "tuesday wednesday thursday handful wisdom strength strengths rhythm quickly weekly always halfway "
    "technology strategy lucky heavy acquire vacuum environment obvious cowboy backpack neighbour queueing "
    "beautiful jazz pizza puzzle lazy quiz queen squat aqua xmas xbox grandkids diabetes knee"
)


@pytest.mark.parametrize("word", REAL_WORDS)
def test_real_words_with_unusual_letters_are_answers(word: str) -> None:
    # Given a word with a rare letter pair, a long consonant run or a doubled letter: When read, Then an answer
    assert non_answer(word) is None


MASHING = listed("xkcd qwpoe sdfsdf dhfjdj aksjdhfk alskdjf lkjlkj zxcvbnm poiuy ghfjdk fghj bnm abc qwe oiuoiu")


@pytest.mark.parametrize("mash", MASHING)
def test_keyboard_mashing_is_gibberish(mash: str) -> None:
    # Given keys pressed at random or along a row: When read, Then no real words
    assert non_answer(mash) is GIBBERISH


@pytest.mark.parametrize("run", ["?", "no ", "idk what ", "qw", "a", "walking ", "after ", "🎉", "hm"])
def test_a_long_text_reads_as_its_bounded_prefix(run: str) -> None:
    # Given a run repeated to 16,000 characters
    text = (run * (16_000 // len(run) + 1))[:16_000]

    # When it is read, Then it says what it says of the first characters it reads
    assert non_answer(text) is non_answer(text[:READ_CHARS])
