"""Twilio webhooks. Placeholder until issue 4 ("Inbound SMS pipeline") writes the real handler.

It answers 501 so nobody mistakes it for a working webhook; it never imports openai.
"""

from __future__ import annotations

import json
from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {
        "statusCode": 501,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": "the Twilio webhook is not implemented yet (issue 4)", "details": []}),
    }
