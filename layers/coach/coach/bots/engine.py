"""The conversation engine's one entry: `run_turn(TurnInput) -> TurnResult`, pure but for the LLM port.

The orchestrator keeps the top-level state CONVERSATION_ACTIVE and lets the sub-state (INTAKE or
FEEDBACK) pick the module; it keeps the bounded history, adapts the tone, asks the reachability rule
before every text, shapes every SMS, and records why when it sends nothing. What it returns is complete:
the caller saves the new state as it is (the schedules derive from it) and sends the texts.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from coach.bots.intake import next_intake_step
from coach.bots.llm_coach import PROMPT_VERSION, LlmAllowance, llm_reply, prompt_hash
from coach.bots.llm_habit_prompt import llm_habit_prompt
from coach.bots.offline_coach import REMINDER, answer_consent, ask_for_missing, greeting, offline_reply
from coach.bots.prompt_generator import HabitPrompt, deliver_habit_prompt, generate_habit_prompt
from coach.bots.turn import Outgoing, TurnContext, TurnEvent, TurnInput, TurnResult, profile_changes
from coach.domain import intensity
from coach.domain.chat import LanguageModelUnavailable
from coach.domain.flow import HistoryEntry, PendingOutcome, PendingReminder, SafetyReview, SubState, bounded_history
from coach.domain.message import MAX_BODY_CHARS
from coach.domain.reachability import Purpose, unreachable_reasons
from coach.domain.safety import SafetyHit, check_coach_output, screen
from coach.domain.sms_text import is_emoji, shape_sms
from coach.domain.tone import implicit_tone_signals, requested_tone_tags
from coach.ports import LanguageModel

DEFAULT_SEGMENT_BUDGET = 2


def run_turn(
    turn: TurnInput,
    *,
    llm: LanguageModel | None = None,
    rng: random.Random | None = None,
    segment_budget: int = DEFAULT_SEGMENT_BUDGET,
    time_left: Callable[[], float] | None = None,
) -> TurnResult:
    """One turn. With `llm` None (or failing, or out of its day's calls or tokens, or out of time) the offline
    coach answers. `time_left`: seconds the invocation can still spend on the LLM. `rng` defaults to one
    seeded by the participant and the time, so a redelivered turn computes the same result."""
    ctx = TurnContext(
        flow=turn.flow.model_copy(deep=True),
        participant=turn.participant,
        now=turn.now,
        rng=rng or random.Random(f"{turn.flow.participant_id}|{turn.now.isoformat()}"),
        segment_budget=segment_budget,
    )
    profile_before, tone_before = ctx.profile.model_copy(deep=True), list(ctx.flow.tone.active)
    model = _llm_for(ctx, turn, llm, time_left)
    if turn.event is None:
        outgoing, coach = _on_texts(ctx, turn, model)
    else:
        outgoing, coach = _on_event(ctx, turn, model)
    shaped = [
        Outgoing(
            text=shape_sms(o.text, emojis_allowed=ctx.flow.tone.emojis_allowed, segment_budget=segment_budget),
            purpose=o.purpose,
        )
        for o in outgoing
        if o.text.strip()
    ]
    for reply in shaped:
        _remember(ctx, "assistant", reply.text)
    if turn.answering is not None:
        ctx.flow.last_processed_inbound = turn.answering
    if model is not None:
        _account(ctx, model.allowance, coach if shaped else "none")
    if changes := profile_changes(profile_before, ctx.profile):
        ctx.record("profile_changed", fields=changes)
    if ctx.flow.tone.active != tone_before:
        ctx.record("tone_changed", before=tone_before, after=ctx.flow.tone.active)
    ctx.flow.updated_at = turn.now
    return TurnResult(flow=ctx.flow, texts=shaped, events=ctx.events, coach=coach if shaped else "none")


@dataclass
class _Llm:
    """The model this turn may use, and what it may still spend."""

    model: LanguageModel
    allowance: LlmAllowance


def _local_day(ctx: TurnContext) -> str:
    return ctx.now.astimezone(ZoneInfo(ctx.participant.timezone)).date().isoformat()


def _llm_for(
    ctx: TurnContext, turn: TurnInput, llm: LanguageModel | None, time_left: Callable[[], float] | None
) -> _Llm | None:
    """The LLM with what is left of the participant's day (calls and tokens, failed calls included), or None
    (the offline coach) when nothing is left or the study's budget is spent."""
    if llm is None:
        return None
    if turn.llm_off_reason is not None:
        ctx.record("llm_not_used", reason=turn.llm_off_reason)
        return None
    flow = ctx.flow
    today = flow.llm_day == _local_day(ctx)
    calls = flow.llm_calls_that_day if today else 0
    tokens = flow.llm_tokens_that_day if today else 0
    calls_left = None if turn.daily_llm_calls is None else turn.daily_llm_calls - calls
    tokens_left = None if turn.daily_llm_tokens is None else turn.daily_llm_tokens - tokens
    if (calls_left is not None and calls_left <= 0) or (tokens_left is not None and tokens_left <= 0):
        if turn.daily_llm_calls != 0:  # 0: a study without LLM turns, nothing to report
            ctx.record(
                "llm_daily_cap",
                calls=calls,
                tokens=tokens,
                cap_calls=turn.daily_llm_calls,
                cap_tokens=turn.daily_llm_tokens,
            )
        return None
    return _Llm(llm, LlmAllowance(calls_left=calls_left, tokens_left=tokens_left, time_left=time_left))


def _account(ctx: TurnContext, allowance: LlmAllowance, coach: str) -> None:
    """The day's LLM calls and tokens, and the turn's usage on record (which model wrote what, at what cost)."""
    if allowance.calls == 0:
        return
    flow, day = ctx.flow, _local_day(ctx)
    if flow.llm_day != day:
        flow.llm_day, flow.llm_calls_that_day, flow.llm_tokens_that_day = day, 0, 0
    flow.llm_calls_that_day += allowance.calls
    flow.llm_tokens_that_day += allowance.tokens
    ctx.record(
        "llm_usage",
        calls=allowance.calls,
        prompt_tokens=allowance.prompt_tokens,
        completion_tokens=allowance.completion_tokens,
        models=allowance.models,
        prompt_version=PROMPT_VERSION,
        prompt_hash=prompt_hash(),
        answered_by=coach,
    )


Replies = tuple[list[Outgoing], str]  # the texts and who wrote them: "llm", "offline", "safety" or "none"
_NOTHING: Replies = ([], "none")


def _for(purpose: Purpose, texts: list[str], coach: str = "offline") -> Replies:
    return [Outgoing(text=t, purpose=purpose) for t in texts], coach


def _remember(ctx: TurnContext, role: str, text: str) -> None:
    """Append to the bounded history (the transcript items keep everything)."""
    entry = HistoryEntry(role="user" if role == "user" else "assistant", content=text[:MAX_BODY_CHARS], at=ctx.now)
    ctx.flow.history = bounded_history([*ctx.flow.history, entry])


def _unreachable(ctx: TurnContext, turn: TurnInput, purpose: Purpose) -> tuple[str, ...]:
    """The reachability rule on the working state, at the firing's slot (or now) in the participant's zone."""
    moment = turn.firing.slot if turn.firing is not None else ctx.now
    local = moment.astimezone(ZoneInfo(ctx.participant.timezone)).time()
    return unreachable_reasons(ctx.participant, ctx.flow, purpose, local=local, quiet=turn.quiet_hours)


def _withheld(ctx: TurnContext, turn: TurnInput, purpose: Purpose, reasons: tuple[str, ...]) -> Replies:
    kind = "reply_withheld" if purpose is Purpose.REPLY else "message_withheld"
    event = str(turn.event) if turn.event is not None else "texts"
    ctx.record(kind, event=event, purpose=purpose.value, reason=reasons[0], reasons=list(reasons))
    return _NOTHING


def _adapt_tone(ctx: TurnContext, text: str) -> None:
    """Explicit requests count at once; implicit signals only in FEEDBACK, where the person writes freely
    (answers to intake questions are short because the questions are)."""
    tone = ctx.flow.tone.with_explicit(requested_tone_tags(text))
    if ctx.flow.sub_state is not SubState.FEEDBACK:
        ctx.flow.tone = tone
        return
    signals = implicit_tone_signals(text, has_emoji=any(is_emoji(c) for c in text))
    ctx.flow.tone = tone.with_implicit(signals, ctx.now)


def _coach_reply(ctx: TurnContext, llm: _Llm | None, text: str) -> tuple[list[str], str]:
    """The LLM's answer when it gives one, else the offline coach's."""
    if llm is not None:
        trial = ctx.clone()
        try:
            reply = llm_reply(trial, llm.model, None, llm.allowance)
        except LanguageModelUnavailable as exc:
            ctx.record("llm_fallback", kind=exc.kind, reason=str(exc)[:200])
        else:
            # What the LLM wrote goes out only when it gives no medical or diet advice, no calorie or weight
            # numbers and no links (coach.domain.safety); else the offline coach answers, and the record says why.
            if refused := check_coach_output(reply):
                ctx.record("llm_fallback", kind="output_check", reason=", ".join(refused), reasons=refused)
            else:
                ctx.flow, ctx.events = trial.flow, trial.events
                return [reply], "llm"
    return offline_reply(ctx, text), "offline"


def _on_texts(ctx: TurnContext, turn: TurnInput, llm: _Llm | None) -> Replies:
    for text in turn.texts:
        _remember(ctx, "user", text)
    if (outcome := ctx.flow.awaiting_outcome) is not None:
        # The first text that arrived after the decision point decides its proximal outcome (one sent before
        # it, answered late, is no reply to it): in the window or not, by when it arrived.
        arrivals = [at for at in (turn.received_at or [ctx.now]) if at >= outcome.since]
        if arrivals:
            ctx.flow.awaiting_outcome = None
            if (replied_at := min(arrivals)) <= outcome.until:
                minutes = round((replied_at - outcome.since).total_seconds() / 60, 1)
                ctx.record(
                    "proximal_outcome",
                    decision_id=outcome.decision_id,
                    replied_at=replied_at.isoformat(),
                    minutes=minutes,
                )
    if (pending := ctx.flow.pending_reminder) is not None:
        ctx.flow.pending_reminder = None  # answered: its schedule goes with it
        ctx.record("nudge_responded", nudge_key=pending.nudge_key, responded_at=ctx.now.isoformat())
    if (hit := _screened(turn.texts)) is not None:
        return _safety_reply(ctx, turn, hit)
    if reasons := _unreachable(ctx, turn, Purpose.REPLY):
        return _withheld(ctx, turn, Purpose.REPLY, reasons)
    text = "\n".join(turn.texts)
    _adapt_tone(ctx, text)
    if ctx.flow.consent is None:
        if ctx.flow.intake_question is None:  # texted before the greeting went out
            return _for(Purpose.REPLY, greeting(ctx, turn.consent_texts))
        return _for(Purpose.REPLY, answer_consent(ctx, text, turn.consent_texts))
    if ctx.flow.awaiting_intensity:
        ctx.flow.awaiting_intensity = False  # asked once: an answer to something else is not trapped here
        if (answer := intensity.read_answer(text)) is not None:
            ctx.profile.intensity = intensity.adjusted(ctx.profile.intensity, answer)
            ctx.record("intensity_answered", answer=answer, intensity=ctx.profile.intensity)
            return _for(Purpose.REPLY, [intensity.acknowledgement(answer)])
    replies, coach = _coach_reply(ctx, llm, text)
    outgoing, _ = _for(Purpose.REPLY, replies)
    if turn.intensity_check and _succeeded(ctx):
        if reasons := _unreachable(ctx, turn, Purpose.INTENSITY_CHECK):
            ctx.record("intensity_check_withheld", reason=reasons[0], reasons=list(reasons))
        elif _ask_intensity(ctx):
            outgoing.append(Outgoing(text=intensity.QUESTION, purpose=Purpose.INTENSITY_CHECK))
    return outgoing, coach


def _screened(texts: list[str]) -> SafetyHit | None:
    """The first safety concern in the turn's texts, if any (coach.domain.safety)."""
    return next((hit for hit in map(screen, texts) if hit is not None), None)


def _safety_reply(ctx: TurnContext, turn: TurnInput, hit: SafetyHit) -> Replies:
    """Before every bot, LLM or offline: a text that screens as a safety concern gets the crisis text and no
    habit content, the participant is flagged for a researcher's review (nothing the system starts itself
    goes out until it is cleared: the reachability rule), and the event (which rule, not the text) alerts
    the research team (coach.services.turns saves the alert with the turn). Flagged and alerted even when
    no reply may go out (opted out, withdrawn): the people running the study still need to know."""
    ctx.flow.safety_review = SafetyReview(
        category=hit.category.value, rule=hit.rule, flagged_at=ctx.now, message_id=turn.answering
    )
    ctx.flow.offered_try_now = False  # "ok" to the crisis text is no answer to a habit offer
    ctx.record("safety_flag", category=hit.category.value, rule=hit.rule, sub_state=ctx.flow.sub_state.value)
    if reasons := _unreachable(ctx, turn, Purpose.REPLY):
        return _withheld(ctx, turn, Purpose.REPLY, reasons)
    return _for(Purpose.REPLY, [turn.crisis_text], "safety")


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


def _on_event(ctx: TurnContext, turn: TurnInput, llm: _Llm | None) -> Replies:
    event = turn.event
    if event is TurnEvent.RESET:
        return _reset(ctx, turn)
    if event is TurnEvent.TRANSITION:
        return _transition(ctx, turn)
    if event is TurnEvent.REMINDER:
        return _reminder(ctx, turn)
    if event is TurnEvent.DAILY_NUDGE:
        return _daily_nudge(ctx, turn, llm)
    if event is TurnEvent.ONE_OFF:
        return _one_off(ctx, turn)
    if reasons := _unreachable(ctx, turn, Purpose.GREETING):
        return _withheld(ctx, turn, Purpose.GREETING, reasons)
    return _for(Purpose.GREETING, greeting(ctx, turn.consent_texts))


def _expired(ctx: TurnContext, turn: TurnInput, purpose: Purpose) -> bool:
    """A firing past its validity window: nothing goes out for it, and the record says so."""
    firing = turn.firing
    if firing is None or ctx.now <= firing.valid_until:
        return False
    ctx.record(
        "nudge_expired",
        purpose=purpose.value,
        key=firing.key,
        slot=firing.slot.isoformat(),
        valid_until=firing.valid_until.isoformat(),
        reason="fired_after_its_window",
    )
    return True


def _daily_nudge(ctx: TurnContext, turn: TurnInput, llm: _Llm | None) -> Replies:
    if reasons := _unreachable(ctx, turn, Purpose.NUDGE):
        return _withheld(ctx, turn, Purpose.NUDGE, reasons)
    if _expired(ctx, turn, Purpose.NUDGE):
        return _NOTHING
    ctx.flow.offered_try_now = False  # a new day's prompt replaces yesterday's offer
    if missing := ctx.profile.missing_for_prompt():  # the repair path: ask for it instead of silence
        return _for(Purpose.NUDGE, ask_for_missing(ctx, missing, occasion="daily_nudge"))
    prompt, coach = _todays_prompt(ctx, llm)
    deliver_habit_prompt(ctx, prompt, occasion="daily_nudge", written_by="llm" if coach == "llm" else "template")
    firing = turn.firing
    if firing is not None and firing.outcome_window:
        ctx.flow.awaiting_outcome = PendingOutcome(
            decision_id=firing.key, since=firing.slot, until=firing.slot + firing.outcome_window
        )
    if firing is not None and firing.reminder_after:
        due = firing.slot + firing.reminder_after
        ctx.flow.pending_reminder = PendingReminder(nudge_key=firing.key, due_at=due)
        ctx.record("reminder_scheduled", nudge_key=firing.key, due_at=due.isoformat())
    return _for(Purpose.NUDGE, [prompt.text], coach)


def _todays_prompt(ctx: TurnContext, llm: _Llm | None) -> tuple[HabitPrompt, str]:
    """The agreed habit's prompt: the LLM's when one is configured and what it wrote holds up (coach.bots.
    llm_habit_prompt), else the template's; who wrote it, and why not the LLM, are on record."""
    template = generate_habit_prompt(ctx.profile, ctx.rng, ctx.flow.last_habit_prompt)
    if not isinstance(template, HabitPrompt):  # checked by the caller; kept for the type
        raise ValueError(f"profile incomplete: {template.fields}")
    if llm is None:
        return template, "offline"
    try:
        text, problems = llm_habit_prompt(ctx, llm.model, llm.allowance, template, ctx.segment_budget)
    except LanguageModelUnavailable as exc:
        ctx.record("llm_fallback", kind=exc.kind, reason=str(exc)[:200])
        return template, "offline"
    if problems:
        ctx.record("habit_prompt_fallback", reasons=problems, refused=text[:300])
        return template, "offline"
    return HabitPrompt(text=text, action=template.action), "llm"


def _reminder(ctx: TurnContext, turn: TurnInput) -> Replies:
    pending = ctx.flow.pending_reminder
    key = turn.firing.key if turn.firing is not None else (pending.nudge_key if pending else "")
    if pending is None or pending.nudge_key != key:  # answered, or a newer nudge's reminder replaced it
        ctx.record("reminder_skipped", nudge_key=key, reason="answered", reasons=["answered"])
        return _NOTHING
    ctx.flow.pending_reminder = None
    reasons = _unreachable(ctx, turn, Purpose.REMINDER)
    if turn.firing is not None and not turn.firing.nudge_sent:
        reasons = (*reasons, "nudge_not_sent")
    if reasons:
        ctx.record("reminder_skipped", nudge_key=key, reason=reasons[0], reasons=list(reasons))
        return _NOTHING
    if _expired(ctx, turn, Purpose.REMINDER):
        return _NOTHING
    ctx.record("reminder_sent", nudge_key=key)
    return _for(Purpose.REMINDER, [REMINDER])


def _transition(ctx: TurnContext, turn: TurnInput) -> Replies:
    pending = ctx.flow.pending_transition
    wanted = turn.firing.transition_id if turn.firing is not None else None
    if wanted is not None and (pending is None or pending.id != wanted):
        ctx.record("transition_skipped", transition_id=wanted, reason="superseded", reasons=["superseded"])
        return _NOTHING
    ctx.flow.pending_transition = None
    to = turn.to_sub_state or (pending.to_sub_state if pending else SubState.FEEDBACK)
    if to is SubState.FEEDBACK:
        if not ctx.enter_feedback("delayed_transition"):
            return _NOTHING
        to = SubState.INTAKE  # refused: the profile still misses a field, so intake goes on and asks for it
    else:
        ctx.move_to(to)
    if to is not SubState.INTAKE or not ctx.flow.consent:
        return _NOTHING
    if reasons := _unreachable(ctx, turn, Purpose.TRANSITION):
        return _withheld(ctx, turn, Purpose.TRANSITION, reasons)
    return _for(Purpose.TRANSITION, next_intake_step(ctx))


def _one_off(ctx: TurnContext, turn: TurnInput) -> Replies:
    """A researcher's message, as written (shaped for SMS like every text), if the participant may get it."""
    quiet = None if turn.override_quiet_hours else turn.quiet_hours
    local = ctx.now.astimezone(ZoneInfo(ctx.participant.timezone)).time()
    if reasons := unreachable_reasons(ctx.participant, ctx.flow, Purpose.ONE_OFF, local=local, quiet=quiet):
        return _withheld(ctx, turn, Purpose.ONE_OFF, reasons)
    ctx.record("one_off_sent", override_quiet_hours=turn.override_quiet_hours)
    return _for(Purpose.ONE_OFF, [turn.message or ""], "researcher")


def _reset(ctx: TurnContext, turn: TurnInput) -> Replies:
    consented = ctx.flow.consent is True
    ctx.flow = ctx.flow.reset(ctx.now)  # the daily nudge, reminder and transition go, and their schedules
    ctx.record("conversation_reset")
    if reasons := _unreachable(ctx, turn, Purpose.GREETING):
        return _withheld(ctx, turn, Purpose.GREETING, reasons)
    if not consented:
        return _for(Purpose.GREETING, greeting(ctx, turn.consent_texts))
    ctx.flow.consent = True
    return _for(Purpose.GREETING, ["Let's start fresh!", *next_intake_step(ctx)])
