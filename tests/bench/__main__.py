"""`make bench`: speed and request counts of the hot paths, each printed with the command that reproduces it.

  python -m tests.bench               everything
  python -m tests.bench cold-start    webhook import time against boto3 + its DynamoDB and SQS clients
  python -m tests.bench webhook       webhook handler time per request (warm, moto) and AWS requests per text
  python -m tests.bench turn          AWS requests per conversation turn as the transcript grows
  python -m tests.bench nudge         prompt-generator time and AWS requests per nudge, and a throughput projection
  python -m tests.bench text          our own code's time for a turn of long texts (1 and 10 coalesced, 1,600 chars)
  python -m tests.bench feedback      how well replies to a nudge are read: accuracy on the labelled table, per kind
  python -m tests.bench flow          the flow-state item's worst case, in bytes
  python -m tests.bench layer         the runtime layer's size, built as sam build builds it for arm64
  python -m tests.bench pacing        10,000 nudges due at one minute, paced at 1, 10 and 100 messages a second
  python -m tests.bench suite         the last whole `make test` run, against its 5 minutes

Figures of issue 12's table are printed with their goal and "ok" or "MISSED"; the misses are listed at the end.

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
    """The webhook's cold start against `import boto3` + a DynamoDB and an SQS client, in fresh interpreters.

    Each run times, side by side: the baseline; the webhook's import, then its first call's set-up (settings,
    services, the two clients, one forged request answered 403 without an AWS call), from source as this
    checkout runs it; the same with our code's bytecode compiled (a layer built with bytecode); and that with
    X-Ray tracing on, as the template's `Tracing: Active` has it on AWS (the Tracer is built at the first
    call). CPU time of the interpreter (the machine is shared; waits for other processes do not count), and
    the ratio is the median of each run's own ratio.
    """
    import tempfile

    target = "goal <= 1.3x"
    setup = """
import os, sys, time
started = time.process_time()
import functions.webhook.app as webhook
imported = time.process_time()
from coach.adapters import aws_clients
from coach.bootstrap import webhook_service, webhook_verifier
webhook_service(); webhook_verifier(); aws_clients.client("dynamodb"); aws_clients.client("sqs")
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "WebhookFunction", 256, "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:WebhookFunction"
forged = {"resource": "/twilio/sms", "path": "/twilio/sms", "httpMethod": "POST", "body": "From=%2B1",
          "headers": {"Host": "sms.example.org", "X-Twilio-Signature": "forged"}, "requestContext": {"stage": "Prod"}}
