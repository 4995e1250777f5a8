"""Domain errors. Adapters raise these from SDK errors; handlers map them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every error the services raise on purpose."""


class NotFound(DomainError):
    """The participant (or one of its items) does not exist."""


class Conflict(DomainError):
    """A conditional write lost a race: the item changed since it was read (optimistic locking)."""


class AlreadyDone(DomainError):
    """This piece of work was saved before (a redelivery or a second firing): only finish its outbox."""


class PhoneNumberTaken(DomainError):
    """Another participant is enrolled with this phone number."""

    def __init__(self, phone_number: str) -> None:
        super().__init__("phone_number is already enrolled")
        self.phone_number = phone_number


class InvalidField(DomainError):
    """A field's value cannot be used; `field` names it so the caller can say what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class InvalidPageToken(DomainError):
    """A pagination token was not one we issued."""


class DeliveryRejected(DomainError):
    """The SMS provider refused this message for good (e.g. 21211 invalid number, 21610 opted out).

    Retrying cannot help; `code` is the provider's error code.
    """

    OPTED_OUT = 21610
    INVALID_NUMBER = 21211

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"SMS rejected ({code}): {message}")
        self.code = code


class DeliveryUnavailable(DomainError):
    """The SMS provider could not take the message now (429, 5xx, timeout) after our own retries.

    The work must be retried later (SQS redelivery, then the DLQ).
    """


class SendWindowMissed(DeliveryUnavailable):
    """Waiting for the sender's rate would start this message after its validity window: it was not sent.

    Nothing reached the provider. As a DeliveryUnavailable the firing is retried, and the retry records the
    message expired (its window is over); a caller that catches it may record it expired at once.
    """


class ScheduleUnavailable(DomainError):
    """EventBridge Scheduler refused or failed a change of a participant's schedules (throttled, down).

    What was stored stands; repeating the request (or the watchdog) makes the schedules match it.
    """


class ExportUnavailable(DomainError):
    """An export could not be handed to the export function now; the job is recorded as failed with why."""
