"""The intake module: consent, then the habit profile, one question at a time.

An answer is read against the question it answers ("7am" to "when?"), and also searched for anything
else it happens to tell ("I want to move more, mornings after my coffee"), so nothing is asked twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from coach.bots.prompt_generator import (
    DOMAINS,
    HabitPrompt,
    MissingFields,
    canonical_domain,
    deliver_habit_prompt,
    generate_habit_prompt,
)
from coach.bots.turn import TurnContext
from coach.domain.flow import SubState
from coach.domain.sms_text import read_prefix
from coach.domain.times import anchor_from_answer, parse_anchor, parse_time, parse_time_beside_anchor, time_for_people

INTAKE_FIELDS = ("habit_domain", "motivation", "preferred_time", "prompt_anchor", "additional_info")
CONSENT = "consent"
MAX_VAGUE_ANSWERS = 2  # then a sensible default, so intake always ends
DEFAULT_TIME = "09:00"
DEFAULT_ANCHOR = "after brushing my teeth"
_DEFAULTS = {
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
    "habit_domain": "No worries! Pick one: 1 eating, 2 activity, 3 well-being, 4 screen time - or name your own.",
    "motivation": "Even a few words help: what would be better in your life with this habit?",
    "preferred_time": "Roughly what time suits you? e.g. 8am, 12:30 or 'evenings'.",
    "prompt_anchor": "Think of a daily routine, like brushing your teeth or making coffee: which could it follow?",
}

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
# "?" alone is its own branch, with no "\W*" before it that could also take the question marks: written as
# "^\W*\?+\W*$", a run of them before a letter was split in every way between the three, cubic in the run.
_VAGUE = re.compile(
    r"^\W*(?:idk|dunno|not sure|unsure|maybe|whatever|anything|any ?time|whenever|hmm+|hm+|eh|"
    r"i don'?t know|no idea|depends|not really sure)\W*$|^[^\w?]*\?\W*$",
    re.I,
)
_NOTHING_ELSE = re.compile(
    r"^\W*(?:no|nope|nah|nothing|none|n/?a|that'?s (?:it|all)|all good|not really|not now)\b", re.I
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
    text = read_prefix(text)
    return not re.search(r"[A-Za-z0-9]", text) or bool(_VAGUE.search(text))


def missing_intake_fields(ctx: TurnContext) -> list[str]:
    return [f for f in INTAKE_FIELDS if not getattr(ctx.profile, f)]


def _clean(text: str, limit: int = 120) -> str:
    return " ".join(text.split()).strip(" .!")[:limit]


def _answer_to(question: str, text: str) -> str | None:
    """What `text` answers to `question`, or None when it is too vague to use."""
    if question == "habit_domain":
        if found := re.fullmatch(r"\W*([1-4])\W*", text):
            return DOMAINS[int(found.group(1)) - 1]
        return canonical_domain(text) or (None if is_vague(text) else _clean(text, 80))
    if question == "motivation":
        if is_vague(text):
            return None
        reason = _REASON_LEAD.sub("", _clean(text))
        return reason or None
    if question == "preferred_time":
        return parse_time(text)
    if question == "prompt_anchor":
        return None if is_vague(text) else anchor_from_answer(text)
    if question == "additional_info":
        return "none" if _NOTHING_ELSE.search(text) or is_vague(text) else _clean(text, 200)
    return None


def _volunteered(text: str) -> dict[str, str | None]:
    """What a text tells beyond the question it answers."""
    reason = _MOTIVATION.search(text)
    return {
        "habit_domain": canonical_domain(text),
        "preferred_time": parse_time_beside_anchor(text),
        "prompt_anchor": parse_anchor(text),
        "motivation": _clean(reason.group("reason")) if reason else None,
    }


def _fill_missing(ctx: TurnContext, values: dict[str, str | None]) -> list[str]:
    """Set only fields intake has not filled yet: a passing mention must not overwrite an answer."""
    return ctx.update_profile({k: v for k, v in values.items() if v and not getattr(ctx.profile, k)})


@dataclass(frozen=True)
class IntakeReading:
    ask_again: str | None = None  # the answer was too vague: send this instead of the next question
    note: str | None = None  # say this before the next question (a default we chose for them)


def read_intake_answer(ctx: TurnContext, text: str) -> IntakeReading:
    """Store what `text` answers and volunteers; say how to go on."""
    text = read_prefix(text)
    question = ctx.flow.intake_question
    note = None
    if question in INTAKE_FIELDS and question is not None:
        answer = _answer_to(question, text)
        if answer is None and ctx.flow.intake_retries >= MAX_VAGUE_ANSWERS:
            answer, note = _DEFAULTS.get(question, (_clean(text) or "-", None))
        if answer is not None:
            ctx.update_profile({question: answer})
            ctx.flow.intake_retries = 0
    _fill_missing(ctx, _volunteered(text))
    if question in ASK_AGAIN and question in INTAKE_FIELDS and not getattr(ctx.profile, question):
        ctx.flow.intake_retries += 1
        ctx.record("intake_vague_answer", question=question, retries=ctx.flow.intake_retries)
        return IntakeReading(ask_again=ASK_AGAIN[question])
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
