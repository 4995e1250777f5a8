"""`make bench`: speed and request counts of the hot paths, each printed with the command that reproduces it.

  python -m tests.bench               everything
  python -m tests.bench cold-start    webhook import time against boto3 + its DynamoDB and SQS clients
  python -m tests.bench webhook       webhook handler time per request (warm, moto) and AWS requests per text
  python -m tests.bench turn          AWS requests per conversation turn as the transcript grows
  python -m tests.bench nudge         prompt-generator time and AWS requests per nudge, and a throughput projection
  python -m tests.bench text          our own code's time for a turn of long texts (1 and 10 coalesced, 1,600 chars)
  python -m tests.bench feedback      how well replies to a nudge are read: accuracy on the labelled table, per kind

Figures come from moto in this process: they compare our code paths, not AWS's latency (`text` runs the
engine alone, without stores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def show(title: str, value: str, command: str) -> None:
    print(f"{title:<58} {value:>22}   ({command})", flush=True)


MISSED: list[str] = []  # the figures that missed their goal, listed again at the end


def goal(title: str, value: str, target: str, met: bool, command: str) -> None:
    """A figure of issue 12's table: its value, its goal and whether it is met."""
    verdict = "ok" if met else "MISSED"
    if not met:
        MISSED.append(title)
    print(f"{title:<58} {value:>22}   goal {target:<12} {verdict:<6} ({command})", flush=True)


@contextmanager
def counting_aws_calls() -> Iterator[Counter[str]]:
    """Counts every AWS request of clients built from boto3's default session while inside."""
    counts: Counter[str] = Counter()

    def count(event_name: str, **_kwargs: Any) -> None:
        _, service, operation = event_name.split(".", 2)
        counts[f"{service}.{operation}"] += 1

    boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    boto3.DEFAULT_SESSION.events.register("before-call.*.*", count)
    from coach.bootstrap import forget_built_services

    forget_built_services()  # the handlers build new clients, which carry the counter
    try:
        yield counts
    finally:
        boto3.DEFAULT_SESSION.events.unregister("before-call.*.*", count)


def cold_start(runs: int = 7) -> None:
    """Import time of the webhook's module, against boto3 with its two clients, in fresh interpreters."""

    def median_import(code: str) -> float:
        timings = []
        for _ in range(runs):
            script = f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"
            env = {**os.environ, "PYTHONPATH": f"{ROOT}/layers/coach:{ROOT}", "AWS_DEFAULT_REGION": "us-east-1"}
            out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, env=env)
            timings.append(float(out.stdout.strip().splitlines()[-1]))
        return statistics.median(timings)

    boto = median_import("import boto3; boto3.client('dynamodb'); boto3.client('sqs')")
    webhook = median_import("import functions.webhook.app")
    show("webhook module import (median of fresh interpreters)", f"{webhook * 1000:.0f} ms", "bench cold-start")
    show("boto3 + DynamoDB and SQS clients", f"{boto * 1000:.0f} ms", "bench cold-start")
    show("webhook import / boto3 with its clients", f"{webhook / boto:.2f}x", "bench cold-start")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, functions.webhook.app; print('openai' in sys.modules)"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": f"{ROOT}/layers/coach:{ROOT}", "AWS_DEFAULT_REGION": "us-east-1"},
    ).stdout.strip()
    show("webhook loads openai", loaded, "bench cold-start")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def webhook(requests: int = 300) -> None:
    from tests.bench.support import enrolled_stack, signed_text

    with enrolled_stack() as stack:
        from functions.webhook.app import lambda_handler
        from tests.support.api import LambdaContext

        events = [signed_text(stack, f"text {n}", n) for n in range(requests)]
        for event in events[:20]:  # warm
            lambda_handler(event, LambdaContext())
        timings = []
        with counting_aws_calls() as counts:
            for event in events[20:]:
                start = time.perf_counter()
                response = lambda_handler(event, LambdaContext())
                timings.append(time.perf_counter() - start)
                assert response["statusCode"] == 200, response
        per = sum(counts.values()) / len(timings)
    show("webhook handler per text, warm, p50", f"{percentile(timings, 0.5) * 1000:.1f} ms", "bench webhook")
    show("webhook handler per text, warm, p99", f"{percentile(timings, 0.99) * 1000:.1f} ms", "bench webhook")
    detail = ", ".join(f"{k} {v / len(timings):.1f}" for k, v in sorted(counts.items()))
    show("AWS requests per inbound text (webhook)", f"{per:.1f}", "bench webhook")
    print(f"    {detail}")


def turn(histories: tuple[int, ...] = (0, 100, 1000)) -> None:
    from tests.bench.support import turn_requests

    for history in histories:
        counts = turn_requests(history)
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        show(f"AWS requests per turn, transcript of {history} messages", str(sum(counts.values())), "bench turn")
        print(f"    {detail}")


