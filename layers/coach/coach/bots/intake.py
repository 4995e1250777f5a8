"""The intake module: consent, then the habit profile, one question at a time.

An answer is read against the question it answers ("7am" to "when?"), and also searched for anything
else it happens to tell ("I want to move more, mornings after my coffee"), so nothing is asked twice.
Only an answer that means something is kept (coach.domain.meaningful): "no", "what do you mean?" or
"xkcd qwpoe zzz" are asked again in other words, then with choices to pick from, then given a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from coach.bots.prompt_generator import (
    DOMAINS,
    PHYSICAL_ACTIVITY,
    HabitPrompt,
    MissingFields,
    canonical_domain,
    deliver_habit_prompt,
    generate_habit_prompt,
)
from coach.bots.turn import TurnContext
from coach.domain.flow import SubState
from coach.domain.meaningful import NonAnswer, non_answer
from coach.domain.sms_text import read_prefix
from coach.domain.times import anchor_from_answer, parse_anchor, parse_time, parse_time_beside_anchor, time_for_people

INTAKE_FIELDS = ("habit_domain", "motivation", "preferred_time", "prompt_anchor", "additional_info")
CONSENT = "consent"
# The first answer that means nothing is asked again in other words, the second with choices to pick from;
# the third gets a sensible default, so intake always ends.
MAX_VAGUE_ANSWERS = 2
DEFAULT_DOMAIN = PHYSICAL_ACTIVITY
DEFAULT_MOTIVATION = "feel a little better each day"
DEFAULT_TIME = "09:00"
DEFAULT_ANCHOR = "after brushing my teeth"
_DEFAULTS = {
    "habit_domain": (DEFAULT_DOMAIN, "Let's start with a little physical activity; you can change it any time."),
    "motivation": (DEFAULT_MOTIVATION, "That's fine, let's keep it simple."),
    "preferred_time": (DEFAULT_TIME, "No problem, I'll pencil in 9am; you can change it any time."),
    "prompt_anchor": (DEFAULT_ANCHOR, "Let's try it after you brush your teeth; you can change that any time."),
}

QUESTIONS = {
    "habit_domain": "Which habit would you like to build? 1) healthy eating 2) physical activity "
    "3) mental well-being 4) less screen time - or tell me your own.",
    "motivation": "Why does this matter to you right now?",
    "preferred_time": "What time of day would you like your daily nudge? e.g. 7:30am, 19:00 or 'evenings'.",
    "prompt_anchor": "What do you already do every day that this could follow? e.g. 'after my morning coffee'.",
    "additional_info": "Anything else that would help me tailor it, like limited time or an injury? "
    "Or just reply 'no'.",
}
ASK_AGAIN = {
    CONSENT: "Sorry, I didn't catch that. Reply YES to start or NO if you'd rather not take part.",
    "habit_domain": "No problem, let's find one: what's a small thing you'd like to do more (or less) of each "
    "day? Like eating more fruit, walking, relaxing or less phone time.",
    "motivation": "Even a few words help: what would be better in your life with this habit?",
    "preferred_time": "Roughly what time suits you? e.g. 8am, 12:30 or 'evenings'.",
    "prompt_anchor": "Think of a daily routine, like brushing your teeth or making coffee: which could it follow?",
}


@dataclass(frozen=True)
class Choice:
    label: str  # as offered: "more energy"
    value: str  # as the profile keeps it, to read after "it helps you" or to start the prompt
    names: re.Pattern[str]  # what names it in a few words: "energy", "the coffee one"


MOTIVATION_CHOICES = (
    Choice("more energy", "have more energy", re.compile(r"\b(?:energy|energetic|tired)\b", re.I)),
    Choice("better sleep", "sleep better", re.compile(r"\b(?:sleep\w*|rest)\b", re.I)),
    Choice("less stress", "feel less stressed", re.compile(r"\b(?:stress\w*|calm\w*|relax\w*)\b", re.I)),
)
ANCHOR_CHOICES = (
    Choice("after your morning coffee", "after my morning coffee", re.compile(r"\bcoffee\b", re.I)),
    Choice("after brushing your teeth", "after brushing my teeth", re.compile(r"\b(?:teeth|tooth|brush\w*)\b", re.I)),
    Choice("after lunch", "after lunch", re.compile(r"\blunch\w*", re.I)),
)
_CHOICES = {"motivation": MOTIVATION_CHOICES, "prompt_anchor": ANCHOR_CHOICES}
_FEW_WORDS = 3  # an answer this short that names one choice picks it; a longer one is the person's own words


def _offer(lead: str, labels: tuple[str, ...]) -> str:
    return f"{lead} " + " ".join(f"{n}) {label}" for n, label in enumerate(labels, 1))


OFFER_CHOICES = {
    "habit_domain": _offer("Let's make it easy: reply with a number, or name one.", DOMAINS),
    "motivation": _offer(
        "Here are reasons people often give. Reply with a number, or in your own words:",
        tuple(choice.label for choice in MOTIVATION_CHOICES),
    ),
    "preferred_time": "Any time of day works, just name one: e.g. 'mornings', 'lunchtime', '6pm' or 'before bed'.",
    "prompt_anchor": _offer(
        "Here are routines that work well. Reply with a number, or name your own:",
        tuple(choice.label for choice in ANCHOR_CHOICES),
    ),
}
_NUMBERS = {
    **dict.fromkeys(("1", "one", "first", "1st"), 1),
    **dict.fromkeys(("2", "two", "second", "2nd"), 2),
    **dict.fromkeys(("3", "three", "third", "3rd"), 3),
    **dict.fromkeys(("4", "four", "fourth", "4th"), 4),
}
# Words around a picked number: "I'll go for the second one please", "option 2", "#2".
_AROUND_A_NUMBER = frozenset(
    {"the", "number", "no", "nr", "option", "choice", "one", "please", "pls", "ok", "okay", "thanks", "i", "ll"}
    | {"pick", "choose", "take", "go", "for", "with", "lets", "do"}
)

_YES = re.compile(
    r"^\W*(?:yes|y|yeah|yep|yup|sure|ok|okay|ready|let'?s go|let'?s do it|go|start|absolutely|"
    r"of course|definitely|i'?m in|sounds good|why not)\b",
    re.I,
)
_NO = re.compile(
    r"^\W*(?:no|n|nope|nah|no thanks|no thank you|not interested|i'?m not interested|"
    r"i don'?t want to|i do not want to|i'?d rather not|please don'?t)\b(?!\s+(?:worries|problem))",
    re.I,
)
_REASON_LEAD = re.compile(
    r"^(?:because|so that i can|so that|so i can|so|i want to|i'?d like to|i need to|to)\s+", re.I
)
_MOTIVATION = re.compile(
    r"\b(?:because|so that|so i can|so i|to feel|to be|to have|to get|want to feel|want to be|want to have)\s+"
    r"(?P<reason>[^.;!?\n]+)",
    re.I,
)


def is_yes(text: str) -> bool:
    text = read_prefix(text)
    return bool(_YES.search(text)) and not _NO.search(text)


def is_no(text: str) -> bool:
    return bool(_NO.search(read_prefix(text)))


def is_vague(text: str) -> bool:
    """Whether `text` gives no answer: it declines or dodges ("no", "idk", "hmm"), or has no letter or digit."""
    text = read_prefix(text)
    return not re.search(r"[A-Za-z0-9]", text) or non_answer(text) in (NonAnswer.REFUSAL, NonAnswer.FILLER)


def missing_intake_fields(ctx: TurnContext) -> list[str]:
    return [f for f in INTAKE_FIELDS if not getattr(ctx.profile, f)]


def _clean(text: str, limit: int = 120) -> str:
    return " ".join(text.split()).strip(" .!")[:limit]


def _meant(value: str | None) -> str | None:
    """`value`, when it means something."""
    return value if value and non_answer(value) is None else None


def _picked(text: str, count: int) -> int | None:
    """The number of the choice `text` picks, 1 to `count` ("2", "#2", "the second one"), or None."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    named = [w for w in words if w not in _AROUND_A_NUMBER] or [w for w in words if w == "one"]
    number = _NUMBERS.get(named[0]) if len(named) == 1 else None
    return number if number is not None and number <= count else None


