"""Daily nudges and reminders from EventBridge Scheduler. Placeholder until issue 5 writes it."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("the prompt generator is not implemented yet (issue 5)")
