"""The tool loop against a fake model: rounds, tool results, fallbacks. (The real client: tests/integration.)"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from coach.bots.llm_coach import MAX_ROUNDS, system_prompt
from coach.bots.turn import TurnContext, TurnEvent
from coach.domain.chat import ChatMessage, LanguageModelUnavailable, ModelReply, ToolCall, ToolSpec
from coach.domain.flow import HISTORY_SENT_TO_LLM
from tests.unit.bots.conversation import Conversation


@dataclass
class ScriptedModel:
    """A LanguageModel that answers from a script (the last entry repeats) and keeps what it was sent."""

    script: list[ModelReply | Exception]
    seen: list[list[ChatMessage]] = field(default_factory=list)

    def complete(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec], *, time_left: float | None = None
    ) -> ModelReply:
        self.seen.append(list(messages))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def calls(*pairs: tuple[str, str]) -> ModelReply:
    return ModelReply(tool_calls=tuple(ToolCall(id=f"c{i}", name=n, arguments=a) for i, (n, a) in enumerate(pairs)))


def consented(model: ScriptedModel) -> Conversation:
    chat = Conversation(llm=model)
    chat.event(TurnEvent.ENROLLED)
    chat.text("yes")  # consent is read by rules: the model is not asked
    assert model.seen == []
    return chat


def test_text_ends_the_loop_and_is_the_only_thing_stored() -> None:
    model = ScriptedModel(
        [calls(("save_user_profile", '{"habit_domain": "healthy eating"}')), ModelReply(content="Why?")]
    )
    chat = consented(model)

    assert chat.text("eat better") == ["Why?"]
    assert len(model.seen) == 2
    assert [m.role for m in model.seen[1][-2:]] == ["assistant", "tool"]
    assert all(h.role in ("user", "assistant") for h in chat.flow.history)
    assert chat.flow.history[-1].content == "Why?"


def test_text_beside_tool_calls_runs_the_tools_and_ends_the_loop() -> None:
    reply = ModelReply(content="Saved!", tool_calls=calls(("save_user_profile", '{"motivation": "sleep"}')).tool_calls)
    model = ScriptedModel([reply])
    chat = consented(model)

    assert chat.text("to sleep") == ["Saved!"]
    assert chat.flow.user_profile.motivation == "sleep"
    assert len(model.seen) == 1


def test_every_tool_result_goes_back_even_errors() -> None:
    model = ScriptedModel([calls(("nope", "{}"), ("scheduler", "{bad")), ModelReply(content="ok")])
    chat = consented(model)
    chat.text("hi")

    results = [json.loads(m.content or "") for m in model.seen[1] if m.role == "tool"]
    assert [("error" in r) for r in results] == [True, True]
    assert [m.tool_call_id for m in model.seen[1] if m.role == "tool"] == ["c0", "c1"]


def test_endless_tool_calls_stop_after_10_rounds_and_the_offline_coach_answers() -> None:
    model = ScriptedModel([calls(("scheduler", '{"action": "list"}'))])
    chat = consented(model)

    reply = chat.text("physical activity")

    assert len(model.seen) == MAX_ROUNDS
    assert reply == ["Why does this matter to you right now?"]
    assert chat.last.coach == "offline"


def test_a_failing_model_leaves_no_trace_of_its_tools() -> None:
    model = ScriptedModel(
        [calls(("save_user_profile", '{"habit_domain": "juggling"}')), LanguageModelUnavailable("503")]
    )
    chat = consented(model)

    chat.text("physical activity")

    assert chat.flow.user_profile.habit_domain == "physical activity"  # the offline coach's reading, not "juggling"
    assert [e.data for e in chat.last.events if e.kind == "llm_fallback"] == [{"kind": "unavailable", "reason": "503"}]


def test_the_model_sees_the_newest_30_messages_and_a_system_prompt() -> None:
    model = ScriptedModel([ModelReply(content="ok")])
    chat = consented(model)
    for i in range(40):
        chat.text(f"message {i}")

    sent = model.seen[-1]
    assert sent[0].role == "system"
    assert len(sent) == 1 + HISTORY_SENT_TO_LLM
    assert sent[-1].content == "message 39"


def test_the_system_prompt_carries_profile_module_and_tone() -> None:
    model = ScriptedModel([ModelReply(content="ok")])
    chat = consented(model)
    chat.text("no emojis please")

    prompt = model.seen[-1][0].content or ""
    assert "Module: INTAKE" in prompt
    assert "You are in INTAKE" in prompt
    assert "- no_emojis: never use emojis." in prompt
    assert "Intake fields still missing: habit_domain" in prompt
    assert "America/New_York" in prompt
    assert "$" not in prompt  # every placeholder filled


def test_the_system_prompt_says_feedback_once_intake_is_done() -> None:
    chat = Conversation()
    chat.through_intake()
    ctx = TurnContext(flow=chat.flow, participant=chat.who, now=chat.now, rng=random.Random(1))
    prompt = system_prompt(ctx)
    assert "You are in FEEDBACK" in prompt
    assert "Daily schedule: 07:30 America/New_York" in prompt


def _nudge_firing(chat: Conversation) -> object:
    from datetime import timedelta

    from coach.bots.turn import Firing

    slot = chat.now + timedelta(minutes=5)
    return Firing(
        key="nudge#p-1#day", slot=slot, valid_until=slot + timedelta(hours=1), reminder_after=timedelta(hours=5)
    )


def _nudge(chat: Conversation, firing: object) -> list[str]:
    from datetime import timedelta

    from coach.bots.engine import run_turn
    from coach.bots.turn import TurnInput

    chat.now += timedelta(minutes=5)
    turn = TurnInput(flow=chat.flow, participant=chat.who, now=chat.now, event=TurnEvent.DAILY_NUDGE, firing=firing)
    result = run_turn(turn, llm=chat.llm, rng=random.Random(7))
    chat.results.append(result)
    chat.flow = result.flow
    return result.replies


def coached_with(script: list[ModelReply | Exception]) -> tuple[Conversation, ScriptedModel, str]:
    """A participant through intake offline, then an LLM; the habit they agreed to."""
    chat = Conversation()
    chat.through_intake()
    model = ScriptedModel(script)
    chat.llm = model
    habit = chat.flow.user_profile.habit
    assert habit is not None
    return chat, model, habit


def test_the_daily_nudge_is_the_llms_validated_prompt_for_the_agreed_habit() -> None:
    # Given a model that writes a prompt naming the anchor and the agreed habit
    chat, model, habit = coached_with([])
    written = f"After your morning coffee, try {habit} for one minute. Reply DONE when you have!"
    model.script.append(ModelReply(content=written))
    prompts = chat.flow.user_profile.total_prompts

    # When the daily nudge fires
    replies = _nudge(chat, _nudge_firing(chat))

    # Then it is the model's text, from one call without tools, given the habit, the anchor and the background
    assert replies == [written]
    assert chat.last.coach == "llm"
    [sent] = model.seen
    assert sent[0].role == "system"
    assert habit in (sent[0].content or "")
    assert "after my morning coffee" in (sent[0].content or "")
    assert chat.flow.llm_calls_that_day == 1
    assert chat.flow.user_profile.total_prompts == prompts + 1
    assert chat.flow.user_profile.habit == habit  # the same habit, the LLM's words
    assert chat.flow.pending_reminder is not None
    [prompt] = [e.data for e in chat.last.events if e.kind == "habit_prompt"]
    assert (prompt["written_by"], prompt["action"]) == ("llm", habit)


def test_a_prompt_that_does_not_hold_up_is_replaced_by_the_template_and_the_record_says_why() -> None:
    chat, model, habit = coached_with([])
    model.script.append(ModelReply(content="Go for a 20 minute run today, see www.example.com"))

    [reply] = _nudge(chat, _nudge_firing(chat))

    assert habit in reply
    assert "example.com" not in reply
    assert chat.last.coach == "offline"
    [fallback] = [e.data for e in chat.last.events if e.kind == "habit_prompt_fallback"]
    assert {"anchor_missing", "habit_missing", "longer_than_a_minute", "link"} <= set(fallback["reasons"])
    assert fallback["refused"].startswith("Go for a 20 minute run")
    [prompt] = [e.data for e in chat.last.events if e.kind == "habit_prompt"]
    assert prompt["written_by"] == "template"


def test_a_failing_model_gives_the_template_prompt_and_a_recorded_fallback() -> None:
    chat, _, habit = coached_with([LanguageModelUnavailable("503", kind="server_error")])

    [reply] = _nudge(chat, _nudge_firing(chat))

    assert habit in reply
    assert [e.data["kind"] for e in chat.last.events if e.kind == "llm_fallback"] == ["server_error"]


def test_a_nudge_firing_past_its_window_sends_nothing_and_records_the_expiry() -> None:
    from datetime import timedelta

    from coach.bots.turn import Firing

    chat = Conversation()
    chat.through_intake()
    slot = chat.now - timedelta(hours=3)
    firing = Firing(key="nudge#p-1#day", slot=slot, valid_until=slot + timedelta(hours=1))

    assert _nudge(chat, firing) == []
    [expired] = [e for e in chat.last.events if e.kind == "nudge_expired"]
    assert expired.data["reason"] == "fired_after_its_window"
    assert chat.flow.pending_reminder is None


def test_an_llm_reply_with_advice_numbers_or_a_link_is_not_sent_and_the_offline_coach_answers() -> None:
    # Given a model that saves a profile field and then writes diet advice with a link
    model = ScriptedModel(
        [
            calls(("save_user_profile", '{"habit_domain": "juggling"}')),
            ModelReply(content="Cut carbs and stay under 1200 calories a day, see www.example.com"),
        ]
    )
    chat = consented(model)

    # When the participant answers the intake question
    reply = chat.text("healthy eating")

    # Then the offline coach answers, the model's tools leave no trace, and the record says which checks failed
    assert reply == ["Why does this matter to you right now?"]
    assert chat.last.coach == "offline"
    assert chat.flow.user_profile.habit_domain == "healthy eating"
    [fallback] = [e.data for e in chat.last.events if e.kind == "llm_fallback"]
    assert fallback["kind"] == "output_check"
    assert {"link", "calories_or_weight_numbers", "diet_advice"} <= set(fallback["reasons"])


def test_an_llm_reply_that_passes_the_output_check_goes_out() -> None:
    model = ScriptedModel([ModelReply(content="Nice! Why does eating well matter to you?")])
    chat = consented(model)

    assert chat.text("healthy eating") == ["Nice! Why does eating well matter to you?"]
    assert chat.last.coach == "llm"
