"""S3 (AWS, MinIO, any compatible endpoint) via boto3, credentials the standard AWS way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kaos.errors import ConfigError, ObjectNotFound
from kaos.store.backends.base import ObjectInfo
from kaos.store.paths import check_relative_path

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
    ) -> None:
        import boto3
        from botocore.config import Config

        if not bucket:
            raise ConfigError("S3 store needs a bucket", "use s3://BUCKET/PREFIX")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.location = f"s3://{endpoint_url or 'aws'}/{bucket}/{self.prefix}"
        self._client = client or boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            config=Config(max_pool_connections=16, retries={"max_attempts": 5, "mode": "standard"}),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_relative_path(key)

    def put(self, key: str, data: bytes | bytearray) -> None:
        """One PUT: S3 makes an object visible only once it is complete, so this is atomic."""
        self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if length is not None:
            if length == 0:
                return b""
            args["Range"] = f"bytes={start}-{start + length - 1}"
        elif start:
            args["Range"] = f"bytes={start}-"
        try:
            data: bytes = self._client.get_object(**args)["Body"].read()
            return data
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND | {"NoSuchKey"}:
                raise ObjectNotFound(key) from None
            raise

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for obj in page.get("Contents", []):
                key = obj["Key"][len(self.prefix) :]
                yield ObjectInfo(key, obj["Size"], obj["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except self._client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return False
            raise
