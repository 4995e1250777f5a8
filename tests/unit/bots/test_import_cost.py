"""The engine and the adapter module load without `openai`: only a real LLM call pays its ~0.85 s import."""

from __future__ import annotations

import os
import subprocess
import sys


def test_importing_the_engine_and_the_adapter_does_not_import_openai() -> None:
    code = (
        "import sys, coach.bots.engine, coach.adapters.openai_llm, infra.chat; "
        "sys.exit(1 if 'openai' in sys.modules else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert done.returncode == 0, done.stderr