assert webhook.lambda_handler(forged, Context())["statusCode"] == 403
called = time.process_time()
heavy = [m for m in ("aws_xray_sdk", "openai", "twilio.rest") if m in sys.modules]
print(imported - started, called - started, ",".join(heavy) or "none")
"""
    base_env = {**os.environ, "PYTHONPATH": f"{ROOT}/layers/coach:{ROOT}", "AWS_DEFAULT_REGION": "us-east-1"}
    base_env.update(TABLE_NAME="coach-bench", QUEUE_URL="https://sqs.us-east-1.amazonaws.com/1/q.fifo")
    base_env.update(TWILIO_AUTH_TOKEN="bench", POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_NAMESPACE="Bench")
    with tempfile.TemporaryDirectory() as bytecode:
        compiled_env = {k: v for k, v in base_env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        compiled_env["PYTHONPYCACHEPREFIX"] = bytecode
        traced_env = {k: v for k, v in compiled_env.items() if k != "POWERTOOLS_TRACE_DISABLED"}
        traced_env["LAMBDA_TASK_ROOT"] = f"{ROOT}/functions/webhook"
        traced_env["AWS_XRAY_CONTEXT_MISSING"] = "IGNORE_ERROR"  # no trace header outside Lambda
        source_env = {**base_env, "PYTHONDONTWRITEBYTECODE": "1"}

        def run(code: str, env: dict[str, str]) -> list[str]:
            out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
            return out.stdout.strip().splitlines()[-1].split()

        run(setup, compiled_env)  # writes our code's bytecode into the temporary folder
        boto_code = (
            "import time; t = time.process_time(); import boto3; boto3.client('dynamodb'); boto3.client('sqs'); "
            "print(time.process_time() - t)"
        )
        rows: dict[str, list[float]] = {}
        heavy = {}
        for _ in range(runs):
            boto = float(run(boto_code, base_env)[0])
            rows.setdefault("boto", []).append(boto)
            for name, env in (("source", source_env), ("compiled", compiled_env), ("traced", traced_env)):
                imported, called, loaded = run(setup, env)
                rows.setdefault(f"{name} import", []).append(float(imported))
                rows.setdefault(f"{name} call", []).append(float(called))
                rows.setdefault(f"{name} import ratio", []).append(float(imported) / boto)
                rows.setdefault(f"{name} call ratio", []).append(float(called) / boto)
                heavy[name] = loaded

    def ms(name: str) -> str:
        return f"{statistics.median(rows[name]) * 1000:.0f} ms"

    def ratio(name: str) -> str:
        return f"{statistics.median(rows[name]):.2f}x ({target})"

    cmd = "bench cold-start"
    show(f"boto3 + DynamoDB and SQS clients (CPU, median of {runs})", ms("boto"), cmd)
    show("webhook import, from source", ms("source import"), cmd)
    show("webhook import / boto3 with its clients, from source", ratio("source import ratio"), cmd)
    show("  with the first call's set-up, from source", ratio("source call ratio"), cmd)
    show("webhook import, with bytecode", ms("compiled import"), cmd)
    # The figure of issue 12's table: the layer ships the start-up modules' bytecode (layers/coach/Makefile).
    compiled = statistics.median(rows["compiled import ratio"])
    goal("webhook import / boto3 with its clients, with bytecode", f"{compiled:.2f}x", "<= 1.3x", compiled <= 1.3, cmd)
    show("  with the first call's set-up, with bytecode", ratio("compiled call ratio"), cmd)
    show("  with the first call's set-up, bytecode, X-Ray tracing on", ratio("traced call ratio"), cmd)
    show("webhook loads at start and first call (tracing off)", heavy["compiled"], cmd)
    show("  with X-Ray tracing on", heavy["traced"], cmd)


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


TURN_GOAL = 5  # AWS requests per conversation turn, whatever the number of replies
NUDGE_GOAL = 4


def turn(histories: tuple[int, ...] = (0, 100, 1000)) -> None:
    from tests.bench.support import INTAKE, measured_turn

    cases = [
        ("1 reply", measured_turn(answers=("yes",), text="physical activity")),
        ("2 replies", measured_turn(text="yes")),
        ("end of intake", measured_turn(answers=tuple(INTAKE[:-1]), text=INTAKE[-1])),
        *((f"transcript of {n} messages", measured_turn(n)) for n in histories),
    ]
    for name, measured in cases:
        counts = measured.requests
        total = sum(counts.values())
        title = f"AWS requests per turn, {name} ({measured.replies} sent)"
        goal(title, str(total), f"<= {TURN_GOAL}", total <= TURN_GOAL, "bench turn")
        print("    " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


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
    goal("AWS requests per nudge", f"{requests:.1f}", f"<= {NUDGE_GOAL}", requests <= NUDGE_GOAL, "bench nudge")
    print("    " + ", ".join(f"{k} {v / len(timings):.1f}" for k, v in sorted(counts.items())))
    projected = statistics.mean(own) + requests * ASSUMED_AWS_REQUEST_SECONDS
    show(
        f"projection: nudges/min per concurrent Lambda ({ASSUMED_AWS_REQUEST_SECONDS * 1000:.0f} ms/request)",
        f"{60 / projected:.0f}",
        "bench nudge",
    )
    print("    moto's times compare runs, not AWS's latency: the projection uses our own code's time plus the")
    print("    requests at AWS latency.")


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


def layer() -> None:
    """The runtime layer as `sam build` makes it for arm64 (tests/bench/layer.py; fetches the wheels)."""
    from tests.bench.layer import report

    report(show, goal)


def pacing() -> None:
    """10,000 nudges due at one minute, paced to the sender's rate (tests/bench/pacing.py)."""
    from tests.bench.pacing import report

    report(show, goal)


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
    "layer": layer,
    "pacing": pacing,
    "suite": suite,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", nargs="*", help=f"benches to run: {', '.join(BENCHES)} (default: all)")
    chosen = parser.parse_args().which or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    # The moto the suite and the local stack use (infra/local/moto_speed.py): same answers, without copying
    # a whole table inside every transaction, so times on moto compare our code paths, not moto's copies.
    from infra.local import moto_speed

    moto_speed.install()
    print("Each figure names the command that reproduces it: python -m tests.<bench ...> (make bench: all).")
    for name in chosen:
        BENCHES[name]()
    if MISSED:
        print(f"missed their goal: {', '.join(MISSED)}")


if __name__ == "__main__":
    main()