# A projection, not a measurement: typical in-region latency of one DynamoDB or Scheduler request.
ASSUMED_AWS_REQUEST_SECONDS = 0.006


def nudge(participants: int = 12) -> None:
    from tests.bench.support import nudge_timings

    timings, counts = nudge_timings(participants)
    own, _ = nudge_timings(participants, in_memory=True)
    requests = sum(counts.values()) / len(timings)
    show("prompt generator per nudge on moto, mean", f"{statistics.mean(timings) * 1000:.1f} ms", "bench nudge")
    show("prompt generator per nudge on moto, p99", f"{percentile(timings, 0.99) * 1000:.1f} ms", "bench nudge")
    show("  of which our code (in-memory stores), mean", f"{statistics.mean(own) * 1000:.1f} ms", "bench nudge")
    show("AWS requests per nudge", f"{requests:.1f}", "bench nudge")
    print("    " + ", ".join(f"{k} {v / len(timings):.1f}" for k, v in sorted(counts.items())))
    projected = statistics.mean(own) + requests * ASSUMED_AWS_REQUEST_SECONDS
    show(
        f"projection: nudges/min per concurrent Lambda ({ASSUMED_AWS_REQUEST_SECONDS * 1000:.0f} ms/request)",
        f"{60 / projected:.0f}",
        "bench nudge",
    )
    print("    moto copies every table inside each transaction, so its times grow with the data: compare runs,")
    print("    not absolute numbers; the projection uses our own code's time plus the requests at AWS latency.")


def text(runs: int = 5) -> None:
    """run_turn in FEEDBACK with the offline coach on texts as long as Twilio delivers: reading a text must be
    linear in its length, so ten coalesced texts cost about ten times one (the goal: under 100 ms)."""
    from tests.bench.support import median_text_turn

    one, ten = median_text_turn(1, runs), median_text_turn(10, runs)
    show("our own code for 1 text of 1,600 characters", f"{one * 1000:.1f} ms", "bench text")
    show("our own code for 10 coalesced texts of 1,600 characters", f"{ten * 1000:.1f} ms", "bench text")
    print(f"    median of {runs} runs of run_turn in FEEDBACK, offline coach, no stores")


def flow() -> None:
    """The flow-state item's worst case (every text it keeps at its bound, four-byte characters), and what the
    LLM's context costs: the newest messages come from that item, which every turn reads anyway."""
    from coach.domain.flow import HISTORY_SENT_TO_LLM
    from tests.support.flow_size import FLOW_ITEM_GOAL_BYTES, flow_item_bytes, worst_case_flows

    sizes = {name: flow_item_bytes(flow) for name, flow in worst_case_flows().items()}
    worst = max(sizes.values())
    detail = ", ".join(f"{name} {size / 1024:.1f} KB" for name, size in sizes.items())
    goal(
        "flow-state item, worst case",
        f"{worst / 1024:.1f} KB",
        f"<= {FLOW_ITEM_GOAL_BYTES // 1024} KB",
        worst <= FLOW_ITEM_GOAL_BYTES,
        "bench flow",
    )
    print(f"    {detail}; the LLM's newest {HISTORY_SENT_TO_LLM} messages come from this item: no extra request")


def suite() -> None:
    """The last whole run of `make test` (tests/conftest.py records it): measured there, printed here."""
    from tests.conftest import SUITE_RECORD

    if not SUITE_RECORD.exists():
        show("make test, last whole run", "not run yet", "make test, then bench suite")
        return
    record = json.loads(SUITE_RECORD.read_text())
    value = f"{record['seconds'] / 60:.1f} min"
    met = record["seconds"] <= 300 and record["exit_status"] == 0
    goal("make test, last whole run (pytest's own time)", value, "<= 5 min", met, "make test, then bench suite")
    print(
        f"    {record['tests']} tests, {record['failed']} failed, {record['workers']} processes on "
        f"{record['cpus']} CPUs, {record['at']}"
    )


def feedback() -> None:
    """classify_feedback on the labelled replies of tests/unit/domain/feedback_examples.tsv: not a speed, but
    kept with the benches so that `make bench` shows it beside them."""
    from tests.bench.feedback import report

    report(show)


BENCHES: dict[str, Callable[[], None]] = {
    "cold-start": cold_start,
    "webhook": webhook,
    "turn": turn,
    "nudge": nudge,
    "text": text,
    "feedback": feedback,
    "flow": flow,
    "suite": suite,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help=f"benches to run: {', '.join(BENCHES)} (default: all)")
    chosen = parser.parse_args().which or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    print("Each figure names the command that reproduces it: python -m tests.<bench ...> (make bench: all).")
    for name in chosen:
        BENCHES[name]()
    if MISSED:
        print(f"missed their goal: {', '.join(MISSED)}")


if __name__ == "__main__":
    main()
