"""The LLM's tools, run directly on a turn's working state."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from typing import Any

from coach.bots.tools import TOOL_SPECS, TOOLS, run_tool
from coach.bots.turn import TurnContext
from coach.domain.flow import FlowState, SubState
from coach.domain.profile import UserProfile
from tests.unit.bots.conversation import START, participant


def context(**profile: Any) -> TurnContext:
    flow = FlowState.start("p-1", "", START)
    flow.user_profile = UserProfile(**profile)
    return TurnContext(flow=flow, participant=participant(), now=START, rng=random.Random(1))


def call(ctx: TurnContext, name: str, **arguments: Any) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run_tool(ctx, name, json.dumps(arguments)))
    return result


def test_schemas_are_generated_from_the_argument_models() -> None:
    specs = {s.name: s for s in TOOL_SPECS}
    assert set(specs) == {
        "save_user_profile",
        "generate_habit_prompt",
        "track_feedback",
        "scheduler",
        "transition_state",
    }
    assert specs["scheduler"].parameters["properties"]["action"]["enum"] == ["create", "list", "delete"]
    generated = TOOLS["save_user_profile"].arguments.model_json_schema()
    assert specs["save_user_profile"].parameters == {
        k: v for k, v in generated.items() if k not in ("title", "description")
    }
    assert "last_blocker" in generated["properties"]
    assert specs["track_feedback"].description.startswith("Record how")


def test_save_user_profile_merges_only_new_non_empty_values() -> None:
    # Given a profile with a motivation
    ctx = context(motivation="feel calmer", habit_domain="mental well-being")

    # When the model sends an empty value, the same value and a new one
    result = call(
        ctx, "save_user_profile", motivation="", habit_domain="mental well-being", prompt_anchor="after lunch"
    )

    # Then only the new one is saved
    assert result["saved"] == ["prompt_anchor"]
    assert ctx.profile.motivation == "feel calmer"
    assert ctx.profile.prompt_anchor == "after lunch"


def test_last_blocker_is_accepted_as_last_barrier() -> None:
    ctx = context()
    assert call(ctx, "save_user_profile", last_blocker="no time in the mornings")["saved"] == ["last_barrier"]
    assert ctx.profile.last_barrier == "no time in the mornings"


def test_a_preferred_time_is_stored_as_hh_mm_and_nonsense_is_an_error() -> None:
    ctx = context()
    assert call(ctx, "save_user_profile", preferred_time="7:30pm")["saved"] == ["preferred_time"]
    assert ctx.profile.preferred_time == "19:30"

    result = call(ctx, "save_user_profile", preferred_time="whenever", motivation="sleep better")
    assert result["saved"] == ["motivation"]
    assert "names no time of day" in result["errors"][0]


def test_a_new_preferred_time_moves_an_existing_schedule() -> None:
    ctx = context(preferred_time="07:30")
    call(ctx, "scheduler", action="create")

    call(ctx, "save_user_profile", preferred_time="21:00")

    assert ctx.flow.daily_schedule is not None
    assert (ctx.flow.daily_schedule.time, ctx.flow.daily_schedule.since) == ("21:00", ctx.now)


def test_tone_goes_through_save_user_profile() -> None:
    ctx = context()
    result = call(ctx, "save_user_profile", tone_requested=["concise", "made_up"], tone_observed={"casual": 1.0})
    assert result["tone"] == ["concise"]
    assert ctx.flow.tone.scores["casual"] == 0.15


def test_generate_habit_prompt_stores_the_prompt() -> None:
    ctx = context(
        habit_domain="healthy eating",
        preferred_time="12:30",
        prompt_anchor="before lunch",
        motivation="to have more energy",
    )

    prompt = call(ctx, "generate_habit_prompt")["prompt"]

    assert prompt.startswith("Before lunch, try ")
    assert "it helps you have more energy" in prompt
    assert ctx.flow.last_habit_prompt == prompt
    assert ctx.profile.total_prompts == 1


def test_generate_habit_prompt_reports_missing_fields_and_returns_to_intake() -> None:
    ctx = context(habit_domain="healthy eating")
    ctx.flow.sub_state = SubState.FEEDBACK

    result = call(ctx, "generate_habit_prompt")

    assert result["error"].startswith("profile incomplete, missing: preferred_time, prompt_anchor")
    assert ctx.flow.sub_state is SubState.INTAKE
    assert ctx.flow.last_habit_prompt is None


def test_track_feedback_applies_a_modification() -> None:
    ctx = context(preferred_time="07:30", prompt_anchor="after coffee")

    result = call(ctx, "track_feedback", kind="modified", new_time="evenings", new_anchor="after dinner")

    assert result["recorded"] == "modified"
    assert (ctx.profile.preferred_time, ctx.profile.prompt_anchor) == ("19:00", "after dinner")
    assert ctx.flow.daily_schedule is not None
    assert ctx.flow.daily_schedule.time == "19:00"
    assert ctx.events[-1].kind == "feedback_classified"


def test_track_feedback_rejects_an_unknown_kind() -> None:
    result = call(context(), "track_feedback", kind="ecstatic")
    assert result["error"].startswith("invalid arguments: kind:")


def test_scheduler_creates_lists_and_deletes_in_the_participants_own_timezone() -> None:
    ctx = context()
    # A timezone the model makes up is not taken: the participant's record says which zone they live in.
    assert call(ctx, "scheduler", action="create", time="08:15", timezone="Europe/Berlin") == {
        "created": {"time": "08:15", "timezone": "America/New_York"}
    }
    assert call(ctx, "scheduler", action="list") == {"daily": {"time": "08:15", "timezone": "America/New_York"}}
    assert call(ctx, "scheduler", action="delete") == {"deleted": True}
    assert call(ctx, "scheduler", action="list") == {"daily": None}
    assert ctx.flow.daily_schedule is None
    assert [e.kind for e in ctx.events] == ["daily_schedule_set", "daily_schedule_removed"]


def test_scheduler_needs_a_time() -> None:
    assert "needs a time" in call(context(), "scheduler", action="create")["error"]


COMPLETE = {"habit_domain": "physical activity", "preferred_time": "07:30", "prompt_anchor": "after my coffee"}


def test_transition_state_now_or_later() -> None:
    ctx = context(**COMPLETE)
    assert call(ctx, "transition_state", to_sub_state="FEEDBACK") == {"sub_state": "FEEDBACK"}
    assert ctx.flow.sub_state is SubState.FEEDBACK

    assert call(ctx, "transition_state", to_sub_state="INTAKE", delay_minutes=90)["scheduled"]["in_minutes"] == 90
    pending = ctx.flow.pending_transition
    assert pending is not None
    assert (pending.to_sub_state, pending.due_at) == (SubState.INTAKE, ctx.now + timedelta(minutes=90))
    assert ctx.flow.sub_state is SubState.FEEDBACK
    assert "invalid arguments" in call(ctx, "transition_state", to_sub_state="INTAKE", delay_minutes=0)["error"]


def test_a_new_delayed_transition_replaces_the_pending_one_and_a_move_now_cancels_it() -> None:
    # Given a transition pending in 90 minutes
    ctx = context(**COMPLETE)
    first = call(ctx, "transition_state", to_sub_state="INTAKE", delay_minutes=90)["scheduled"]["id"]

    # When the model asks for another one, then moves at once
    second = call(ctx, "transition_state", to_sub_state="FEEDBACK", delay_minutes=30)["scheduled"]["id"]
    pending = ctx.flow.pending_transition

    # Then only the newest is pending (one per participant), and a move now leaves none
    assert first != second
    assert pending is not None
    assert (pending.id, pending.to_sub_state) == (second, SubState.FEEDBACK)
    assert [e.data["replaced"] for e in ctx.events if e.kind == "transition_scheduled"] == [None, first]
    call(ctx, "transition_state", to_sub_state="INTAKE")
    assert ctx.flow.pending_transition is None
    assert ctx.events[-1].kind == "transition_cancelled"


def test_feedback_is_refused_while_the_profile_cannot_carry_a_prompt_now_or_later() -> None:
    # Given a profile without an anchor
    ctx = context(habit_domain="physical activity", preferred_time="07:30")

    # When the model moves to FEEDBACK, now or in an hour
    now = call(ctx, "transition_state", to_sub_state="FEEDBACK")
    later = call(ctx, "transition_state", to_sub_state="FEEDBACK", delay_minutes=60)

    # Then both are refused naming the field, nothing moves or is pending, and the record says so
    assert "prompt_anchor" in now["error"]
    assert "prompt_anchor" in later["error"]
    assert (ctx.flow.sub_state, ctx.flow.pending_transition) == (SubState.INTAKE, None)
    refused = [e.data for e in ctx.events if e.kind == "transition_refused"]
    assert [r["missing"] for r in refused] == [["prompt_anchor"], ["prompt_anchor"]]


def test_a_move_to_feedback_brings_the_daily_nudge_at_the_chosen_time() -> None:
    ctx = context(**COMPLETE)

    call(ctx, "transition_state", to_sub_state="FEEDBACK")

    assert ctx.flow.daily_schedule is not None
    assert ctx.flow.daily_schedule.time == "07:30"


def test_unknown_tools_and_malformed_arguments_are_errors_not_crashes() -> None:
    ctx = context()
    assert json.loads(run_tool(ctx, "rm_rf", "{}"))["error"].startswith("unknown tool 'rm_rf'")
    assert "not valid JSON" in json.loads(run_tool(ctx, "scheduler", "{action: list"))["error"]
    assert json.loads(run_tool(ctx, "scheduler", "[1, 2]"))["error"] == "arguments must be a JSON object"
    assert json.loads(run_tool(ctx, "generate_habit_prompt", ""))["error"].startswith("profile incomplete")
