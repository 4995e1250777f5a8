"""Enrolling a study's participants in one request (issue 10): a CSV or a JSON list, validated row by row.

Each row is enrolled as POST /participants would enroll it, so it is audited and greeted the same way. A bad
row does not stop the good ones, and the answer reports every row. A number enrolled already is reported as
`exists` with its participant's id, so sending the same file twice enrolls nobody twice.

A request has a time limit (the function's, inside API Gateway's 29 seconds). Rows are started only while
enough of it is left; the rest are answered `not_attempted`, so a large file on a slow day is never cut off
in the middle with its answer lost: the researcher sends the same file again (or only those rows), and the
rows enrolled already come back as `exists`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from coach.domain.audit import SYSTEM, Actor
from coach.domain.errors import DomainError, InvalidField, PhoneNumberTaken
from coach.domain.participant import canonical_phone_number
from coach.services.enrollment import EnrollmentService, EnrollParticipant

MAX_ROWS = 200  # one request stays well inside API Gateway's 29 seconds
# A row is started only with this many seconds of the request left: one row's enrollment (a transaction,
# the allocation, the audit, the greeting's queue) and the answer take well under it.
ROW_SECONDS_LEFT = 3.0
NOT_ATTEMPTED = (
    "not reached before the request's time ran out; send these rows again (rows already enrolled come back as exists)"
)
_COLUMNS = set(EnrollParticipant.model_fields)


class BulkEnroll(BaseModel):
    """Body of POST /conversation/participants/bulk: `participants` (a JSON list) or `csv` (a CSV text with a
    header row naming the columns: phone_number, and any of name, gender, ethnicity, background, timezone,
    study_arm). A request sent as text/csv arrives as `csv`."""

    participants: list[dict[str, Any]] | None = Field(None, max_length=MAX_ROWS)
    csv: str | None = Field(None, max_length=256_000)

    @model_validator(mode="after")
    def _one_of(self) -> BulkEnroll:
        if (self.participants is None) == (self.csv is None):
            raise ValueError("send either participants (a list) or csv (a text with a header row)")
        return self


class RowError(BaseModel):
    field: str
    message: str


class RowResult(BaseModel):
    row: int = Field(description="1 for the first participant (in a CSV: the first line after the header)")
    status: Literal["created", "exists", "error", "not_attempted"]
    participant_id: str | None = None
    study_arm: str | None = None
    errors: list[RowError] = Field(default_factory=list)


class BulkResult(BaseModel):
    created: int
    exists: int
    errors: int
    not_attempted: int = Field(0, description="Rows left for lack of time: send them again")
    rows: list[RowResult]


@dataclass
class BulkEnrollment:
    enrollment: EnrollmentService

    def enroll(
        self, body: BulkEnroll, actor: Actor = SYSTEM, time_left: Callable[[], float] | None = None
    ) -> BulkResult:
        """Every row enrolled or answered; `time_left`: seconds this request may still take."""
        rows = body.participants if body.participants is not None else rows_of_csv(body.csv or "")
        results: list[RowResult] = []
        for number, row in enumerate(rows, start=1):
            if time_left is not None and time_left() < ROW_SECONDS_LEFT:
                error = RowError(field="row", message=NOT_ATTEMPTED)
                left = range(number, len(rows) + 1)
                results += [RowResult(row=n, status="not_attempted", errors=[error]) for n in left]
                break
            results.append(self._row(number, row, actor))
        statuses = ("created", "exists", "error", "not_attempted")
        counts = {status: sum(1 for r in results if r.status == status) for status in statuses}
        self.enrollment.record(actor, "bulk_enroll", None, rows=len(results), **counts)
        return BulkResult(
            created=counts["created"],
            exists=counts["exists"],
            errors=counts["error"],
            not_attempted=counts["not_attempted"],
            rows=results,
        )

    def _row(self, number: int, row: dict[str, Any], actor: Actor) -> RowResult:
        cleaned = {k: v for k, v in row.items() if v not in ("", None)} if isinstance(row, dict) else row
        try:
            command = EnrollParticipant.model_validate(cleaned)
            participant = self.enrollment.enroll(command, actor)
        except ValidationError as exc:
            errors = [RowError(field=".".join(map(str, e["loc"])) or "row", message=e["msg"]) for e in exc.errors()]
            return RowResult(row=number, status="error", errors=errors)
        except PhoneNumberTaken:
            phone = canonical_phone_number(command.phone_number, self.enrollment.default_phone_region)
            existing = self.enrollment.store.participant_id_for_phone(phone)
            return RowResult(row=number, status="exists", participant_id=existing)
        except InvalidField as exc:
            return RowResult(row=number, status="error", errors=[RowError(field=exc.field, message=exc.message)])
        except DomainError as exc:
            return RowResult(row=number, status="error", errors=[RowError(field="row", message=str(exc))])
        return RowResult(row=number, status="created", participant_id=participant.id, study_arm=participant.study_arm)


def rows_of_csv(text: str) -> list[dict[str, Any]]:
    """The rows of a CSV with a header row; raises InvalidField naming what to fix."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [name.strip() for name in (reader.fieldnames or [])]
    if "phone_number" not in header:
        raise InvalidField("csv", "the first line must name the columns, phone_number among them")
    unknown = sorted(set(header) - _COLUMNS)
    if unknown:
        raise InvalidField("csv", f"unknown columns {', '.join(unknown)}; known: {', '.join(sorted(_COLUMNS))}")
    rows = [{name.strip(): (value or "").strip() for name, value in row.items() if name} for row in reader]
    if len(rows) > MAX_ROWS:
        raise InvalidField("csv", f"{len(rows)} rows; send at most {MAX_ROWS} per request")
    return rows
