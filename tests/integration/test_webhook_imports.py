"""The webhook starts light: importing it loads neither `openai` nor twilio's REST client (only its validator)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize("heavy", ["openai", "twilio.rest", "requests"])
def test_importing_the_webhook_does_not_import_heavy_clients(heavy: str) -> None:
    # Given a fresh interpreter
    code = (
        "import sys, functions.webhook.app; "
        "assert 'twilio.request_validator' in sys.modules, 'the validator is what checks signatures'; "
        f"sys.exit(1 if {heavy!r} in sys.modules else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    # When it imports the webhook's handler module
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    # Then the heavy module was never loaded
    assert done.returncode == 0, done.stderr or f"{heavy} was imported"
