"""Guarantee: logs never carry a full phone number or a free-text field, even when things fail."""

from __future__ import annotations

import io

from tests.integration.test_enrollment_api import call, enroll
from tests.support.api import api_event
from tests.support.aws import Resources

SECRET_BACKGROUND = "works nights at the fictional Example Bakery"


def test_enrollment_logs_carry_no_phone_number_or_background(aws: Resources, log_lines: io.StringIO) -> None:
    participant = enroll({"phone_number": "+12065550123", "background": SECRET_BACKGROUND, "name": "Zebedee"})
    call(api_event("POST", "/conversation/participants", body={"phone_number": "+12065550123"}))  # 409
    call(api_event("PUT", f"/conversation/participants/{participant['id']}", body={"phone_number": "+12065550124"}))
    aws.sqs.delete_queue(QueueUrl=aws.queue_url)
    call(api_event("POST", f"/conversation/participants/{participant['id']}/reset"))  # queue failure is logged

    logs = log_lines.getvalue()

    assert participant["id"] in logs  # the logs are there, and name the participant by id
    assert "could not queue conversation work" in logs
    for secret in ("2065550123", "2065550124", "Example Bakery", "Zebedee"):
        assert secret not in logs
