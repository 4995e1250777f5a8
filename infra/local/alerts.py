"""`GET /_local/alerts`: what the functions published to the stack's SNS topics (the safety alerts), newest
last, as the research team's e-mail would show them. On AWS the topic mails them; locally moto keeps them,
and this reads moto's own record of them (moto's server runs in this process)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from moto.sns.models import sns_backends

from infra.local.config import ACCOUNT_ID
from infra.local.web import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

PATH = "/_local/alerts"


class AlertsExtension:
    """Extension: serves every message published to the template's SNS topics."""

    def __call__(self, stack: LocalStack) -> None:
        self.stack = stack
        stack.mount(PATH, self.handle)
        stack.add_banner_line("Safety alerts", f"GET {stack.base_url}{PATH}")

    def published(self) -> list[dict[str, Any]]:
        """Each message published to one of the stack's topics: the topic's logical id, subject, message."""
        region = self.stack.config.region
        topics = {
            resource.ref: logical_id
            for logical_id, resource in self.stack.physical.items()
            if self.stack.template.get("Resources", {}).get(logical_id, {}).get("Type") == "AWS::SNS::Topic"
        }
        backend = sns_backends[ACCOUNT_ID][region]
        found: list[dict[str, Any]] = []
        for arn, logical_id in sorted(topics.items(), key=lambda t: t[1]):
            topic = backend.topics.get(arn)
            for message_id, message, subject, _attributes, _group in list(getattr(topic, "sent_notifications", [])):
                found.append({"topic": logical_id, "message_id": message_id, "subject": subject, "message": message})
        return found

    def handle(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.rstrip("/") != PATH:
            return None
        if request.method != "GET":
            return json_response(405, {"error": "method not allowed", "details": f"{request.method} {request.path}"})
        return json_response(200, {"alerts": self.published()})
