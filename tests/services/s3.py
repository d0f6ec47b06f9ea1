"""A real S3 endpoint on loopback: moto's server mode (HTTP, the S3 REST API), one per test
module, with a bucket per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import missing_service
from tests.services.oci_registry import free_port

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.url, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"timbel-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:  # moto[server] is a dev dependency
        missing_service(f"moto[server] is not installed: {error}")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Endpoint(f"http://127.0.0.1:{port}")
    finally:
        server.stop()


@pytest.fixture
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3 reads its credentials from the environment; these are moto's, never real."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def _list_multipart_uploads_in_pages(self: Any) -> Any:
    """moto's S3Response.list_multipart_uploads as S3 answers ListMultipartUploads: by key, the
    same key's in the order they started; at most `max-uploads` (1000) a page, after
    `key-marker` (and, given, `upload-id-marker`: the rest of that key's first); truncated
    pages give NextKeyMarker and NextUploadIdMarker. moto 5 returns every upload in one page."""
    from moto.core.responses import ActionResult

    query = {name: values[0] for name, values in self.querystring.items()}
    prefix = query.get("prefix", "")
    limit = min(int(query.get("max-uploads", 1000)), 1000)
    key_marker, id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")
    multiparts = self.backend.list_multipart_uploads(self.bucket_name).values()
    # sorted() is stable: the same key's stay in the order moto made them.
    uploads = sorted((u for u in multiparts if u.key_name.startswith(prefix)),
                     key=lambda u: u.key_name)  # fmt: skip
    start = 0
    if key_marker:
        at = [i for i, u in enumerate(uploads) if (u.key_name, u.id) == (key_marker, id_marker)]
        later = [i for i, u in enumerate(uploads) if u.key_name > key_marker]
        start = at[0] + 1 if at else (later[0] if later else len(uploads))
    page = uploads[start : start + limit]
    truncated = start + limit < len(uploads)
    result: dict[str, Any] = {
        "Bucket": self.bucket_name, "KeyMarker": key_marker, "UploadIdMarker": id_marker,
        "Prefix": prefix, "MaxUploads": limit, "IsTruncated": truncated,
        "Uploads": [
            # moto 5 says every upload was initiated at this moment
            {"Key": u.key_name, "UploadId": u.id, "StorageClass": "STANDARD",
             "Initiated": "2010-11-10T20:48:33.000Z"}
            for u in page
        ],
    }  # fmt: skip
    if truncated:
        result |= {"NextKeyMarker": page[-1].key_name, "NextUploadIdMarker": page[-1].id}
    self.data["Action"] = "ListMultipartUploads"
    return self.serialized(ActionResult(result))


@pytest.fixture
def s3_upload_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """The moto servers of this process list multipart uploads in pages, as S3 does
    (`_list_multipart_uploads_in_pages`), for this test."""
    from moto.s3.responses import S3Response

    monkeypatch.setattr(S3Response, "list_multipart_uploads", _list_multipart_uploads_in_pages)
