"""The LLM path through the real `openai` client, against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from coach.adapters.openai_llm import OpenAILanguageModel, language_model
from coach.bots.llm_coach import MAX_ROUNDS
from coach.bots.turn import TurnEvent
from coach.domain.flow import SubState
from coach.settings import CoachSettings
from tests.support.openai_server import HANG, Raw, ScriptedServer, completion, error, scripted_server
from tests.unit.bots.conversation import Conversation


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as scripted:
        yield scripted


def model(server: ScriptedServer, **settings: Any) -> OpenAILanguageModel:
    """The adapter on the scripted server; its retries pause for no real time."""
    return OpenAILanguageModel(server.settings(**settings), sleep=lambda _: None)


def consented_chat(server: ScriptedServer, **settings: Any) -> Conversation:
    """A participant who said yes to the greeting (consent is always scripted), now in LLM-led intake."""
    chat = Conversation(llm=model(server, **settings))
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")
    return chat


def test_multi_round_tool_calls_build_the_profile_and_end_intake(server: ScriptedServer) -> None:
    # Given a model that saves the profile, then makes the prompt, schedules it and moves on, then talks
    profile = {
        "habit_domain": "physical activity",
        "motivation": "feel more energetic",
        "preferred_time": "7:30am",
        "prompt_anchor": "after my morning coffee",
        "additional_info": "none",
    }
    server.script = [
        completion(None, ("save_user_profile", json.dumps(profile))),
        completion(
            None,
            ("generate_habit_prompt", "{}"),
            ("scheduler", '{"action": "create", "time": "07:30"}'),
            ("transition_state", '{"to_sub_state": "FEEDBACK"}'),
        ),
        completion("Here's your habit: after your coffee, 10 squats. Want to try it now?"),
    ]
    chat = consented_chat(server)

    # When the participant tells everything at once
    reply = chat.text("Move more, to feel energetic, 7:30am after my morning coffee, nothing else")

    # Then the model's text goes out, and the tools changed the state
    assert reply == ["Here's your habit: after your coffee, 10 squats. Want to try it now?"]
    assert chat.last.coach == "llm"
    assert len(server.requests) == 3
    assert chat.flow.user_profile.preferred_time == "07:30"
    assert chat.flow.user_profile.prompt_anchor == "after my morning coffee"
    assert chat.flow.sub_state is SubState.FEEDBACK
    assert chat.flow.last_habit_prompt is not None
    assert chat.changed == ["nudge-p-1"]
    assert chat.daily_time == "07:30"
    # the tool results went back to the model, answering each call by id
    tool_messages = [m for m in server.requests[2]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == ["call_0", "call_0", "call_1", "call_2"]
    assert json.loads(tool_messages[0]["content"])["saved"] == list(profile)
    # the request carried the model, the system prompt and the five generated tool schemas
    first = server.requests[0]
    assert first["model"] == "scripted-model"
    assert first["messages"][0]["role"] == "system"
    assert "INTAKE" in first["messages"][0]["content"]
    assert {t["function"]["name"] for t in first["tools"]} == {
        "save_user_profile",
        "generate_habit_prompt",
        "track_feedback",
        "scheduler",
        "transition_state",
    }


def test_tool_messages_are_not_stored_in_history(server: ScriptedServer) -> None:
    server.script = [completion(None, ("save_user_profile", '{"habit_domain": "healthy eating"}')), completion("Why?")]
    chat = consented_chat(server)
    before = len(chat.flow.history)

    chat.text("eating better")

    added = chat.flow.history[before:]
    assert [(h.role, h.content) for h in added] == [("user", "eating better"), ("assistant", "Why?")]


def test_a_tool_error_goes_back_to_the_model(server: ScriptedServer) -> None:
    server.script = [
        completion(None, ("scheduler", '{"action": "create", "time": "whenever"}')),
        completion("What time suits you?"),
    ]
    chat = consented_chat(server)

    reply = chat.text("schedule me")

    assert reply == ["What time suits you?"]
    [result] = server.tool_results(1)
    assert "needs a time" in json.loads(result)["error"]
    assert chat.changed == []


def test_an_unknown_tool_is_a_tool_error(server: ScriptedServer) -> None:
    server.script = [completion(None, ("launch_rockets", "{}")), completion("Sorry, let's go on.")]
    chat = consented_chat(server)

    assert chat.text("hi") == ["Sorry, let's go on."]
    [result] = server.tool_results(1)
    assert json.loads(result)["error"].startswith("unknown tool 'launch_rockets'")


def test_arguments_that_are_not_json_are_a_tool_error(server: ScriptedServer) -> None:
    server.script = [completion(None, ("save_user_profile", "{habit_domain: eating")), completion("Got it.")]
    chat = consented_chat(server)

    assert chat.text("eating") == ["Got it."]
    [result] = server.tool_results(1)
    assert "not valid JSON" in json.loads(result)["error"]
    assert chat.flow.user_profile.habit_domain is None


def test_a_model_that_calls_tools_forever_gets_the_offline_coach_after_round_10(server: ScriptedServer) -> None:
    # Given a model that never stops calling tools (and changes the profile on the way)
    server.script = [completion(None, ("save_user_profile", '{"habit_domain": "a trap"}'))]
    chat = consented_chat(server)

    # When the participant answers
    reply = chat.text("healthy eating")

    # Then after 10 rounds the offline coach answers from the state before the LLM turn
    assert len(server.requests) == MAX_ROUNDS
    assert chat.last.coach == "offline"
    assert reply == ["Why does this matter to you right now?"]
    assert chat.flow.user_profile.habit_domain == "healthy eating"
    assert [e.data["reason"] for e in chat.last.events if e.kind == "llm_fallback"] == [
        "too_many_rounds: no text after 10 rounds of tool calls"
    ]


def test_an_answer_with_neither_text_nor_tools_gets_the_offline_coach(server: ScriptedServer) -> None:
    server.script = [completion(None)]
    chat = consented_chat(server)

    assert chat.text("physical activity") == ["Why does this matter to you right now?"]
    assert chat.last.coach == "offline"


def test_a_timeout_gets_the_offline_coach(server: ScriptedServer) -> None:
    server.script = [HANG]
    chat = consented_chat(server, openai_timeout_seconds=0.3)

    reply = chat.text("physical activity")

    assert reply == ["Why does this matter to you right now?"]
    assert chat.last.coach == "offline"
    assert "APITimeoutError" in next(e for e in chat.last.events if e.kind == "llm_fallback").data["reason"]


@pytest.mark.parametrize("status", [500, 429])
def test_server_errors_after_the_retries_get_the_offline_coach(server: ScriptedServer, status: int) -> None:
    server.script = [(status, {"error": {"message": "boom", "type": "server_error"}})]
    chat = consented_chat(server, openai_max_retries=1)

    reply = chat.text("physical activity")

    assert len(server.requests) == 2  # the first try and one retry
    assert reply == ["Why does this matter to you right now?"]
    assert chat.last.coach == "offline"


def coached_then_llm(server: ScriptedServer) -> tuple[Conversation, str]:
    """A participant who finished intake offline, from now on with the LLM; the habit they agreed to."""
    chat = Conversation()
    chat.through_intake()
    chat.llm = model(server)
    habit = chat.flow.user_profile.habit
    assert habit is not None
    return chat, habit


def test_a_daily_nudge_in_llm_mode_is_the_models_validated_prompt_on_record_as_the_llms(server: ScriptedServer) -> None:
    chat, habit = coached_then_llm(server)
    written = f"After your morning coffee, try {habit}: one minute. Reply DONE when you have!"
    server.script = [completion(written)]

    assert chat.event(TurnEvent.DAILY_NUDGE) == [written]
    assert chat.last.coach == "llm"
    [request] = server.requests
    assert "tools" not in request or not request["tools"]  # its own prompt, one call, no tool loop
    assert habit in request["messages"][0]["content"]
    [prompt] = [e.data for e in chat.last.events if e.kind == "habit_prompt"]
    assert prompt["written_by"] == "llm"
    [usage] = [e.data for e in chat.last.events if e.kind == "llm_usage"]
    assert usage["calls"] == 1
    assert usage["answered_by"] == "llm"


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (error(500), "llm_fallback"),
        (Raw(b"{not json", 200, {"Content-Type": "application/json"}), "llm_fallback"),
        (completion("Drink 3 litres, 0 kcal!"), "habit_prompt_fallback"),  # answered, but fails the checks
    ],
    ids=["server_error", "malformed", "fails_the_checks"],
)
def test_with_a_broken_or_careless_model_the_nudge_is_the_template_on_record_as_such(
    server: ScriptedServer, answer: Any, why: str
) -> None:
    chat, habit = coached_then_llm(server)
    server.script = [answer]

    [nudge] = chat.event(TurnEvent.DAILY_NUDGE)

    assert habit in nudge
    assert nudge.startswith("After your morning coffee, try ")
    assert chat.last.coach == "offline"
    [prompt] = [e.data for e in chat.last.events if e.kind == "habit_prompt"]
    assert prompt["written_by"] == "template"
    assert [e.kind for e in chat.last.events if e.kind in ("llm_fallback", "habit_prompt_fallback")] == [why]


def test_no_key_and_no_base_url_means_the_offline_coach() -> None:
    assert language_model(CoachSettings(openai_api_key=None, openai_base_url=None)) is None
    assert isinstance(language_model(CoachSettings(openai_api_key="sk-x")), OpenAILanguageModel)
