"""The offline coach: scripted and deterministic, it runs the same modules as the LLM coach.

It answers whenever no LLM is configured and whenever the LLM fails, so every participant always gets a
sensible reply: consent, intake questions, MAP prompts from templates, whole-word feedback reading.
"""

from __future__ import annotations

import re

from coach.bots.feedback_tracker import track_feedback
from coach.bots.intake import (
    CONSENT,
    QUESTIONS,
    is_no,
    is_yes,
    next_intake_step,
    read_intake_answer,
)
from coach.bots.prompt_generator import MissingFields, deliver_habit_prompt, generate_habit_prompt
from coach.bots.turn import TurnContext
from coach.domain.feedback import FeedbackKind, classify_feedback
from coach.domain.flow import SubState
from coach.domain.sms_text import read_prefix
from coach.domain.study_texts import DEFAULT_CONSENT_TEXTS, ConsentTexts
from coach.domain.times import time_for_people
from coach.domain.tone import requested_tone_tags, without_tone_requests

DECLINED = "No problem, thanks for letting me know. I won't text you again. Take care!"
TONE_NOTED = "Got it, I'll keep that in mind."
ASK_FOR_FEEDBACK = (
    "Thanks! How did today's habit go: done, tried or skipped? You can also change the time, e.g. 'evenings'."
)
ATTEMPTED_REPLY = "Trying counts, well done for starting! Tomorrow even 30 seconds is a win. What got in the way?"
SKIPPED_REPLY = (
    "Thanks for telling me, some days are like that. Tomorrow's a fresh start. Want it smaller, or at another time?"
)
REJECTED_REPLY = (
    "Fair enough, it has to suit you. What would feel more doable: another action, time or routine to follow?"
)
REMINDER = "Quick check-in: did you get a chance to try today's habit? Reply done, tried or skipped."
_ASKS_FOR_PROMPT = re.compile(
    r"\b(?:new|another|different|next)\s+(?:habit|prompt|idea|one|suggestion)\b|\bsomething else\b|"
    r"\bwhat should i do\b|\bsend (?:me )?(?:my|the|a) (?:habit|prompt|nudge)\b",
    re.I,
)
_NOT_NOW = re.compile(r"\b(?:not now|not yet|later|not today|tomorrow)\b", re.I)
_DID_SOMETHING = re.compile(r"\b(?:did|done|finished|completed|tried|managed)\b", re.I)


def greeting(ctx: TurnContext, texts: ConsentTexts = DEFAULT_CONSENT_TEXTS) -> list[str]:
    """The first message after enrollment: the study's name, a yes/no for consent, and STOP and HELP."""
    first_name = next(iter((ctx.participant.name or "").split()), None)
    ctx.flow.intake_question = CONSENT
    ctx.flow.intake_retries = 0
    return [texts.greeting_to(first_name)]


def answer_consent(ctx: TurnContext, text: str, texts: ConsentTexts = DEFAULT_CONSENT_TEXTS) -> list[str]:
    """Consent is a research-ethics gate, so it is always read by these rules, never by an LLM."""
    if is_no(text):
        ctx.flow.consent = False
        ctx.flow.intake_question = None
        ctx.record("consent_declined")
        return [DECLINED]
    if is_yes(text):
        ctx.flow.consent = True
        ctx.flow.intake_question = None
        ctx.record("consent_given")
        read_intake_answer(ctx, text)  # "yes! I want to move more" already names the habit
        return ["Great, let's begin!", *next_intake_step(ctx)]
    ctx.flow.intake_retries += 1
    return [texts.explanation]


def offline_reply(ctx: TurnContext, text: str) -> list[str]:
    """The reply to a participant who has consented."""
    if ctx.flow.sub_state is SubState.INTAKE:
        if ctx.flow.intake_question is None:
            return next_intake_step(ctx)
        reading = read_intake_answer(ctx, text)
        if reading.ask_again:
            return [reading.ask_again]
        following = next_intake_step(ctx)
        return [f"{reading.note} {following[0]}", *following[1:]] if reading.note else following
    return _feedback_reply(ctx, text)


