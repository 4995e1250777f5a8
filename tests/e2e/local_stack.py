"""Start `python -m infra.local` as a new user would, and talk to it over HTTP with the stdlib."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import boto3

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
        timeout: float = 10.0,
    ) -> Reply:
        """`key="default"` sends the stack's API key, None sends none, any other string sends that; `timeout`:
        seconds to wait for the answer."""
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = self.api_key if key == "default" else key
        data = raw
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            sent.setdefault("content-type", "application/json")
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
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
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "API_KEY", "RESEARCHER_KEYS", "PUBLIC_BASE_URL")}
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


# --- the virtual clock and what the stack recorded -------------------------------------------------


def clock_now(stack: RunningStack) -> datetime:
    reply = stack.request("GET", "/_local/clock", key=None)
    assert reply.status == 200, reply.body
    return datetime.fromisoformat(reply.json()["now"])


def advance(stack: RunningStack, minutes: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Move the virtual clock on; what fired on the way (every attempt of every firing). `timeout`: seconds
    the firings on the way may take (a morning of a whole study's nudges takes more than the default)."""
    reply = stack.request("POST", "/_local/clock/advance", {"minutes": minutes}, key=None, timeout=timeout)
    assert reply.status == 200, reply.body
    fired: list[dict[str, Any]] = reply.json()["fired"]
    return fired


def advance_to(stack: RunningStack, moment: datetime, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Move the virtual clock to just past `moment` (whole minutes, as the endpoint takes them)."""
    return advance(stack, math.ceil((moment - clock_now(stack)) / timedelta(minutes=1)), timeout)


def drain(stack: RunningStack, seconds: float = 20.0) -> None:
    """Until every queued turn (and export) has run, for at most `seconds`."""
    body = {"timeout_seconds": seconds}
    reply = stack.request("POST", "/_local/pump/drain", body, key=None, timeout=seconds + 10)
    assert reply.status == 200, reply.body


def next_local(now: datetime, zone: ZoneInfo, at: clock_time) -> datetime:
    """The next moment after `now` that reads `at` in `zone`."""
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), at, tzinfo=zone)
    return today if today > local else datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)


def created(message: dict[str, Any]) -> datetime:
    """When the fake Twilio took a message (its date_created, RFC 2822 as Twilio writes it)."""
    return parsedate_to_datetime(message["date_created"]).astimezone(UTC)


def research_events(stack: RunningStack, participant_id: str) -> list[dict[str, Any]]:
    """Every research event of the participant, through the researchers' API."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        query = f"?limit=100&next_token={token}" if token else "?limit=100"
        reply = stack.request("GET", f"/conversation/participants/{participant_id}/events{query}")
        assert reply.status == 200, reply.body
        page = reply.json()
        found.extend(page["items"])
        token = page["next_token"]
        if not token:
            return found


def moto_endpoint(stack: RunningStack) -> str:
    """The URL of the stack's moto server, as its banner prints it."""
    found = re.search(r"AWS \(moto\)\s+(http://\S+)", stack.output())
    assert found, stack.output()
    return found.group(1)


def moto_client(stack: RunningStack, service: str) -> Any:
    """A boto3 client for the stack's moto server (any credentials do)."""
    return boto3.client(
        service,
        endpoint_url=moto_endpoint(stack),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def api_key_ids(stack: RunningStack) -> dict[str, str]:
    """Each researcher's API key id by name, from moto's API Gateway: what an event's apiKeyId holds for them."""
    items = moto_client(stack, "apigateway").get_api_keys(limit=500)["items"]
    return {item["name"]: item["id"] for item in items}
