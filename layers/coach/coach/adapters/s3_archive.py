"""The archive of what retention moved out of the table, in the export bucket (coach.domain.retention):

  archive/<participant id>/<kind>/<name>.jsonl   one item a line, as the table held it (its PK and SK too)

Names begin with the cutoff of the pass that wrote them, so listing a participant's files reads them oldest
first. The bucket's lifecycle rule expires exports/ only: archived items stay until their participant is
deleted, which erases archive/<participant id>/ whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from coach.adapters import aws_clients
from coach.domain.retention import ArchiveKind

ARCHIVE_PREFIX = "archive"
_DELETE_LIMIT = 1000  # S3's most keys in one DeleteObjects


def participant_prefix(participant_id: str) -> str:
    return f"{ARCHIVE_PREFIX}/{participant_id}/"  # the slash: p1's files are not p10's


class S3ParticipantArchive:
    """Implements coach.ports.ParticipantArchive."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("s3")

    def put(self, participant_id: str, kind: ArchiveKind, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        body = "".join(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n" for record in records)
        self.client.put_object(
            Bucket=self.bucket,
            Key=f"{participant_prefix(participant_id)}{kind.value}/{name}.jsonl",
            Body=body.encode(),
            ContentType="application/x-ndjson",
        )

    def records(self, participant_id: str, kind: ArchiveKind) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()  # an item archived twice (a run stopped between the archive and the table)
        for key in sorted(self._keys(f"{participant_prefix(participant_id)}{kind.value}/")):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read().decode()
            for line in body.splitlines():
                if not line.strip():
                    continue
                record: dict[str, Any] = json.loads(line)
                if record["SK"] not in seen:
                    seen.add(record["SK"])
                    yield record

    def erase(self, participant_id: str, time_left: Callable[[], float] | None = None) -> bool:
        while keys := self._keys(participant_prefix(participant_id), _DELETE_LIMIT):
            if time_left is not None and time_left() <= 0:
                return False
            answer = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True}
            )
            if answer.get("Errors"):
                error = answer["Errors"][0]
                raise RuntimeError(f"S3 kept {len(answer['Errors'])} archived files: {error.get('Code')}; repeat")
        return True

    def _keys(self, prefix: str, limit: int | None = None) -> list[str]:
        keys: list[str] = []
        request: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        while True:
            answer = self.client.list_objects_v2(**request)
            keys.extend(item["Key"] for item in answer.get("Contents", []))
            if (limit is not None and len(keys) >= limit) or not answer.get("IsTruncated"):
                return keys[:limit]
            request["ContinuationToken"] = answer["NextContinuationToken"]
