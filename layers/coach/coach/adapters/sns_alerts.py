"""The research team's safety alerts on SNS (the topic the alarm e-mail is subscribed to)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from coach.adapters import aws_clients
from coach.domain.effects import AlertResearchers
from coach.domain.errors import DeliveryUnavailable


class SnsResearchAlerts:
    """Implements coach.ports.ResearchAlerts: one message per safety flag, naming the participant by id only."""

    def __init__(self, topic_arn: str, stage: str, client: Any | None = None) -> None:
        self.topic_arn = topic_arn
        self.stage = stage
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("sns")

    def safety_flag(self, participant_id: str, alert: AlertResearchers) -> None:
        details = {
            "stage": self.stage,
            "participant_id": participant_id,
            "category": alert.category,
            "rule": alert.rule,
            "flagged_at": alert.flagged_at.isoformat(),
        }
        text = (
            f"A text from participant {participant_id} screened as a safety concern ({alert.category}, rule "
            f"{alert.rule}) at {alert.flagged_at.isoformat()}. They were sent the crisis text, and their nudges "
            "wait for your review. Read the transcript: GET /conversation/participants/"
            f"{participant_id}/messages. When reviewed: DELETE /conversation/participants/{participant_id}/"
            f"safety-flag.\n\n{json.dumps(details, sort_keys=True)}"
        )
        try:
            self.client.publish(
                TopicArn=self.topic_arn,
                Subject=f"[{self.stage}] SMS Habit Coach: safety flag ({alert.category})"[:100],
                Message=text,
                MessageAttributes={"category": {"DataType": "String", "StringValue": alert.category}},
            )
        except (ClientError, BotoCoreError) as exc:
            raise DeliveryUnavailable(f"the safety alert could not be published: {type(exc).__name__}") from exc