def _chosen(text: str, choices: tuple[Choice, ...]) -> Choice | None:
    """The choice `text` picks: by its number, or by its name in a few words ("coffee", "the sleep one")."""
    if (number := _picked(text, len(choices))) is not None:
        return choices[number - 1]
    if len(text.split()) > _FEW_WORDS or parse_anchor(text):  # a routine of their own, said in full
        return None
    named = [choice for choice in choices if choice.names.search(text)]
    return named[0] if len(named) == 1 else None


def _answer_to(question: str, text: str, *, offered: bool) -> str | None:
    """What `text` answers to `question`, or None when it means nothing to go on. `offered`: the question
    came with numbered choices, so a number or a choice's name picks one."""
    if question == "preferred_time":
        return parse_time(text)
    if question == "additional_info":  # here "no" is an answer: nothing to add
        return "none" if is_vague(text) or non_answer(text) is NonAnswer.GIBBERISH else _clean(text, 200)
    if question == "habit_domain":  # the question itself numbers the domains
        if (number := _picked(text, len(DOMAINS))) is not None:
            return DOMAINS[number - 1]
        return canonical_domain(text) or _meant(_clean(text, 80))
    choices = _CHOICES.get(question)
    if choices is None:
        return None
    if offered and (choice := _chosen(text, choices)) is not None:
        return choice.value
    if non_answer(text) is not None:
        return None
    if question == "motivation":
        return _REASON_LEAD.sub("", _clean(text)) or None
    return anchor_from_answer(text)


