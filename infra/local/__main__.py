"""`python -m infra.local` (`make run`): start the local stack and serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import signal
import sys

from infra.local.config import ConfigError, LocalConfig
from infra.local.intrinsics import TemplateError
from infra.local.stack import LocalStack

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def main() -> int:
    # Blocked before any thread starts, so every thread inherits the mask and the signals wait for
    # sigwait() below: no KeyboardInterrupt lands in the middle of a request or of moto's startup.
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        stack = LocalStack(LocalConfig.from_environ(os.environ))
        stack.start()
    except (ConfigError, TemplateError, OSError) as exc:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
        print(f"local stack: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        print(stack.banner(), flush=True)
        received = signal.sigwait(STOP_SIGNALS)
        print(f"\n{signal.Signals(received).name}: stopping", flush=True)
    finally:
        stack.stop()
    print("Local stack stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
