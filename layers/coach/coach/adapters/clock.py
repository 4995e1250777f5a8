"""The real clock, and the one place a process's own clock can be put in its stead.

On AWS every function reads SystemClock. The local stack installs its virtual clock (infra/local/virtual_clock.py,
not shipped in the layer) with install_clock(), and sets VIRTUAL_CLOCK=true, so its handlers read that one
(coach.bootstrap.default_clock).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coach.ports import Clock


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


_installed: Clock | None = None
_lock = threading.Lock()


def install_clock(clock: Clock) -> None:
    """Make `clock` the one every handler of this process reads when VIRTUAL_CLOCK=true."""
    global _installed
    with _lock:
        _installed = clock


def installed_clock() -> Clock:
    """The clock install_clock() put in place; RuntimeError when there is none (VIRTUAL_CLOCK=true outside
    the local stack)."""
    with _lock:
        if _installed is None:
            raise RuntimeError("VIRTUAL_CLOCK=true, but no virtual clock is installed: only the local stack has one")
        return _installed
