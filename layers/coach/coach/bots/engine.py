"""The conversation engine's one entry: `run_turn(TurnInput) -> TurnResult`, pure but for the LLM port.

The orchestrator keeps the top-level state CONVERSATION_ACTIVE and lets the sub-state (INTAKE or
FEEDBACK) pick the module; it keeps the bounded history, adapts the tone, shapes every SMS, and turns
what the modules did into side effects and research events for the caller to carry out.
"""

from __future__ import annotations

import random
from zoneinfo import ZoneInfo

from coach.bots.intake import next_intake_step
from coach.bots.llm_coach import llm_reply
from coach.bots.offline_coach import REMINDER, answer_consent, daily_nudge, greeting, offline_reply
from coach.bots.turn import TurnContext, TurnEvent, TurnInput, TurnResult, profile_changes
from coach.domain import intensity
from coach.domain.chat import LanguageModelUnavailable
from coach.domain.effects import CancelReminder
from coach.domain.flow import HISTORY_STORED, HistoryEntry, SubState
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.participant import ParticipantStatus
from coach.domain.sms_text import is_emoji, shape_sms
from coach.domain.tone import implicit_tone_signals, requested_tone_tags
from coach.ports import LanguageModel

DEFAULT_SEGMENT_BUDGET = 2
_NUDGE_INSTRUCTION = (
    "Event: the daily nudge is due. Call generate_habit_prompt and reply with the habit prompt only, "
    "in one or two short sentences."
)


def run_turn(
    turn: TurnInput,
    *,
    llm: LanguageModel | None = None,
    rng: random.Random | None = None,
    segment_budget: int = DEFAULT_SEGMENT_BUDGET,
) -> TurnResult:
    """One turn. With `llm` None (or failing) the offline coach answers. `rng` defaults to one seeded by
    the participant and the time, so a redelivered turn computes the same result."""
    ctx = TurnContext(
        flow=turn.flow.model_copy(deep=True),
        participant=turn.participant,
        now=turn.now,
        rng=rng or random.Random(f"{turn.flow.participant_id}|{turn.now.isoformat()}"),
    )
    profile_before, tone_before = ctx.profile.model_copy(deep=True), list(ctx.flow.tone.active)
    if turn.event is None:
        replies, coach = _on_texts(ctx, turn.texts, llm, turn.intensity_check)
    else:
        replies, coach = _on_event(ctx, turn, llm)
    shaped = [
        shape_sms(r, emojis_allowed=ctx.flow.tone.emojis_allowed, segment_budget=segment_budget)
        for r in replies
        if r.strip()
    ]
    for reply in shaped:
        _remember(ctx, "assistant", reply)
    if changes := profile_changes(profile_before, ctx.profile):
        ctx.record("profile_changed", fields=changes)
    if ctx.flow.tone.active != tone_before:
        ctx.record("tone_changed", before=tone_before, after=ctx.flow.tone.active)
    ctx.flow.updated_at = turn.now
    return TurnResult(
        flow=ctx.flow, replies=shaped, effects=ctx.effects, events=ctx.events, coach=coach if shaped else "none"
    )


def _remember(ctx: TurnContext, role: str, text: str) -> None:
    """Append to the bounded history (the transcript items keep everything)."""
    entry = HistoryEntry(role="user" if role == "user" else "assistant", content=text[:MAX_BODY_CHARS], at=ctx.now)
    ctx.flow.history = [*ctx.flow.history, entry][-HISTORY_STORED:]


def _silenced(ctx: TurnContext, *, nudge: bool) -> str | None:
    """Why nothing may be sent now, or None. Opted-out, withdrawn and finished participants get nothing."""
    participant = ctx.participant
    if participant.opted_out:
        return "opted_out"
    if participant.status in (ParticipantStatus.WITHDRAWN, ParticipantStatus.COMPLETED):
        return participant.status.value
    if nudge and participant.status is ParticipantStatus.PAUSED:
        return "paused"
    if ctx.flow.consent is False:
        return "consent_declined"
    return None


def _adapt_tone(ctx: TurnContext, text: str) -> None:
    """Explicit requests count at once; implicit signals only in FEEDBACK, where the person writes freely
    (answers to intake questions are short because the questions are)."""
    tone = ctx.flow.tone.with_explicit(requested_tone_tags(text))
    if ctx.flow.sub_state is not SubState.FEEDBACK:
        ctx.flow.tone = tone
        return
    signals = implicit_tone_signals(text, has_emoji=any(is_emoji(c) for c in text))
    ctx.flow.tone = tone.with_implicit(signals, ctx.now)


