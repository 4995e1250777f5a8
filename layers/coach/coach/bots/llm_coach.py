"""The LLM coach: the model reads the conversation and acts through tools, in a bounded loop.

At most 10 rounds. Text ends the loop; tool calls run here and their results (errors included) go back
to the model; an answer with neither, or no text after 10 rounds, is unusable, and the caller lets the
offline coach answer instead. Tool calls live only in this loop: history keeps the final text.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from string import Template
from zoneinfo import ZoneInfo

from coach.bots.intake import missing_intake_fields
from coach.bots.tools import TOOL_SPECS, run_tool
from coach.bots.turn import TurnContext
from coach.domain.chat import ChatMessage, LanguageModelUnavailable
from coach.domain.flow import HISTORY_SENT_TO_LLM, SubState
from coach.ports import LanguageModel

MAX_ROUNDS = 10
DEFAULT_TONE = ("warm_supportive", "one_question_at_a_time", "default_actionable")


class NoUsableAnswer(LanguageModelUnavailable):
    """The model answered, but with neither text nor tool calls, or never with text."""


@cache
def prompt_text(name: str) -> str:
    return files("coach.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


@cache
def _tone_lines() -> dict[str, str]:
    lines = (line.split(":", 1) for line in prompt_text("tone_guide").splitlines() if ":" in line)
    return {tag.strip(): f"- {tag.strip()}:{rule}" for tag, rule in lines}


def tone_guide(ctx: TurnContext) -> str:
    tags = list(ctx.flow.tone.active) or list(DEFAULT_TONE)
    if not ctx.flow.tone.emojis_allowed and "no_emojis" not in tags:
        tags.append("no_emojis")
    return "\n".join(_tone_lines()[t] for t in tags if t in _tone_lines())


def system_prompt(ctx: TurnContext) -> str:
    flow, profile = ctx.flow, ctx.profile
    local_now = ctx.now.astimezone(ZoneInfo(ctx.participant.timezone))
    module = "intake" if flow.sub_state is SubState.INTAKE else "feedback"
    return Template(prompt_text("system")).safe_substitute(
        now_local=local_now.strftime("%A %Y-%m-%d %H:%M"),
        timezone=ctx.participant.timezone,
        sub_state=flow.sub_state.value,
        background=flow.participant_background or ctx.participant.background_text(),
        profile=json.dumps(profile.model_dump(mode="json", exclude_none=True), ensure_ascii=False),
        missing=", ".join(missing_intake_fields(ctx)) or "none",
        schedule=f"{flow.daily_schedule.time} {ctx.participant.timezone}" if flow.daily_schedule else "none",
        last_prompt=flow.last_habit_prompt or "none",
        module_guide=prompt_text(module),
        tone_guide=tone_guide(ctx),
    )


def conversation(ctx: TurnContext, instruction: str | None) -> list[ChatMessage]:
    """System prompt, the newest history, and for an event turn the instruction of what to do."""
    messages = [ChatMessage(role="system", content=system_prompt(ctx))]
    messages += [ChatMessage(role=h.role, content=h.content) for h in ctx.flow.history[-HISTORY_SENT_TO_LLM:]]
    if instruction:
        messages.append(ChatMessage(role="system", content=instruction))
    return messages


def llm_reply(ctx: TurnContext, llm: LanguageModel, instruction: str | None = None) -> str:
    """The model's final text for this turn; tools change `ctx` on the way.

    Raises LanguageModelUnavailable (NoUsableAnswer included): `ctx` is then half-changed, so callers
    run this on a clone.
    """
    messages = conversation(ctx, instruction)
    for _ in range(MAX_ROUNDS):
        reply = llm.complete(messages, TOOL_SPECS)
        text = (reply.content or "").strip()
        if reply.tool_calls:
            messages.append(ChatMessage(role="assistant", content=reply.content, tool_calls=reply.tool_calls))
            for call in reply.tool_calls:
                result = run_tool(ctx, call.name, call.arguments)
                messages.append(ChatMessage(role="tool", content=result, tool_call_id=call.id))
            if text:
                return text
            continue
        if text:
            return text
        raise NoUsableAnswer("the model sent neither text nor tool calls")
    raise NoUsableAnswer(f"no text after {MAX_ROUNDS} rounds of tool calls")
