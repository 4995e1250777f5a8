"""The local stack's virtual clock over HTTP (DESIGN §7), so a person can see tomorrow's nudge now:

  GET  /_local/clock                              {"now": "2026-06-02T13:00:00Z", "offset_minutes": 1440.0}
  POST /_local/clock/advance  {"minutes": 1440}   {"now": ..., "offset_minutes": ..., "fired": [...]}

Every handler reads the clock with VIRTUAL_CLOCK=true (coach.bootstrap.default_clock), set here, and the
clock installed here (coach.adapters.clock.install_clock). Advancing
fires, one at a time and each at its own moment, every schedule that falls due on the way (see
infra/local/scheduler.py); "fired" lists them in order: schedule, at, kind, participant_id, result,
attempt (Lambda's retries of a failed firing are attempts 2 and 3).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from infra.local.scheduler import AdvancingClock, SchedulerExtension, iso
from infra.local.web import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

PREFIX = "/_local/clock"
MAX_ADVANCE_MINUTES = 7 * 24 * 60  # a week: longer spans are a loop of calls, each reporting what fired
USAGE = '{"minutes": N} with 0 < N <= ' + str(MAX_ADVANCE_MINUTES)


class ClockExtension:
    """Extension: the clock endpoints, advancing through the scheduler extension's emulator."""

    def __init__(self, scheduler: SchedulerExtension) -> None:
        self.scheduler = scheduler

    def __call__(self, stack: LocalStack) -> None:
        from coach.adapters.clock import install_clock  # the layer is on sys.path only once the stack runs

        stack.mount(PREFIX, self.handle)
        install_clock(self.clock)  # what the handlers read with VIRTUAL_CLOCK=true: the clock the emulator moves
        stack.add_environment({"VIRTUAL_CLOCK": "true"})
        advance = f"curl -s -X POST {stack.base_url}{PREFIX}/advance -d '{{\"minutes\": 1440}}'"
        stack.add_banner_line("Virtual clock", f"{stack.base_url}{PREFIX}  (every handler reads it)")
        stack.add_banner_line("Tomorrow now", f"{advance}  (fires what falls due on the way)")

    @property
    def clock(self) -> AdvancingClock:
        if self.scheduler.clock is None:
            raise RuntimeError("the scheduler extension has not run")
        return self.scheduler.clock

    def handle(self, request: HttpRequest) -> HttpResponse | None:
        what = request.path.removeprefix(PREFIX).strip("/")
        if what == "" and request.method == "GET":
            return json_response(200, self._reading())
        if what == "advance" and request.method == "POST":
            return self._advance(request)
        if what in ("", "advance"):
            return json_response(405, {"error": "method not allowed", "details": f"{request.method} {request.path}"})
        return None

    def _advance(self, request: HttpRequest) -> HttpResponse:
        try:
            payload = request.json()
        except ValueError:
            return json_response(400, {"error": "invalid advance", "details": f"the body is not JSON: send {USAGE}"})
        try:
            minutes = _minutes(payload)
        except ValueError as exc:
            return json_response(400, {"error": "invalid advance", "details": str(exc)})
        emulator = self.scheduler.emulator
        if emulator is None:  # no schedule group in the template: nothing can fall due
            self.clock.advance(timedelta(minutes=minutes))
            fired: list[dict[str, Any]] = []
        else:
            fired = [firing.as_json() for firing in emulator.advance(timedelta(minutes=minutes))]
        return json_response(200, {**self._reading(), "fired": fired})

    def _reading(self) -> dict[str, Any]:
        clock = self.clock
        offset = getattr(clock, "offset", None)
        minutes = round(offset.total_seconds() / 60, 3) if isinstance(offset, timedelta) else None
        return {"now": iso(clock.now()), "offset_minutes": minutes}


def _minutes(payload: Any) -> float:
    """The minutes of an advance request; ValueError saying what is wrong."""
    if not isinstance(payload, dict) or set(payload) != {"minutes"}:
        raise ValueError(f"send {USAGE}")
    minutes = payload["minutes"]
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not math.isfinite(minutes):
        raise ValueError(f"minutes must be a number: send {USAGE}")
    if not 0 < minutes <= MAX_ADVANCE_MINUTES:
        raise ValueError(f"minutes must be more than 0 and at most {MAX_ADVANCE_MINUTES}, got {minutes}")
    return float(minutes)
