"""The flow-state item's worst case: every text the item keeps at its bound, in four-byte characters, reached
through the code paths that write them (enrollment's background, the profile's update, a month of turns of the
longest texts Twilio delivers), sized as DynamoDB sizes an item."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from coach.adapters.dynamodb_items import FLOW_SK, participant_pk, to_attributes
from coach.bots.engine import run_turn
from coach.bots.prompt_generator import HabitPrompt, deliver_habit_prompt, generate_habit_prompt
from coach.bots.tools import GenerateHabitPrompt, generate_habit_prompt_tool
from coach.bots.turn import PROFILE_FEEDBACK_FIELDS, PROFILE_TEXT_FIELDS, TurnContext, TurnInput
from coach.domain.flow import HISTORY_BYTES, HISTORY_STORED, FlowState, SubState
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.participant import Participant
from coach.domain.tone import TONE_TAGS

FLOW_ITEM_GOAL_BYTES = 32 * 1024
WIDE = "\U0001f600"  # four UTF-8 bytes
START = datetime(2026, 3, 2, 12, tzinfo=UTC)


def item_size(item: dict[str, Any]) -> int:
    """Bytes of a low-level DynamoDB item as DynamoDB counts them: names and values in UTF-8, numbers by digits,
    3 bytes per map or list plus 1 per element."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(str(inner).encode())
    if kind == "N":
        digits = len(Decimal(inner).normalize().as_tuple().digits)
        return (digits + 1) // 2 + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    raise ValueError(f"no size for DynamoDB type {kind}")


PARTICIPANT = Participant(
    id="p-worst-case-0000000000000000000000",
    phone_number="+12065550100",
    name=WIDE * 120,
    gender=WIDE * 120,
    ethnicity=WIDE * 120,
    background=WIDE * 2000,
    timezone="America/Argentina/ComodRivadavia",
    enrolled_at=START,
    created_at=START,
    updated_at=START,
)  # every enrollment field at its limit


def worst_case_flow() -> FlowState:
    """PARTICIPANT's state once the coach has filled the profile with the longest answers (the habit and the
    last prompt made from them)."""
    wide = WIDE * MAX_BODY_CHARS
    flow = FlowState.start(PARTICIPANT.id, PARTICIPANT.background_text(), START)
    flow.sub_state = SubState.FEEDBACK
    flow.tone = flow.tone.with_explicit(TONE_TAGS)
    flow.tone.scores = dict.fromkeys(TONE_TAGS, 0.123456789)
    ctx = TurnContext(flow=flow, participant=PARTICIPANT, now=START, rng=random.Random(1))
    texts = [name for name in PROFILE_TEXT_FIELDS + PROFILE_FEEDBACK_FIELDS if name != "preferred_time"]
    ctx.update_profile(dict.fromkeys(texts, wide))
    ctx.update_profile({"preferred_time": "07:30"})
    generate_habit_prompt_tool(ctx, GenerateHabitPrompt(personalization_notes=WIDE * 500))
    prompt = generate_habit_prompt(flow.user_profile, ctx.rng, None)
    assert isinstance(prompt, HabitPrompt), prompt
    deliver_habit_prompt(ctx, prompt, occasion="bench")
    return flow


def worst_case_flows() -> dict[str, FlowState]:
    """That participant after 30 turns of the longest texts (ten coalesced per turn), and after 30 turns of texts
    just short enough that HISTORY_STORED of them fill HISTORY_BYTES (the most entries, each with its overhead)."""
    filled = WIDE * (HISTORY_BYTES // HISTORY_STORED // len(WIDE.encode()))
    flows = {}
    for name, texts in (("longest texts", [WIDE * MAX_BODY_CHARS] * 10), ("most entries", [filled])):
        flow, now = worst_case_flow(), START
        for _ in range(30):  # both fill the history: 2 entries a turn at least
            now += timedelta(hours=7)
            flow = run_turn(TurnInput(flow=flow, participant=PARTICIPANT, now=now, texts=texts)).flow
        flows[name] = flow
    return flows


def flow_item_bytes(flow: FlowState) -> int:
    return item_size(to_attributes(flow, PK=participant_pk(flow.participant_id), SK=FLOW_SK))
