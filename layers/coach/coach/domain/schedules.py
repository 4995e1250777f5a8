"""How schedules are named and written: names derive from what they are for, so they can be found
again without listing, and stay within EventBridge Scheduler's 64 characters."""

from __future__ import annotations

import hashlib


def daily_schedule_name(participant_id: str) -> str:
    return f"nudge-{participant_id}"[:64]


def one_time_schedule_name(participant_id: str, purpose: str) -> str:
    digest = hashlib.sha256(purpose.encode("utf-8")).hexdigest()[:12]
    return f"once-{participant_id}-{digest}"[:64]


def transition_schedule_name(participant_id: str, outbox_key: str) -> str:
    return one_time_schedule_name(participant_id, f"transition#{outbox_key}")


def daily_cron(hhmm: str) -> str:
    """AWS's six-field cron for every day at HH:MM (read in the schedule's own timezone)."""
    hour, minute = (int(part) for part in hhmm.split(":"))
    return f"cron({minute} {hour} * * ? *)"
