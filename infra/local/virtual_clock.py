"""The local stack's virtual clock: real time plus an offset that only grows, one per process.

The handlers read it through coach.adapters.clock.installed_clock() when VIRTUAL_CLOCK=true: the clock
extension (infra/local/clock.py) installs LOCAL_VIRTUAL_CLOCK there when the stack starts. It lives here, not
in the layer, because nothing on AWS uses it.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class VirtualClock:
    """Real time shifted forward by `advance`: the local stack shows tomorrow's nudge now. Thread-safe."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        if offset < timedelta(0):
            raise ValueError("the virtual clock only moves forward")
        self._offset = offset
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the virtual clock only moves forward")
        with self._lock:
            self._offset += delta
            return datetime.now(UTC) + self._offset

    @property
    def offset(self) -> timedelta:
        with self._lock:
            return self._offset


# One per process: the local stack runs every handler in its own process and advances this one.
LOCAL_VIRTUAL_CLOCK = VirtualClock()
