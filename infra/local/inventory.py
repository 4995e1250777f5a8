"""`GET /_local/resources`: where the local stack's AWS is and what it holds, for tools that talk to it
directly (`python -m infra.redrive --local`): moto's endpoint, and the queues, the table and the schedule
groups by the template's logical ids. No secret is in it (moto takes any credentials)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from infra.local.web import HttpRequest, HttpResponse, json_response

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

PATH = "/_local/resources"
_KINDS = {
    "AWS::SQS::Queue": "queues",
    "AWS::DynamoDB::Table": "tables",
    "AWS::Scheduler::ScheduleGroup": "schedule_groups",
}


class InventoryExtension:
    """Extension: serves the inventory of the stack's AWS resources."""

    def __call__(self, stack: LocalStack) -> None:
        self.stack = stack
        stack.mount(PATH, self.handle)

    def handle(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.rstrip("/") != PATH:
            return None
        if request.method != "GET":
            return json_response(405, {"error": "method not allowed", "details": f"{request.method} {request.path}"})
        found: dict[str, dict[str, str]] = {kind: {} for kind in _KINDS.values()}
        for logical_id, resource in self.stack.template.get("Resources", {}).items():
            kind = _KINDS.get(resource.get("Type", ""))
            if kind is not None and logical_id in self.stack.physical:
                found[kind][logical_id] = self.stack.physical[logical_id].ref
        return json_response(200, {"endpoint_url": self.stack.endpoint_url, **found})
