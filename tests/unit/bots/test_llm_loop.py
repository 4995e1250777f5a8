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

    def complete(self, messages: Sequence[ChatMessage], tools: Sequence[ToolSpec]) -> ModelReply:
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
    assert [e.data for e in chat.last.events if e.kind == "llm_fallback"] == [{"reason": "503"}]


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
