"""Start `python -m infra.local` as a new user would, and talk to it over HTTP with the stdlib."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "Local stack ready"
START_DEADLINE_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    port: int
    api_key: str
    stdout: Path
    stderr: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = "default",
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """`key="default"` sends the stack's API key, None sends none, any other string sends that."""
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = self.api_key if key == "default" else key
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("content-type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return Reply(resp.status, dict(resp.headers.items()), resp.read())
        except urllib.error.HTTPError as err:
            with err:
                return Reply(err.code, dict(err.headers.items()), err.read())

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_stack(tmp: Path, *, port: int, api_key: str | None, extra_env: dict[str, str] | None = None) -> RunningStack:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "API_KEY", "PUBLIC_BASE_URL")}
    env.update({"PORT": str(port), "PYTHONPATH": f"layers/coach{os.pathsep}.", "PYTHONUNBUFFERED": "1"})
    if api_key is not None:
        env["API_KEY"] = api_key
    env.update(extra_env or {})
    stdout, stderr = tmp / f"stack-{port}.out", tmp / f"stack-{port}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, "-m", "infra.local"], cwd=ROOT, env=env, stdout=out, stderr=err)
    stack = RunningStack(process, port, api_key or "local-dev-key", stdout, stderr)
    wait_until_ready(stack)
    return stack


def wait_until_ready(stack: RunningStack) -> None:
    """Poll the output for the ready line until a deadline; fail fast when the process dies."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while READY_LINE not in stack.output():
        if time.monotonic() > deadline:
            stack.stop(signal.SIGKILL)
            raise AssertionError(f"the local stack did not get ready:\n{stack.output()}\n{stack.errors()}")
        try:
            code = stack.process.wait(timeout=0.05)  # doubles as the poll interval
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the local stack exited with {code}:\n{stack.output()}\n{stack.errors()}")
