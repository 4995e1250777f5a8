"""PacedSmsSender on a simulated monotonic clock: sends spaced by the interval, the window left handed to Twilio,
a message whose window closes before its turn never sent, the wiring from SEND_RATE and NUDGE_CONCURRENCY."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from coach.adapters.paced_sender import PacedSmsSender, paced_twilio_sender, send_interval
from coach.adapters.twilio_sms import TwilioSmsSender
from coach.bootstrap import build_nudge_service
from coach.domain.errors import DeliveryUnavailable, SendWindowMissed
from coach.ports import SentSms
from coach.settings import PromptGeneratorSettings
from tests.support.memory import InMemoryLlmBudget, InMemoryParticipantStore, InMemoryScheduler
from tests.support.memory_conversation import InMemoryConversationStore

ALICE, BOB = "+12065550100", "+12065550101"


@dataclass
class SimulatedTime:
    """A monotonic clock that moves only when someone sleeps on it."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class Recorded:
    """Stands in for Twilio: each send with the moment it happened and the ValidityPeriod asked for."""

    time: SimulatedTime
    sent: list[tuple[float, str, int | None]] = field(default_factory=list)
    failing: Exception | None = None
    looked_up: int = 0

    def send(
        self,
        to: str,
        body: str,
        *,
        validity_seconds: int | None = None,
        callback_params: Mapping[str, str] | None = None,
        claimed: Callable[[str], bool] = lambda sid: False,
    ) -> SentSms:
        self.sent.append((self.time.now, to, validity_seconds))
        if self.failing is not None:
            raise self.failing
        return SentSms(sid=f"SM{len(self.sent):032d}", status="queued", to=to, body=body)

    def find_sent(
        self, to: str, body: str, since: datetime, *, claimed: Callable[[str], bool] = lambda sid: False
    ) -> SentSms | None:
        self.looked_up += 1
        return None


def paced(interval: float) -> tuple[PacedSmsSender, Recorded, SimulatedTime]:
    time = SimulatedTime()
    twilio = Recorded(time)
    return PacedSmsSender(twilio, interval, monotonic=time.monotonic, sleep=time.sleep), twilio, time


def test_sends_in_a_row_are_spaced_by_the_interval_and_the_first_goes_at_once() -> None:
    sender, twilio, time = paced(interval=5)

    for n in range(4):
        sender.send(ALICE if n % 2 else BOB, f"nudge {n}")

    assert [at - 1000 for at, _, _ in twilio.sent] == [0, 5, 10, 15]
    assert time.sleeps == [5, 5, 5]


def test_a_send_after_a_quiet_spell_does_not_wait_and_one_inside_the_interval_waits_the_rest() -> None:
    sender, twilio, time = paced(interval=5)
    sender.send(ALICE, "first")

    time.now += 7  # the next firing came later than the interval
    sender.send(BOB, "second")
    time.now += 2  # and the one after it sooner
    sender.send(ALICE, "third")

    assert [at - 1000 for at, _, _ in twilio.sent] == [0, 7, 12]
    assert time.sleeps == [3]


def test_twilio_keeps_a_message_only_for_the_window_left_after_the_wait() -> None:
    sender, twilio, time = paced(interval=5)
    sender.send(ALICE, "first", validity_seconds=3600)
    time.now += 1.5

    sender.send(BOB, "second", validity_seconds=600)

    assert twilio.sent[0][2] == 3600
    assert twilio.sent[1][2] == 596  # 3.5 s waited, rounded down: Twilio never holds it past the window
    assert sender.send(ALICE, "a reply, no window")
    assert twilio.sent[2][2] is None


def test_a_message_whose_window_closes_before_its_turn_is_not_sent_and_keeps_no_slot() -> None:
    sender, twilio, time = paced(interval=5)
    sender.send(ALICE, "first", validity_seconds=3600)

    with pytest.raises(SendWindowMissed):
        sender.send(BOB, "too late", validity_seconds=4)  # its turn is 5 s away
    with pytest.raises(DeliveryUnavailable):  # what a caller that knows no better sees: try again later
        sender.send(BOB, "too late", validity_seconds=5)  # its turn leaves nothing of the window

    assert [to for _, to, _ in twilio.sent] == [ALICE]
    assert time.sleeps == []  # it did not wait for a send it could not make
    sender.send(BOB, "in time", validity_seconds=6)
    assert twilio.sent[-1] == (1005, BOB, 1)  # the missed ones took no turn of their own


