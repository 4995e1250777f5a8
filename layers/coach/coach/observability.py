"""One Logger, Metrics and Tracer for the whole package (service name from POWERTOOLS_SERVICE_NAME).

Logs never carry a full phone number, a message body or a secret: log ids and `mask_phone(...)`.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

NAMESPACE = "SmsHabitCoach"

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
tracer = Tracer()
