"""The local stack: moto as AWS, an API Gateway emulator in front of the real handlers (DESIGN §7).

`python -m infra.local` (or `make run`) starts it; `LocalStack` is the same thing as a library, for
tests and for later pieces (queue pump, scheduler emulator, fake Twilio) that plug into it.
"""

from infra.local.config import LocalConfig
from infra.local.stack import BackgroundService, LocalStack
from infra.local.web import HttpRequest, HttpResponse, RouteHandler

__all__ = ["BackgroundService", "HttpRequest", "HttpResponse", "LocalConfig", "LocalStack", "RouteHandler"]
