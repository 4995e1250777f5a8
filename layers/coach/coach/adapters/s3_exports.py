"""Export files in S3 (the template's ExportBucket), and presigned URLs to download them.

The client comes from the environment alone, as every adapter's does: on the local stack AWS_ENDPOINT_URL
points it at moto's server, so the URLs it signs are ones a browser on the machine can open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botocore.config import Config

from coach.adapters import aws_clients

# SigV4: what S3 requires in every region opened since 2014 and for KMS-encrypted objects.
_SIGNED = Config(signature_version="s3v4", s3={"addressing_style": "auto"})


class S3ExportFiles:
    """Implements coach.ports.ExportFiles."""

    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> Any:
        return self._client if self._client is not None else aws_clients.client("s3", config=_SIGNED)

    def put(self, key: str, path: Path, content_type: str) -> None:
        with path.open("rb") as body:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentDisposition=f'attachment; filename="{path.name}"',
            )

    def url(self, key: str, seconds: int) -> str:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
        )
        return url
