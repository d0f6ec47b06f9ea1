"""The S3 backup store against a real S3 endpoint (moto's server mode on loopback): streamed
multipart uploads visible only when complete, aborted on failure, and whole backups made,
listed, verified, restored and pruned through it."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import scratch_postgres_database
from tests.services.s3 import S3Endpoint, aws_test_credentials, moto_s3  # noqa: F401
from tests.test_cli import invoke
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupIntegrityError, BackupKeys
from timbel_dagster.warehouse.backup.operations import (
    create_backup,
    list_backups,
    new_backup_id,
    verify_backup,
)
from timbel_dagster.warehouse.backup.restore import restore_backup
from timbel_dagster.warehouse.backup.retention import Policy, PruneIncomplete, prune_backups
from timbel_dagster.warehouse.backup.s3 import MIN_PART_SIZE, S3Store, parse_s3_url
from timbel_dagster.warehouse.engine import get_engine

KEYS = BackupKeys.from_bytes(bytes(range(32)))
MIB = 1 << 20


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def store(s3: S3Endpoint, aws_test_credentials: None) -> S3Store:  # noqa: F811
    return S3Store(f"s3://{s3.new_bucket()}/nightly/warehouse", endpoint_url=s3.url,
                   part_size=MIN_PART_SIZE)  # fmt: skip


def _uploads(store: S3Store) -> list[dict]:
    return store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])


def test_a_large_object_streams_in_parts_and_appears_only_when_complete(store: S3Store) -> None:
    """12 MiB in 1 MiB pieces with 5 MiB parts: while it streams, parts are already uploaded
    (nothing waits for the whole object in memory) and the name is not listed."""
    data = os.urandom(12 * MIB)
    seen_midway = {}

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(data), MIB):
            if start == 11 * MIB:
                uploads = _uploads(store)
                parts = store.client.list_parts(
                    Bucket=store.bucket, Key=uploads[0]["Key"], UploadId=uploads[0]["UploadId"]
                )["Parts"]
                seen_midway.update(parts=len(parts), names=store.names(".tbk"))
            yield data[start : start + MIB]

    store.put("x.tbk", pieces())
    assert seen_midway == {"parts": 2, "names": []}
    assert store.names(".tbk") == ["x.tbk"] and _uploads(store) == []
    with store.open("x.tbk") as source:
        assert source.read() == data
    assert store.where("x.tbk") == f"s3://{store.bucket}/nightly/warehouse/x.tbk"


def test_a_failed_upload_leaves_no_object_and_no_parts(store: S3Store) -> None:
    def fails_after_two_parts() -> Iterator[bytes]:
        yield os.urandom(11 * MIB)
        raise BackupError("pg_dump failed")

    with pytest.raises(BackupError, match="pg_dump failed"):
        store.put("y.tbk", fails_after_two_parts())
    assert store.names(".tbk") == [] and _uploads(store) == []


def test_small_objects_missing_objects_and_deletes(store: S3Store) -> None:
    store.put("a.manifest.json", [b"{}"])
    store.put("b.tbk", [])
    assert store.names(".manifest.json") == ["a.manifest.json"]
    with pytest.raises(FileNotFoundError), store.open("missing.tbk"):
        pass
    store.delete("a.manifest.json")
    store.delete("a.manifest.json")  # deleting what is gone is not an error
    assert store.names(".manifest.json") == []


def test_a_bucket_that_does_not_exist_is_named(s3: S3Endpoint, aws_test_credentials: None) -> None:  # noqa: F811
    store = S3Store("s3://no-such-bucket/p", endpoint_url=s3.url)
    with pytest.raises(
        BackupError, match=r"S3 put_object of s3://no-such-bucket/p/z.tbk failed: NoSuchBucket"
    ):
        store.put("z.tbk", [b"data"])


@pytest.mark.parametrize("url", ["s3://", "https://bucket/p", "s3://b/p?x=1", "bucket/prefix"])
def test_a_bad_location_is_refused(url: str) -> None:
    with pytest.raises(BackupError, match="is not an S3 location"):
        parse_s3_url(url)


def test_backups_through_s3(warehouse_url: str, store: S3Store, tmp_path: Path) -> None:
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row", target="in-s3")
    made = [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")
        for _ in range(2)
    ]
    assert sorted(b["id"] for b in list_backups(store, KEYS)) == sorted(m["id"] for m in made)
    newest = made[-1]["id"]
    assert verify_backup(store, KEYS, newest)["verified_bytes"] == made[-1]["size"]
    with ExitStack() as stack:
        target = (
            f"sqlite:///{tmp_path / 'restored.db'}"
            if made[0]["source"] == "sqlite"
            else stack.enter_context(scratch_postgres_database("s3_restore"))
        )
        restored = restore_backup(store, KEYS, newest, target)
        assert restored["tables"] == made[-1]["tables"] and restored["checksums"] is True

    # A tampered object is refused, and the retention deletes through S3 too.
    key = store._key(made[0]["file"])
    blob = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    store.client.put_object(Bucket=store.bucket, Key=key, Body=blob[:-40])
    with pytest.raises(BackupIntegrityError, match="truncated"):
        verify_backup(store, KEYS, made[0]["id"])
    pruned = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert pruned["deleted"] == [made[0]["id"]]
    assert store.names("") == [f"{newest}.manifest.json", f"{newest}.tbk"]


@pytest.mark.usefixtures("aws_test_credentials")
def test_the_cli_uses_the_s3_settings(s3: S3Endpoint, tmp_path: Path) -> None:
    """TIMBEL_BACKUP_URL and TIMBEL_BACKUP_S3_ENDPOINT_URL send `timbel backup` to S3."""
    bucket = s3.new_bucket()
    env = {
        "TIMBEL_BACKUP_KEY": base64.b64encode(bytes(range(32))).decode(),
        "TIMBEL_BACKUP_URL": f"s3://{bucket}/timbel",
        "TIMBEL_BACKUP_S3_ENDPOINT_URL": s3.url,
        "TIMBEL_BACKUP_S3_REGION": "us-east-1",
    }
    assert invoke(["db", "upgrade"], tmp_path).returncode == 0
    made = invoke(["backup", "create", "--json"], tmp_path, **env)
    assert made.returncode == 0, made.stderr
    manifest = json.loads(made.stdout)
    assert manifest["path"] == f"s3://{bucket}/timbel/{manifest['id']}.tbk"
    keys = sorted(o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"timbel/{manifest['id']}.manifest.json", f"timbel/{manifest['id']}.tbk"]
    verified = invoke(["backup", "verify", manifest["id"]], tmp_path, **env)
    assert verified.returncode == 0 and "is intact" in verified.stdout


class _DeleteFails(S3Store):
    """The same bucket, whose DeleteObject of one object fails (S3 answers 403 or 503)."""

    def __init__(self, store: S3Store, failing: str) -> None:
        super().__init__(f"s3://{store.bucket}/{store.prefix}", client=store.client)
        self.failing = failing

    def delete(self, name: str) -> None:
        if name == self.failing:
            raise BackupError(f"S3 delete_object of {self.where(name)} failed: AccessDenied")
        super().delete(name)


def test_a_data_object_whose_delete_failed_is_deleted_by_the_next_prune(
    warehouse_url: str, store: S3Store, tmp_path: Path
) -> None:
    """Through S3 as through the directory: the object the failed delete left behind, listed
    by nothing, is named by the dry run and deleted by the next prune; an object of a backup
    being written (no manifest yet, an hour old) is never touched."""
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    ids = [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")[
            "id"
        ]
        for _ in range(3)
    ]
    writing = new_backup_id(ids[0].split("-")[1], dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    store.put(f"{writing}.tbk", [b"half a backup"])
    failing = _DeleteFails(store, f"{ids[0]}.tbk")
    with pytest.raises(PruneIncomplete, match=rf"{ids[0]}\.tbk \(BackupError: S3 delete_object"):
        prune_backups(failing, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert store.names("") == sorted(
        [f"{ids[0]}.tbk", f"{ids[2]}.manifest.json", f"{ids[2]}.tbk", f"{writing}.tbk"]
    )

    dry = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="x", dry_run=True)
    assert [(o["id"], o["delete"]) for o in dry["orphans"]] == sorted(
        [(ids[0], True), (writing, False)]
    )
    done = prune_backups(store, KEYS, Policy(), database_url=warehouse_url, actor="minji.kim")
    assert done["orphans_deleted"] == [ids[0]]
    assert store.names("") == sorted([f"{ids[2]}.manifest.json", f"{ids[2]}.tbk", f"{writing}.tbk"])
