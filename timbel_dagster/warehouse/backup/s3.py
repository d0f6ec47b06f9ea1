"""Backups in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

An object is uploaded as a multipart upload in parts of `part_size` bytes, so at most one
part is held in memory whatever the size of the backup, and it becomes visible under its name
only when the upload completes; an upload that fails is aborted (no parts left to pay for).
As in the directory, the manifest is uploaded after the data and deleted before it, and
`names` lists only complete objects, so a backup appears whole or not at all. An upload whose
process was killed is never aborted by it: `incomplete_uploads` lists those under the prefix
(ListMultipartUploads) and `abort_upload` aborts one, for the prune (orphans.py).

Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
AWS_PROFILE, an instance or pod role); the endpoint and region from the settings.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from timbel_dagster.warehouse.backup.crypto import BackupError
from timbel_dagster.warehouse.backup.store import BACKUP_FILE, IncompleteUpload

PART_SIZE = 32 << 20  # 10,000 parts (S3's limit) of 32 MiB: backups up to 312 GiB
MIN_PART_SIZE = 5 << 20  # S3's smallest part but the last
LIST_PAGE_SIZE = 1000  # S3's most per ListMultipartUploads page
_ABSENT = ("NoSuchKey", "404", "NotFound")  # error codes of an object that is not there


def parse_s3_url(url: str) -> tuple[str, str]:
    """The bucket and key prefix (no leading or trailing slash) of `s3://bucket/prefix`."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise BackupError(f"{url!r} is not an S3 location like s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


class S3Store:
    """Objects under one prefix of a bucket (TIMBEL_BACKUP_URL=s3://bucket/prefix)."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        part_size: int = PART_SIZE,
        list_page_size: int = LIST_PAGE_SIZE,
        client: Any = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        self.bucket, self.prefix = parse_s3_url(url)
        self.part_size = part_size
        self.list_page_size = list_page_size
        if client is None:
            import boto3  # heavy: only where a backup runs
            from botocore.config import Config

            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region,
                config=Config(retries={"mode": "standard", "max_attempts": 5}),
            )
        self.client = client

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def where(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def put(self, name: str, chunks: Iterable[bytes]) -> None:
        key = self._key(name)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                buffer += chunk
                while len(buffer) >= self.part_size:
                    if upload_id is None:
                        upload_id = self._call(
                            "create_multipart_upload", name, Bucket=self.bucket, Key=key
                        )["UploadId"]
                    parts.append(
                        self._part(key, upload_id, len(parts) + 1, buffer[: self.part_size])
                    )
                    del buffer[: self.part_size]
            if upload_id is None:  # smaller than one part: one request, visible when done
                self._call("put_object", name, Bucket=self.bucket, Key=key, Body=bytes(buffer))
                return
            if buffer or not parts:
                parts.append(self._part(key, upload_id, len(parts) + 1, buffer))
            self._call(
                "complete_multipart_upload", name, Bucket=self.bucket, Key=key,
                UploadId=upload_id, MultipartUpload={"Parts": parts},
            )  # fmt: skip
        except BaseException:
            if upload_id is not None:
                with contextlib.suppress(Exception):  # the original error matters, not this
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
            raise

    def _part(self, key: str, upload_id: str, number: int, data: bytes | bytearray) -> dict:
        done = self._call(
            "upload_part", key, Bucket=self.bucket, Key=key, UploadId=upload_id,
            PartNumber=number, Body=bytes(data),
        )  # fmt: skip
        return {"PartNumber": number, "ETag": done["ETag"]}

    def _call(
        self, operation: str, name: str, *, absent: tuple[str, ...] = _ABSENT, **arguments: Any
    ) -> Any:
        """A boto3 call whose failure names the store, the object and what S3 said;
        FileNotFoundError for an error code in `absent`."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(**arguments)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code in absent:
                raise FileNotFoundError(self.where(name)) from None
            message = error.response.get("Error", {}).get("Message", str(error))
            if code == "AccessDenied" and operation == "list_multipart_uploads":
                message += " (the credentials need s3:ListBucketMultipartUploads on the bucket)"
            elif code == "NoSuchUpload":
                message += (
                    " (a prune aborts an upload older than TIMBEL_BACKUP_ORPHAN_HOURS: did the "
                    "backup run longer?)"
                )
            raise BackupError(
                f"S3 {operation} of {self.where(name)} failed: {code} {message}"
            ) from None
        except BotoCoreError as error:
            raise BackupError(f"S3 {operation} of {self.where(name)} failed: {error}") from None

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        body = self._call("get_object", name, Bucket=self.bucket, Key=self._key(name))["Body"]
        try:
            yield body
        finally:
            body.close()

    def names(self, suffix: str) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        found = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start
        )
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(start) :]
                    if "/" not in name and name.endswith(suffix):
                        found.append(name)
        except (ClientError, BotoCoreError) as error:
            raise BackupError(f"S3 listing of {self.where('')} failed: {error}") from None
        return sorted(found)

    def delete(self, name: str) -> None:
        self._call("delete_object", name, Bucket=self.bucket, Key=self._key(name))

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        """The multipart uploads of backup files under the prefix: only objects right under
        it, as `names` lists them (never another prefix's of the same bucket, nor one below
        this), and only names a backup's file has (`BACKUP_FILE`): another program's upload
        into the same bucket or prefix is never taken for a killed backup's."""
        start = f"{self.prefix}/" if self.prefix else ""
        found = []
        markers: dict[str, str] = {}
        while True:
            page = self._call(
                "list_multipart_uploads", "", Bucket=self.bucket, Prefix=start,
                MaxUploads=self.list_page_size, **markers,
            )  # fmt: skip
            for item in page.get("Uploads", []):
                name = item["Key"][len(start) :]
                if item["Key"].startswith(start) and BACKUP_FILE.match(name):
                    started = item["Initiated"].astimezone(dt.UTC)
                    found.append(IncompleteUpload(name, item["UploadId"], started))
            if not page.get("IsTruncated"):
                break
            following = {
                "KeyMarker": page.get("NextKeyMarker") or "",
                "UploadIdMarker": page.get("NextUploadIdMarker") or "",
            }
            if not following["KeyMarker"] or following == markers:
                raise BackupError(
                    f"S3 list_multipart_uploads of {self.where('')} is truncated but gives no "
                    "new NextKeyMarker to go on from"
                )
            markers = following
        return sorted(found, key=lambda u: (u.name, u.upload_id))

    def abort_upload(self, upload: IncompleteUpload) -> None:
        with contextlib.suppress(FileNotFoundError):  # completed or aborted since it was listed
            self._call(
                "abort_multipart_upload", upload.name, absent=("NoSuchUpload",),
                Bucket=self.bucket, Key=self._key(upload.name), UploadId=upload.upload_id,
            )  # fmt: skip
