"""The tools the LLM coach may call. Each runs server-side on the turn's working state.

Arguments are pydantic models, so the JSON schemas the model sees are generated, never hand-written,
and every argument is validated. Whatever goes wrong (an unknown tool, text that is not JSON, a bad
value) becomes an error text the model reads and can correct: a tool call never crashes a turn.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coach.bots.feedback_tracker import track_feedback
from coach.bots.prompt_generator import MissingFields, deliver_habit_prompt, generate_habit_prompt
from coach.bots.turn import MAX_PROFILE_VALUE_BYTES, TurnContext
from coach.domain.chat import ToolSpec
from coach.domain.errors import DomainError
from coach.domain.feedback import Classification, FeedbackKind
from coach.domain.flow import SubState
from coach.domain.message import clip_utf8
from coach.domain.times import parse_time


class _Args(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SaveUserProfile(_Args):
    """Save what you learnt about the participant. Send only fields with new, non-empty values."""

    habit_domain: str | None = Field(
        None, description="healthy eating, physical activity, mental well-being, less screen time, or their own"
    )
    motivation: str | None = Field(None, description="why the habit matters to them, in their words")
    preferred_time: str | None = Field(None, description="time of day for the daily nudge, e.g. 07:30 or 19:00")
    prompt_anchor: str | None = Field(None, description="the routine it follows, e.g. 'after my morning coffee'")
    additional_info: str | None = Field(None, description="anything else that helps personalise")
    last_barrier: str | None = Field(None, description="what got in the way last time")
    last_blocker: str | None = Field(None, description="same as last_barrier")
    last_tweak: str | None = Field(None, description="the change they asked for")
    tone_requested: list[str] = Field(
        default_factory=list, description="tone tags the participant explicitly asked for; applied at once"
    )
    tone_observed: dict[str, float] = Field(
        default_factory=dict, description="tone tags their behaviour suggests, each 0..1; applied gradually"
    )


class GenerateHabitPrompt(_Args):
    """Create the participant's personalised 1-minute habit prompt (MAP form) and store it as the last prompt."""

    delivery_mode: Literal["immediate", "scheduled"] = "immediate"
    personalization_notes: str = Field("", max_length=500)


class TrackFeedback(_Args):
    """Record how the participant's reply to a habit prompt went."""

    kind: FeedbackKind
    reason: str | None = Field(None, description="the barrier (skipped/attempted) or the requested change")
    new_time: str | None = Field(None, description="modified: the new daily time, e.g. 19:00")
    new_anchor: str | None = Field(None, description="modified: the new routine to follow")


class Scheduler(_Args):
    """Create, list or delete the participant's daily nudge schedule (in the participant's own timezone)."""

    action: Literal["create", "list", "delete"]
    time: str | None = Field(None, description="create: local time HH:MM (defaults to the preferred time)")


class TransitionState(_Args):
    """Switch between the intake and feedback modules, now or after a delay."""

    to_sub_state: SubState
    delay_minutes: int | None = Field(None, ge=1, le=7 * 24 * 60)


