"""The SmsSender port at the sender's rate: each container starts at most one message every `interval` seconds.

A Twilio sender takes only so many messages a second (1 for a long code; more for a messaging service or a
short code) and queues what comes faster, so a burst of nudges due at one minute would leave late from
Twilio's queue. Lambda runs one invocation at a time per container and the prompt generator's reserved
concurrency caps its containers, so spacing each container's sends by NUDGE_CONCURRENCY / SEND_RATE seconds
keeps the account at SEND_RATE, after a first burst of at most one message per container. The backlog
waits in Lambda's asynchronous event queue, not here: a container holds one firing.

A message whose validity window would close before its turn comes is not sent: SendWindowMissed, before
anything reaches Twilio. Twilio is given the window left after the wait as the message's ValidityPeriod.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from coach.domain.errors import SendWindowMissed
from coach.domain.participant import mask_phone
from coach.observability import logger
from coach.ports import Clock, SentSms, SmsSender
from coach.settings import PromptGeneratorSettings

# Twilio's shortest ValidityPeriod: a message with less of its window left cannot be handed over in time.
MIN_VALIDITY_SECONDS = 1


class PacedSmsSender:
    """Implements coach.ports.SmsSender around `sender`. `monotonic` and `sleep` are injected, so tests and the
    bench run on a simulated clock."""

    def __init__(
        self,
        sender: SmsSender,
        interval: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if interval < 0:
            raise ValueError("the interval between sends cannot be negative")
        self.sender = sender
        self.interval = interval
        self._monotonic = monotonic
        self._sleep = sleep
        self._free_at = -math.inf  # when this container may start its next send
        self._lock = threading.Lock()  # the local stack runs a function's invocations in threads

    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = lambda sid: False,
    ) -> SentSms:
        asked = self._monotonic()
        with self._lock:
            start = max(asked, self._free_at)
            wait = start - asked
            if validity_seconds is not None and validity_seconds - wait < MIN_VALIDITY_SECONDS:
                self._missed(to, validity_seconds, wait)
            self._free_at = start + self.interval  # taken even if the send fails: Twilio may have seen it
        if wait > 0:
            logger.debug("sms paced", extra={"to": mask_phone(to), "wait_seconds": round(wait, 3)})
            self._sleep(wait)
        left = None
        if validity_seconds is not None:
            waited = self._monotonic() - asked  # a sleep may overrun: the window is what is left now
            left = math.floor(validity_seconds - waited)
            if left < MIN_VALIDITY_SECONDS:
                self._missed(to, validity_seconds, waited)
        return self.sender.send(to, body, validity_seconds=left, callback_params=callback_params, claimed=claimed)

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = lambda sid: False
    ) -> SentSms | None:
        return self.sender.find_sent(to, body, since, claimed=claimed)  # a lookup sends nothing: not paced

    def _missed(self, to: str, validity_seconds: int, wait: float) -> None:
        logger.warning(
            "sms not sent: its validity window closes before the send rate lets it go",
            extra={"to": mask_phone(to), "validity_seconds": validity_seconds, "wait_seconds": round(wait, 3)},
        )
        raise SendWindowMissed(f"{validity_seconds} s of the window left, {wait:.1f} s to wait for the send rate")


def send_interval(settings: PromptGeneratorSettings) -> float:
    """Seconds between one container's sends: the account's SEND_RATE shared by NUDGE_CONCURRENCY containers."""
    return settings.nudge_concurrency / settings.send_rate


def paced_twilio_sender(settings: PromptGeneratorSettings, clock: Clock | None = None) -> PacedSmsSender:
    """The prompt generator's sender: Twilio's REST API at SEND_RATE for the whole function."""
    from coach.adapters.twilio_sms import TwilioSmsSender
    from coach.settings import twilio_settings

    return PacedSmsSender(TwilioSmsSender(twilio_settings(), clock=clock), send_interval(settings))
