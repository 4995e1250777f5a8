"""Export jobs on the one table: `PK = EXPORT`, `SK = <id>`; ids begin with their UTC time, so the partition
reads newest first. Every change is conditional on the job's version, as a participant's is."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from coach.adapters.dynamodb_items import decode_page_token, from_attributes, to_attributes
from coach.adapters.dynamodb_table import DynamoDBTable
from coach.domain.errors import Conflict, NotFound
from coach.domain.exports import ExportJob
from coach.ports import Page

EXPORT_PK = "EXPORT"


class DynamoDBExportJobs(DynamoDBTable):
    """Implements coach.ports.ExportJobs."""

    def create(self, job: ExportJob) -> None:
        self._write(job, "attribute_not_exists(PK)", None)

    def get(self, export_id: str) -> ExportJob:
        item = self._get(EXPORT_PK, export_id)
        if item is None:
            raise NotFound(f"export {export_id} not found")
        return ExportJob.model_validate(item)

    def save(self, job: ExportJob) -> ExportJob:
        saved = job.model_copy(update={"version": job.version + 1})
        self._write(saved, "version = :expected", {":expected": {"N": str(job.version)}})
        return saved

    def _write(self, job: ExportJob, condition: str, values: dict[str, Any] | None) -> None:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": to_attributes(job, PK=EXPORT_PK, SK=job.id),
            "ConditionExpression": condition,
        }
        if values:
            request["ExpressionAttributeValues"] = values
        try:
            self.client.put_item(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"export {job.id} changed since it was read") from exc
            raise

    def list(self, *, limit: int, next_token: str | None) -> Page[ExportJob]:
        start = decode_page_token(next_token, {"PK": EXPORT_PK, "SK": None}) if next_token else None
        query: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": {"S": EXPORT_PK}},
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        items, last = self._fill_page(query, limit, start, ("PK", "SK"))
        return Page([ExportJob.model_validate(from_attributes(i)) for i in items], last)