def _coach_reply(
    ctx: TurnContext, llm: LanguageModel | None, text: str, instruction: str | None
) -> tuple[list[str], str]:
    """The LLM's answer when it gives one, else the offline coach's."""
    if llm is not None:
        trial = ctx.clone()
        try:
            reply = llm_reply(trial, llm, instruction)
        except LanguageModelUnavailable as exc:
            ctx.record("llm_fallback", reason=str(exc)[:200])
        else:
            ctx.flow, ctx.effects, ctx.events = trial.flow, trial.effects, trial.events
            return [reply], "llm"
    if instruction is not None:
        return daily_nudge(ctx), "offline"
    return offline_reply(ctx, text), "offline"


def _on_texts(
    ctx: TurnContext, texts: list[str], llm: LanguageModel | None, intensity_check: bool = False
) -> tuple[list[str], str]:
    for text in texts:
        _remember(ctx, "user", text)
    if (pending := ctx.flow.pending_reminder) is not None:
        ctx.effects.append(CancelReminder(nudge_key=pending.nudge_key, schedule_name=pending.schedule_name))
        ctx.flow.pending_reminder = None
        ctx.record("nudge_responded", nudge_key=pending.nudge_key, responded_at=ctx.now.isoformat())
    if reason := _silenced(ctx, nudge=False):
        ctx.record("reply_withheld", reason=reason)
        return [], "none"
    text = "\n".join(texts)
    _adapt_tone(ctx, text)
    if ctx.flow.consent is None:
        if ctx.flow.intake_question is None:  # texted before the greeting went out
            return greeting(ctx), "offline"
        return answer_consent(ctx, text), "offline"
    if ctx.flow.awaiting_intensity:
        ctx.flow.awaiting_intensity = False  # asked once: an answer to something else is not trapped here
        if (answer := intensity.read_answer(text)) is not None:
            ctx.profile.intensity = intensity.adjusted(ctx.profile.intensity, answer)
            ctx.record("intensity_answered", answer=answer, intensity=ctx.profile.intensity)
            return [intensity.acknowledgement(answer)], "offline"
    replies, coach = _coach_reply(ctx, llm, text, None)
    if intensity_check and _succeeded(ctx) and _ask_intensity(ctx):
        replies = [*replies, intensity.QUESTION]
    return replies, coach


def _succeeded(ctx: TurnContext) -> bool:
    return any(e.kind == "feedback_classified" and e.data.get("kind") == "completed" for e in ctx.events)


def _ask_intensity(ctx: TurnContext) -> bool:
    """At most once per local day: records the asking and returns True when it is allowed now."""
    today = ctx.now.astimezone(ZoneInfo(ctx.participant.timezone)).date().isoformat()
    if ctx.flow.intensity_checked_on == today:
        return False
    ctx.flow.intensity_checked_on, ctx.flow.awaiting_intensity = today, True
    ctx.record("intensity_asked", local_date=today)
    return True


def _on_event(ctx: TurnContext, turn: TurnInput, llm: LanguageModel | None) -> tuple[list[str], str]:
    event = turn.event
    if event is TurnEvent.RESET:
        return _reset(ctx)
    nudge = event in (TurnEvent.DAILY_NUDGE, TurnEvent.REMINDER)
    if reason := _silenced(ctx, nudge=nudge):
        ctx.record("message_withheld", event=str(event), reason=reason)
        return [], "none"
    if event is TurnEvent.ENROLLED:
        return greeting(ctx), "offline"
    if event is TurnEvent.TRANSITION and turn.to_sub_state is not None:
        ctx.move_to(turn.to_sub_state)
        if turn.to_sub_state is SubState.INTAKE and ctx.flow.consent:
            return next_intake_step(ctx), "offline"
        return [], "none"
    if not ctx.flow.consent or ctx.flow.sub_state is SubState.INTAKE:
        ctx.record("message_withheld", event=str(event), reason="intake_not_finished")
        return [], "none"
    if event is TurnEvent.REMINDER:
        if ctx.flow.pending_reminder is None:
            return [], "none"  # the participant answered the nudge already
        ctx.flow.pending_reminder = None
        ctx.record("reminder_sent")
        return [REMINDER], "offline"
    ctx.flow.offered_try_now = False  # a new day's prompt replaces yesterday's offer
    return _coach_reply(ctx, llm, "", _NUDGE_INSTRUCTION)


def _reset(ctx: TurnContext) -> tuple[list[str], str]:
    consented = ctx.flow.consent is True
    had_schedule = ctx.flow.daily_schedule is not None
    ctx.flow = ctx.flow.reset(ctx.now)
    ctx.record("conversation_reset")
    if had_schedule:
        ctx.delete_schedule()
    if _silenced(ctx, nudge=False):
        return [], "none"
    if not consented:
        return greeting(ctx), "offline"
    ctx.flow.consent = True
    return ["Let's start fresh!", *next_intake_step(ctx)], "offline"