def test_a_sleep_that_overruns_the_window_still_sends_nothing() -> None:
    time = SimulatedTime()
    twilio = Recorded(time)

    def oversleep(seconds: float) -> None:
        time.sleep(seconds + 2)  # a frozen container wakes late

    sender = PacedSmsSender(twilio, 5, monotonic=time.monotonic, sleep=oversleep)
    sender.send(ALICE, "first")

    with pytest.raises(SendWindowMissed):
        sender.send(BOB, "second", validity_seconds=7)

    assert [to for _, to, _ in twilio.sent] == [ALICE]


def test_a_failed_send_still_takes_its_turn_since_twilio_may_have_taken_it() -> None:
    sender, twilio, _ = paced(interval=5)
    twilio.failing = DeliveryUnavailable("Twilio answered 503")

    with pytest.raises(DeliveryUnavailable):
        sender.send(ALICE, "first")
    twilio.failing = None
    sender.send(ALICE, "first, again")

    assert [at - 1000 for at, _, _ in twilio.sent] == [0, 5]


def test_looking_up_an_earlier_send_is_not_paced() -> None:
    sender, twilio, time = paced(interval=5)
    sender.send(ALICE, "first")

    assert sender.find_sent(ALICE, "first", datetime(2026, 6, 1, tzinfo=UTC)) is None
    assert sender.find_sent(ALICE, "first", datetime(2026, 6, 1, tzinfo=UTC)) is None

    assert twilio.looked_up == 2
    assert time.sleeps == []


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        PacedSmsSender(Recorded(SimulatedTime()), -1)


# --- from the settings ------------------------------------------------------------------------------


def settings(**values: object) -> PromptGeneratorSettings:
    return PromptGeneratorSettings(table_name="coach", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "concurrency", "interval"),
    [(1, 5, 5.0), (10, 5, 0.5), (100, 5, 0.05), (100, 50, 0.5), (0.5, 5, 10.0)],
)
def test_the_containers_share_the_send_rate(rate: float, concurrency: int, interval: float) -> None:
    assert send_interval(settings(send_rate=rate, nudge_concurrency=concurrency)) == pytest.approx(interval)


def test_the_defaults_are_a_long_code_shared_by_five_containers() -> None:
    configured = settings()

    assert (configured.send_rate, configured.nudge_concurrency) == (1.0, 5)


def test_a_pace_longer_than_an_invocation_can_wait_stops_the_function_at_start() -> None:
    with pytest.raises(ValidationError, match="lower NudgeConcurrency or raise SendRate"):
        settings(send_rate=1, nudge_concurrency=20)
    with pytest.raises(ValidationError):
        settings(send_rate=0)


def test_the_environment_sets_the_rate_and_the_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEND_RATE", "10")
    monkeypatch.setenv("NUDGE_CONCURRENCY", "8")

    assert send_interval(settings()) == pytest.approx(0.8)


def test_the_prompt_generator_sends_through_twilio_at_the_pace() -> None:
    sender = paced_twilio_sender(settings(send_rate=4, nudge_concurrency=2))

    assert isinstance(sender.sender, TwilioSmsSender)
    assert sender.interval == pytest.approx(0.5)


def test_the_nudge_service_is_built_with_the_paced_sender_unless_given_one() -> None:
    configured = settings(send_rate=10, nudge_concurrency=5)
    given = Recorded(SimulatedTime())
    memory = InMemoryParticipantStore()
    parts: dict[str, Any] = {
        "participants": memory,
        "conversation": InMemoryConversationStore(memory),
        "scheduler": InMemoryScheduler(),
        "budget": InMemoryLlmBudget(),
        "language_model": lambda: None,
    }

    built = build_nudge_service(configured, **parts)
    chosen = build_nudge_service(configured, sender=given, **parts)

    paced_sender = built.turns.outbox.sender
    assert isinstance(paced_sender, PacedSmsSender)
    assert paced_sender.interval == pytest.approx(0.5)
    assert chosen.turns.outbox.sender is given