def habit_prompt_now(ctx: TurnContext, *, occasion: str, lead: str = "", new_habit: bool = False) -> list[str]:
    """The agreed habit's MAP prompt (a new habit with `new_habit`), or, when the profile lacks what it needs,
    back to intake to ask for it."""
    prompt = generate_habit_prompt(ctx.profile, ctx.rng, ctx.flow.last_habit_prompt, new_habit=new_habit)
    if isinstance(prompt, MissingFields):
        return ask_for_missing(ctx, prompt.fields, occasion=occasion)
    deliver_habit_prompt(ctx, prompt, occasion=occasion)
    return [f"{lead}{prompt.text}"]


def ask_for_missing(ctx: TurnContext, fields: tuple[str, ...], *, occasion: str) -> list[str]:
    """The repair path: no prompt can be written without these, so back to intake with a question for the
    first, instead of silence."""
    ctx.record("habit_prompt_missing_fields", occasion=occasion, missing=list(fields))
    ctx.move_to(SubState.INTAKE)
    ctx.flow.intake_question, ctx.flow.intake_retries = fields[0], 0
    return [f"Before your next habit I need one more thing. {QUESTIONS[fields[0]]}"]


def _try_now_answer(ctx: TurnContext, text: str) -> list[str] | None:
    """An answer to "want to try it now?" that is not yet feedback on the habit itself."""
    if _DID_SOMETHING.search(text):
        return None
    if is_yes(text):
        return ["Great, go for it now! Text me 'done' when you have, or tell me how it went."]
    if is_no(text) or _NOT_NOW.search(text):
        when = time_for_people(ctx.profile.preferred_time) if ctx.profile.preferred_time else "your chosen time"
        return [f"No problem! I'll nudge you tomorrow at {when}."]
    return None


def _feedback_reply(ctx: TurnContext, said: str) -> list[str]:
    # One line once the tone requests are out: every cue below reads the prefix that classification reads.
    text = read_prefix(without_tone_requests(said))
    if not text and requested_tone_tags(said):
        return [TONE_NOTED]  # the engine applied the request; the try-now offer still stands
    offered, ctx.flow.offered_try_now = ctx.flow.offered_try_now, False
    if offered and (answer := _try_now_answer(ctx, text)):
        return answer
    if _ASKS_FOR_PROMPT.search(text):
        return habit_prompt_now(ctx, occasion="participant_asked", lead="Here's one: ", new_habit=True)
    feedback = classify_feedback(text)
    if feedback is None:
        return [ASK_FOR_FEEDBACK]
    outcome = track_feedback(ctx, feedback)
    if outcome.kind is FeedbackKind.COMPLETED:
        cheer = " \U0001f389" if ctx.flow.tone.emojis_allowed else ""
        count = ctx.profile.success_count
        return [f"Nice work!{cheer} That's {count} {'time' if count == 1 else 'times'} so far. See you tomorrow."]
    if outcome.kind is FeedbackKind.ATTEMPTED:
        return [ATTEMPTED_REPLY]
    if outcome.kind is FeedbackKind.SKIPPED:
        return [SKIPPED_REPLY]
    if outcome.kind is FeedbackKind.REJECTED:
        return [REJECTED_REPLY]
    return _modified_reply(ctx, outcome.new_time, anchor_changed="prompt_anchor" in outcome.changed)


def _modified_reply(ctx: TurnContext, new_time: str | None, *, anchor_changed: bool) -> list[str]:
    replies = []
    if new_time:
        replies.append(f"Done, I'll text you at {time_for_people(new_time)} from now on.")
    if anchor_changed or not new_time:
        # A new anchor keeps the habit (the same 1 minute, at a new moment); any other change is a new habit
        replies += habit_prompt_now(ctx, occasion="modified", lead="New plan: ", new_habit=not anchor_changed)
    return [" ".join(replies)]