def _volunteered(text: str) -> dict[str, str | None]:
    """What a text tells beyond the question it answers."""
    reason = _MOTIVATION.search(text)
    return {
        "habit_domain": canonical_domain(text),
        "preferred_time": parse_time_beside_anchor(text),
        "prompt_anchor": _meant(parse_anchor(text)),
        "motivation": _meant(_clean(reason.group("reason"))) if reason else None,
    }


def _fill_missing(ctx: TurnContext, values: dict[str, str | None]) -> list[str]:
    """Set only fields intake has not filled yet: a passing mention must not overwrite an answer."""
    return ctx.update_profile({k: v for k, v in values.items() if v and not getattr(ctx.profile, k)})


def _asking_again(question: str, vague_answers: int) -> str:
    """Other words after the first answer that meant nothing, choices to pick from after the second."""
    return ASK_AGAIN[question] if vague_answers < MAX_VAGUE_ANSWERS else OFFER_CHOICES[question]


@dataclass(frozen=True)
class IntakeReading:
    ask_again: str | None = None  # the answer meant nothing to go on: send this instead of the next question
    note: str | None = None  # say this before the next question (a default we chose for them)


def read_intake_answer(ctx: TurnContext, text: str) -> IntakeReading:
    """Store what `text` answers and volunteers; say how to go on."""
    text = read_prefix(text)
    question = ctx.flow.intake_question
    note = None
    if question in INTAKE_FIELDS and question is not None:
        offered = ctx.flow.intake_retries >= MAX_VAGUE_ANSWERS
        answer = _answer_to(question, text, offered=offered)
        if answer is None and offered:
            answer, note = _DEFAULTS[question]
            ctx.record("intake_default_used", question=question, value=answer)
        if answer is not None:
            ctx.update_profile({question: answer})
            ctx.flow.intake_retries = 0
    _fill_missing(ctx, _volunteered(text))
    if question in ASK_AGAIN and question in INTAKE_FIELDS and not getattr(ctx.profile, question):
        ctx.flow.intake_retries += 1
        reason = non_answer(text)
        ctx.record(
            "intake_vague_answer",
            question=question,
            retries=ctx.flow.intake_retries,
            reason=reason.value if reason is not None else "not_understood",
        )
        return IntakeReading(ask_again=_asking_again(question, ctx.flow.intake_retries))
    return IntakeReading(note=note)


def next_intake_step(ctx: TurnContext) -> list[str]:
    """The next question, or, with the profile complete, the first habit prompt and the daily schedule."""
    missing = missing_intake_fields(ctx)
    if missing:
        if ctx.flow.intake_question != missing[0]:
            ctx.flow.intake_question, ctx.flow.intake_retries = missing[0], 0
        return [QUESTIONS[missing[0]]]
    return complete_intake(ctx)


def complete_intake(ctx: TurnContext) -> list[str]:
    prompt = generate_habit_prompt(ctx.profile, ctx.rng, ctx.flow.last_habit_prompt)
    if isinstance(prompt, MissingFields):  # a required field was cleared meanwhile: ask for it
        ctx.flow.intake_question = prompt.fields[0]
        return [QUESTIONS[prompt.fields[0]]]
    return finish_intake(ctx, prompt)


def finish_intake(ctx: TurnContext, prompt: HabitPrompt) -> list[str]:
    hhmm = ctx.profile.preferred_time or DEFAULT_TIME
    ctx.flow.intake_question = None
    ctx.flow.intake_retries = 0
    ctx.schedule_daily(hhmm)
    deliver_habit_prompt(ctx, prompt, occasion="intake_complete")
    ctx.flow.offered_try_now = True
    ctx.move_to(SubState.FEEDBACK)
    ctx.record("intake_completed", fields=list(INTAKE_FIELDS))
    # The schedule's first firing is today when the chosen time is still ahead in the person's own day.
    local = ctx.now.astimezone(ZoneInfo(ctx.participant.timezone))
    first = "today" if local.strftime("%H:%M") < hhmm else "tomorrow"
    return [
        f"Thanks, that's all I need! Here's your tiny habit: {prompt.text}",
        f"Want to try the 1-minute version right now? I'll text you daily at {time_for_people(hhmm)}, "
        f"starting {first}.",
    ]
