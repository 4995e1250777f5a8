"""The pieces plugged into the local stack besides the API Gateway emulator.

Each extension is a function `(stack: LocalStack) -> None`, called after moto, the resources and
the handlers' environment are ready and before the gateway serves. It may:
  - `stack.mount("/2010-04-01", handler)`: serve a path prefix on the same port (a fake Twilio
    REST API, `/_local/clock`); the handler takes an HttpRequest and returns an HttpResponse;
  - `stack.add_service(service)`: run something with start()/stop() beside the gateway (a queue
    pump invoking `stack.functions["ConversationFunction"]`, a scheduler emulator);
  - `stack.add_banner_line(label, text)`: tell the person at the terminal about it;
  - `stack.add_environment(variables)`: give the handlers more variables (the fake Twilio's URL).
`stack.physical` has every resource's local id (queue URLs, the table name), `stack.environment`
the variables the handlers see, `stack.endpoint_url` moto's URL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.local.alerts import AlertsExtension
from infra.local.clock import ClockExtension
from infra.local.fake_twilio import FakeTwilioExtension
from infra.local.inventory import InventoryExtension
from infra.local.pump import QueuePumpExtension
from infra.local.scheduler import SchedulerExtension

if TYPE_CHECKING:
    from infra.local.stack import Extension


def default_extensions() -> list[Extension]:
    """What `python -m infra.local` runs, in this order (services stop in the reverse order)."""
    pumps = QueuePumpExtension()
    scheduler = SchedulerExtension(pumps=pumps)  # drains the pumps' queues after each firing
    return [
        FakeTwilioExtension(),  # first: it sets the TWILIO_* variables the handlers read
        pumps,
        scheduler,
        ClockExtension(scheduler),  # advances through the scheduler's emulator
        InventoryExtension(),  # GET /_local/resources: moto's endpoint and the queues (infra.redrive --local)
        AlertsExtension(),  # GET /_local/alerts: the safety alerts published to SNS
    ]
