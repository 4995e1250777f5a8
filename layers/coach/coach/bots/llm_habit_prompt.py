"""The daily habit prompt from the LLM when one is configured (the seed design's prompt generator): its own
system prompt (prompts/habit_prompt.txt) with the profile, the agreed habit and the participant's background,
one call without tools. What it writes goes out only when it holds up: it names the anchor and the agreed
habit, stays about one minute, fits the segment budget and passes the output check; else the template's prompt
goes, and the record says why (habit_prompt_fallback)."""

from __future__ import annotations

import json
import re
from string import Template

from coach.bots.llm_coach import LlmAllowance, prompt_text, tone_guide
from coach.bots.prompt_generator import HabitPrompt, content_words, second_person
from coach.bots.turn import TurnContext
from coach.domain.chat import ChatMessage, LanguageModelUnavailable
from coach.domain.safety import check_coach_output
from coach.domain.sms_text import count_segments, normalise
from coach.ports import LanguageModel

_TOO_LONG = re.compile(
    r"\b(?:[2-9]|[1-9]\d+)\s*(?:-\s*)?(?:minutes?|mins?|hours?|hrs?)\b|\b(?:an|one|1)\s+hours?\b", re.I
)


def llm_habit_prompt(
    ctx: TurnContext, llm: LanguageModel, allowance: LlmAllowance, template: HabitPrompt, segment_budget: int
) -> tuple[str, list[str]]:
    """What the LLM wrote for the agreed habit (`template.action`), and why it may not go out (empty: it may).
    Raises LanguageModelUnavailable when the model did not answer (the caller falls back and records it)."""
    messages = [
        ChatMessage(role="system", content=_system(ctx, template)),
        ChatMessage(role="user", content="Write it."),
    ]
    try:
        reply = llm.complete(messages, [], time_left=allowance.seconds())
    except LanguageModelUnavailable as exc:
        allowance.failed(exc)
        raise
    allowance.spent(reply)
    text = " ".join((reply.content or "").split())
    return text, prompt_problems(text, ctx, template, segment_budget)


def prompt_problems(text: str, ctx: TurnContext, template: HabitPrompt, segment_budget: int) -> list[str]:
    """Why `text` may not go out as the day's prompt (empty: it may)."""
    if not text:
        return ["empty"]
    problems: list[str] = []
    lowered = text.lower()
    if not _names(lowered, second_person(ctx.profile.prompt_anchor or "")):
        problems.append("anchor_missing")
    if not _names(lowered, template.action):
        problems.append("habit_missing")
    if _TOO_LONG.search(text):
        problems.append("longer_than_a_minute")
    shaped = normalise(text, emojis_allowed=ctx.flow.tone.emojis_allowed)
    if count_segments(shaped).segments > segment_budget:
        problems.append("over_segment_budget")
    problems += check_coach_output(text)
    return problems


def _names(text: str, phrase: str) -> bool:
    """Whether `text` says at least half of what `phrase` names (its content words)."""
    wanted = content_words(phrase)
    if not wanted:
        return True
    return len(wanted & content_words(text)) * 2 >= len(wanted)


def _system(ctx: TurnContext, template: HabitPrompt) -> str:
    profile = ctx.profile
    constraints = "; ".join(v for v in (profile.additional_info, profile.last_barrier, profile.last_tweak) if v)
    notes = profile.personalization_notes
    return Template(prompt_text("habit_prompt")).safe_substitute(
        domain=profile.habit_domain or "none",
        habit=template.action,
        anchor=profile.prompt_anchor or "none",
        motivation=profile.motivation or "none",
        time=profile.preferred_time or "none",
        constraints=constraints or "none",
        notes=json.dumps(notes, ensure_ascii=False) if notes else "none",
        background=ctx.flow.participant_background or ctx.participant.background_text(),
        previous=ctx.flow.last_habit_prompt or "none",
        tone_guide=tone_guide(ctx),
    )