def _result(**data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _error(message: str) -> str:
    return _result(error=message)


def save_user_profile(ctx: TurnContext, args: SaveUserProfile) -> str:
    fields = args.model_dump(exclude={"last_blocker", "tone_requested", "tone_observed"})
    fields["last_barrier"] = args.last_barrier or args.last_blocker
    saved, errors = [], []
    for name, value in fields.items():
        try:
            saved += ctx.update_profile({name: value})
        except ValueError as exc:
            errors.append(str(exc))
    tone = ctx.flow.tone.with_explicit(args.tone_requested).with_implicit(args.tone_observed, ctx.now)
    if tone != ctx.flow.tone:
        ctx.flow.tone = tone
        saved.append("tone")
    return _result(saved=saved, tone=tone.active, **({"errors": errors} if errors else {}))


def generate_habit_prompt_tool(ctx: TurnContext, args: GenerateHabitPrompt) -> str:
    notes = clip_utf8(args.personalization_notes, 2 * MAX_PROFILE_VALUE_BYTES)  # 500 characters, bounded in bytes
    if notes and notes != ctx.profile.personalization_notes:
        ctx.profile.personalization_notes = notes  # the daily prompts read them
    prompt = generate_habit_prompt(ctx.profile, ctx.rng, ctx.flow.last_habit_prompt)
    if isinstance(prompt, MissingFields):
        ctx.record("habit_prompt_missing_fields", occasion="llm", missing=list(prompt.fields))
        ctx.move_to(SubState.INTAKE)
        ctx.flow.intake_question = prompt.fields[0]
        return _error(f"profile incomplete, missing: {', '.join(prompt.fields)}. Moved back to intake: ask for them.")
    deliver_habit_prompt(ctx, prompt, occasion=f"llm_{args.delivery_mode}")
    return _result(prompt=prompt.text)


def track_feedback_tool(ctx: TurnContext, args: TrackFeedback) -> str:
    new_time = None
    if args.new_time:
        new_time = parse_time(args.new_time)
        if new_time is None:
            return _error(f"new_time {args.new_time[:40]!r} names no time of day; e.g. 19:00")
    outcome = track_feedback(ctx, Classification(args.kind, new_time, args.new_anchor, args.reason))
    return _result(recorded=outcome.kind.value, changed=list(outcome.changed), success_count=ctx.profile.success_count)


def scheduler_tool(ctx: TurnContext, args: Scheduler) -> str:
    timezone = ctx.participant.timezone
    if args.action == "list":
        current = ctx.flow.daily_schedule
        return _result(daily={"time": current.time, "timezone": timezone} if current else None)
    if args.action == "delete":
        ctx.delete_schedule()
        return _result(deleted=True)
    raw_time = args.time or ctx.profile.preferred_time
    hhmm = parse_time(raw_time) if raw_time else None
    if hhmm is None:
        return _error("create needs a time (HH:MM), and the profile has no preferred_time yet")
    ctx.schedule_daily(hhmm)
    return _result(created={"time": hhmm, "timezone": timezone})


def transition_state_tool(ctx: TurnContext, args: TransitionState) -> str:
    """A delayed move replaces any pending one; a move now cancels it (one pending transition at most)."""
    if args.to_sub_state is SubState.FEEDBACK and (missing := ctx.profile.missing_for_prompt()):
        ctx.record("transition_refused", to_state=SubState.FEEDBACK.value, how="llm_tool", missing=list(missing))
        return _error(f"the profile lacks {', '.join(missing)}: ask for it (save_user_profile) before FEEDBACK")
    if args.delay_minutes:
        pending = ctx.schedule_transition(args.to_sub_state, timedelta(minutes=args.delay_minutes))
        return _result(scheduled={"to": args.to_sub_state.value, "in_minutes": args.delay_minutes, "id": pending.id})
    if ctx.flow.pending_transition is not None:
        ctx.record("transition_cancelled", transition_id=ctx.flow.pending_transition.id, reason="moved_now")
        ctx.flow.pending_transition = None
    if args.to_sub_state is SubState.FEEDBACK:
        ctx.enter_feedback("llm_tool")
    else:
        ctx.move_to(args.to_sub_state)
    return _result(sub_state=ctx.flow.sub_state.value)


@dataclass(frozen=True)
class Tool:
    name: str
    arguments: type[_Args]
    run: Callable[[TurnContext, Any], str]

    def spec(self) -> ToolSpec:
        schema = self.arguments.model_json_schema()
        description = (self.arguments.__doc__ or self.name).strip()
        schema.pop("title", None)
        schema.pop("description", None)
        return ToolSpec(name=self.name, description=description, parameters=schema)


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool("save_user_profile", SaveUserProfile, save_user_profile),
        Tool("generate_habit_prompt", GenerateHabitPrompt, generate_habit_prompt_tool),
        Tool("track_feedback", TrackFeedback, track_feedback_tool),
        Tool("scheduler", Scheduler, scheduler_tool),
        Tool("transition_state", TransitionState, transition_state_tool),
    )
}
TOOL_SPECS: tuple[ToolSpec, ...] = tuple(t.spec() for t in TOOLS.values())


def run_tool(ctx: TurnContext, name: str, arguments: str) -> str:
    """Run one tool call; the result (or the error) is text for the model."""
    tool = TOOLS.get(name)
    if tool is None:
        return _error(f"unknown tool {name[:60]!r}; available: {', '.join(TOOLS)}")
    try:
        raw = json.loads(arguments or "{}")
    except json.JSONDecodeError as exc:
        return _error(f"arguments are not valid JSON ({exc.msg} at position {exc.pos}); send a JSON object")
    if not isinstance(raw, dict):
        return _error("arguments must be a JSON object")
    try:
        args = tool.arguments.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return _error(f"invalid arguments: {problems}")
    try:
        return tool.run(ctx, args)
    except (DomainError, ValueError) as exc:
        return _error(str(exc))
