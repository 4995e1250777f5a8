"""The LLM coach: the model reads the conversation and acts through tools, in a bounded loop.

At most 10 rounds. Text ends the loop; tool calls run here and their results (errors included) go back
to the model; an answer with neither, or no text after 10 rounds, is unusable, and the caller lets the
offline coach answer instead. Tool calls live only in this loop: history keeps the final text.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from string import Template
from zoneinfo import ZoneInfo

from coach.bots.intake import missing_intake_fields
from coach.bots.tools import TOOL_SPECS, run_tool
from coach.bots.turn import TurnContext
from coach.domain.chat import ChatMessage, LanguageModelUnavailable, ModelReply
from coach.domain.flow import HISTORY_SENT_TO_LLM, SubState
from coach.ports import LanguageModel

MAX_ROUNDS = 10
PROMPT_VERSION = "coach-prompts-2026-12"  # name the prompts' version when they change; the hash tells them apart
_PROMPT_FILES = ("system", "intake", "feedback", "tone_guide", "habit_prompt")
DEFAULT_TONE = ("warm_supportive", "one_question_at_a_time", "default_actionable")


MIN_CALL_SECONDS = 2.0  # an LLM call with less time than this left is not worth starting: the offline coach answers


class NoUsableAnswer(LanguageModelUnavailable):
    """The model answered, but with neither text nor tool calls, or never with text."""


@dataclass
class LlmAllowance:
    """What a turn may still spend on the LLM, and what it spent: calls and tokens against the participant's
    daily caps (failed calls count too), and time against the invocation's deadline."""

    calls_left: int | None = None
    tokens_left: int | None = None
    time_left: Callable[[], float] | None = None
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    models: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def seconds(self) -> float | None:
        """Time left for the next call; raises LanguageModelUnavailable when a cap or the deadline is reached."""
        if self.calls_left is not None and self.calls >= self.calls_left:
            raise LanguageModelUnavailable(
                "daily_call_cap: the participant's LLM calls for today are used", kind="daily_call_cap"
            )
        if self.tokens_left is not None and self.tokens >= self.tokens_left:
            raise LanguageModelUnavailable(
                "daily_token_cap: the participant's LLM tokens for today are used", kind="daily_token_cap"
            )
        if self.time_left is None:
            return None
        left = self.time_left()
        if left < MIN_CALL_SECONDS:
            raise LanguageModelUnavailable(f"out_of_time: {left:.1f} s left in this invocation", kind="out_of_time")
        return left

    def spent(self, reply: ModelReply) -> None:
        self.calls += reply.calls
        if reply.usage is not None:
            self.prompt_tokens += reply.usage.prompt_tokens
            self.completion_tokens += reply.usage.completion_tokens
            if reply.usage.model not in self.models:
                self.models.append(reply.usage.model)

    def failed(self, exc: LanguageModelUnavailable) -> None:
        self.calls += exc.calls


@cache
def prompt_text(name: str) -> str:
    return files("coach.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


@cache
def prompt_hash() -> str:
    """The prompts' texts, hashed: which words the LLM was given is on record with what it wrote."""
    digest = hashlib.sha256()
    for name in _PROMPT_FILES:
        digest.update(prompt_text(name).encode("utf-8"))
    return digest.hexdigest()[:16]


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


def llm_reply(
    ctx: TurnContext, llm: LanguageModel, instruction: str | None = None, allowance: LlmAllowance | None = None
) -> str:
    """The model's final text for this turn; tools change `ctx` on the way.

    Raises LanguageModelUnavailable (NoUsableAnswer included): `ctx` is then half-changed, so callers
    run this on a clone.
    """
    allowance = allowance or LlmAllowance()
    messages = conversation(ctx, instruction)
    for _ in range(MAX_ROUNDS):
        time_left = allowance.seconds()  # a cap or the deadline ends the loop: the offline coach answers
        try:
            reply = llm.complete(messages, TOOL_SPECS, time_left=time_left)
        except LanguageModelUnavailable as exc:
            allowance.failed(exc)
            raise
        allowance.spent(reply)
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
        raise NoUsableAnswer("empty: the model sent neither text nor tool calls", kind="empty")
    raise NoUsableAnswer(f"too_many_rounds: no text after {MAX_ROUNDS} rounds of tool calls", kind="too_many_rounds")
