"""The feedback tracker: what a reply to a nudge means for the profile (and the schedule)."""

from __future__ import annotations

from dataclasses import dataclass

from coach.bots.turn import TurnContext
from coach.domain.feedback import Classification, FeedbackKind


@dataclass(frozen=True)
class FeedbackOutcome:
    kind: FeedbackKind
    changed: tuple[str, ...]  # profile fields changed
    new_time: str | None = None  # set when the daily schedule moves


def track_feedback(ctx: TurnContext, feedback: Classification) -> FeedbackOutcome:
    """Apply one classified reply: counts, barrier, tweak, a new time or anchor. Records a research event."""
    profile = ctx.profile
    changed: list[str] = []
    new_time = None
    if feedback.kind is FeedbackKind.COMPLETED:
        profile.success_count += 1
        changed.append("success_count")
        if ctx.flow.last_habit_prompt:
            changed += ctx.update_profile({"last_successful_prompt": ctx.flow.last_habit_prompt})
    elif feedback.kind in (FeedbackKind.SKIPPED, FeedbackKind.ATTEMPTED):
        # An attempt that stopped short has a barrier worth knowing as much as a skip does.
        changed += ctx.update_profile({"last_barrier": feedback.reason})
    elif feedback.kind is FeedbackKind.MODIFIED:
        changed += ctx.update_profile({"prompt_anchor": feedback.new_anchor, "last_tweak": feedback.reason})
        if feedback.new_time:
            changed += ctx.update_profile({"preferred_time": feedback.new_time})
            new_time = ctx.profile.preferred_time
            if new_time and (ctx.flow.daily_schedule is None or ctx.flow.daily_schedule.time != new_time):
                ctx.schedule_daily(new_time)
    ctx.record(
        "feedback_classified",
        kind=feedback.kind.value,
        changed=changed,
        new_time=feedback.new_time,
        new_anchor=feedback.new_anchor,
    )
    return FeedbackOutcome(kind=feedback.kind, changed=tuple(changed), new_time=new_time)
