"""Writes a killed process never completed, swept by every prune: incomplete multipart uploads
in S3 (against moto's server mode on loopback) and a directory store's hidden partial files.
moto says every upload was initiated at one moment in 2010, so the tests read `Initiated` back
and move the prune's clock (`now`), as the orphan rule's tests do; nothing sleeps."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.services.s3 import (  # noqa: F401
    S3Endpoint,
    aws_test_credentials,
    moto_s3,
    s3_upload_pages,
)
from tests.test_cli import invoke
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.backup.crypto import BackupError, BackupKeys
from timbel_dagster.warehouse.backup.operations import create_backup, new_backup_id
from timbel_dagster.warehouse.backup.retention import (
    Policy,
    prune_backups,
    prune_warnings,
)
from timbel_dagster.warehouse.backup.s3 import MIN_PART_SIZE, S3Store
from timbel_dagster.warehouse.backup.store import BACKUP_FILE, DirectoryStore, IncompleteUpload
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

KEYS = BackupKeys.from_bytes(bytes(range(32)))
AGE = dt.timedelta(hours=48)
PREFIX = "nightly/warehouse"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture
def store(s3: S3Endpoint, aws_test_credentials: None) -> S3Store:  # noqa: F811
    return S3Store(f"s3://{s3.new_bucket()}/{PREFIX}", endpoint_url=s3.url,
                   part_size=MIN_PART_SIZE)  # fmt: skip


def _killed_upload(store: S3Store, key: str) -> str:
    """An upload as a backup killed half way leaves it: begun, one part in, never completed
    nor aborted. Its upload id."""
    upload_id = store.client.create_multipart_upload(Bucket=store.bucket, Key=key)["UploadId"]
    store.client.upload_part(Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                             Body=b"half a backup")  # fmt: skip
    return upload_id


def _open_uploads(store: S3Store) -> dict[str, Any]:
    """Every incomplete upload in the bucket, whatever its prefix: upload id -> listing."""
    listed = store.client.list_multipart_uploads(Bucket=store.bucket)
    assert not listed["IsTruncated"]
    return {u["UploadId"]: u for u in listed.get("Uploads", [])}


def _prune(store: Any, now: dt.datetime, **options: Any) -> dict[str, Any]:
    options.setdefault("database_url", None)
    return prune_backups(store, KEYS, Policy(), actor="minji.kim", orphan_age=AGE, now=now,
                         **options)  # fmt: skip


def test_an_upload_is_left_while_younger_than_the_orphan_age_then_aborted(store: S3Store) -> None:
    """47 h after it started it may be a backup still writing: left, and said so. At 48 h the
    dry run says it would abort it and aborts nothing; the prune aborts it."""
    name = f"{new_backup_id('postgresql', dt.datetime.now(dt.UTC))}.tbk"
    upload = _killed_upload(store, f"{PREFIX}/{name}")
    started = _open_uploads(store)[upload]["Initiated"]

    young = _prune(store, started + AGE - dt.timedelta(hours=1))
    assert [(u["name"], u["upload_id"], u["abort"]) for u in young["uploads"]] == [
        (name, upload, False)
    ]
    assert "a backup may still be writing it; aborted once 48 h old" in young["uploads"][0]["why"]
    assert young["uploads_aborted"] == [] and upload in _open_uploads(store)

    dry = _prune(store, started + AGE, dry_run=True)
    assert [(u["upload_id"], u["abort"]) for u in dry["uploads"]] == [(upload, True)]
    assert dry["uploads"][0]["started"] == started.isoformat()
    assert dry["uploads_aborted"] == [] and upload in _open_uploads(store)

    done = _prune(store, started + AGE)
    assert done["uploads_aborted"] == [upload]
    assert "never completed" in done["uploads"][0]["why"]
    assert _open_uploads(store) == {}
    assert _prune(store, started + AGE)["uploads"] == []
    store.abort_upload(IncompleteUpload(name, upload, started))  # gone already: nothing to do


def test_uploads_outside_the_store_prefix_are_never_touched(store: S3Store) -> None:
    """Other prefixes of the bucket (ones that merely start with the same letters, another,
    the bucket's root) and a folder below the prefix, which the store never writes to, keep
    their uploads however old."""
    name = f"{new_backup_id('postgresql', dt.datetime.now(dt.UTC))}.tbk"
    mine = _killed_upload(store, f"{PREFIX}/{name}")
    others = {
        _killed_upload(store, key)
        for key in (f"{PREFIX}-old/{name}", f"{PREFIX}-{name}", f"other/{name}", name,
                    f"{PREFIX}/sub/{name}")
    }  # fmt: skip
    much_later = max(u["Initiated"] for u in _open_uploads(store).values()) + 10 * AGE

    done = _prune(store, much_later)
    assert [u["upload_id"] for u in done["uploads"]] == [mine]
    assert done["uploads_aborted"] == [mine]
    assert set(_open_uploads(store)) == others


def test_only_backup_files_uploads_are_taken_for_a_killed_backup_s(
    s3: S3Endpoint, store: S3Store
) -> None:
    """Another program's uploads into the same prefix, or into the root of a bucket the store
    has no prefix in, are not a backup's however old: only names a backup's file has."""
    name = f"{new_backup_id('sqlite', dt.datetime.now(dt.UTC))}.manifest.json"
    mine = _killed_upload(store, f"{PREFIX}/{name}")
    foreign = {
        _killed_upload(store, f"{PREFIX}/{key}")
        for key in ("vendor-export.csv", f"{name}.bak", f"x{name}", "20261205T000000Z.tbk")
    }
    rootless = S3Store(f"s3://{store.bucket}", endpoint_url=s3.url)
    at_root = _killed_upload(rootless, "exports-2026-12.parquet")
    much_later = max(u["Initiated"] for u in _open_uploads(store).values()) + 10 * AGE

    assert _prune(store, much_later)["uploads_aborted"] == [mine]
    assert _prune(rootless, much_later)["uploads"] == []
    # S3 allows a key ending in a newline, which `$` would have let through.
    assert BACKUP_FILE.match(name) and not BACKUP_FILE.match(f"{name}\n")
    assert set(_open_uploads(store)) == foreign | {at_root}


@pytest.mark.usefixtures("s3_upload_pages")
def test_the_listing_follows_every_page(s3: S3Endpoint, store: S3Store) -> None:
    """Two uploads a page (MaxUploads), three of them of one name: the second page starts
    inside that name's, so only KeyMarker and UploadIdMarker together reach all of them."""
    small_pages = S3Store(f"s3://{store.bucket}/{PREFIX}", endpoint_url=s3.url, list_page_size=2)
    ids = [new_backup_id("postgresql", dt.datetime.now(dt.UTC)) for _ in range(2)]
    keys = [f"{PREFIX}/{ids[0]}.tbk"] * 3 + [f"{PREFIX}/{ids[1]}.tbk"] * 2
    uploads = [_killed_upload(store, key) for key in keys]
    first = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=f"{PREFIX}/",
                                                MaxUploads=2)  # fmt: skip
    assert first["IsTruncated"] and len(first["Uploads"]) == 2  # the server does page
    much_later = max(u["Initiated"] for u in _open_uploads(store).values()) + AGE

    done = _prune(small_pages, much_later)
    assert sorted(done["uploads_aborted"]) == sorted(uploads)
    assert _open_uploads(store) == {}


class _AbortFails(S3Store):
    """The same bucket, whose AbortMultipartUpload of one upload fails (S3 answers 403)."""

    def __init__(self, store: S3Store, failing: str) -> None:
        super().__init__(f"s3://{store.bucket}/{store.prefix}", client=store.client)
        self.failing = failing

    def abort_upload(self, upload: IncompleteUpload) -> None:
        if upload.upload_id == self.failing:
            raise BackupError(
                f"S3 abort_multipart_upload of {self.where(upload.name)} failed: AccessDenied"
            )
        super().abort_upload(upload)


@pytest.mark.parametrize("warehouse_backend", ["sqlite"], indirect=True)
def test_an_abort_that_fails_is_named_and_the_rest_is_done(
    warehouse_url: str, store: S3Store, tmp_path: Path
) -> None:
    """One abort fails: the backups the retention drops, an orphan and the other upload still
    go, the prune succeeds with a warning naming the upload (`uploads_failed`), the audit
    event says what was aborted and what was not, and the next prune aborts it."""
    with get_engine(warehouse_url).begin() as connection:
        append_event(connection, actor="minji.kim", action="test.row")
    ids = [
        create_backup(warehouse_url, store, KEYS, anchor_file=tmp_path / "a", actor="minji.kim")[
            "id"
        ]
        for _ in range(3)
    ]
    # The failing one first, as the prune goes by name: the other comes after its failure.
    failing_name, other_name = sorted(
        f"{new_backup_id('postgresql', dt.datetime.now(dt.UTC))}.tbk" for _ in range(2)
    )
    failing = _killed_upload(store, f"{PREFIX}/{failing_name}")
    other = _killed_upload(store, f"{PREFIX}/{other_name}")
    now = max(u["Initiated"] for u in _open_uploads(store).values()) + AGE
    killed = new_backup_id("sqlite", now - AGE - dt.timedelta(hours=1))
    store.put(f"{killed}.tbk", [b"ciphertext of a backup killed before its manifest"])

    # A warning, not a failure: credentials from before the sweep may lack the permission.
    result = _prune(_AbortFails(store, failing), now, database_url=warehouse_url)
    assert result["deleted"] == ids[:2] and result["orphans_deleted"] == [killed]
    assert result["uploads_aborted"] == [other] and result["failed"] == []
    assert [(f["file"], f["upload"]) for f in result["uploads_failed"]] == [(failing_name, failing)]
    [warning] = prune_warnings(result)
    assert re.fullmatch(
        rf"warning: could not abort the incomplete upload {failing} of {failing_name} "
        r"\(BackupError: S3 abort_multipart_upload .* AccessDenied\); the next prune tries again "
        r"\(an S3 store's credentials need s3:AbortMultipartUpload\)",
        warning,
    ), warning
    assert set(_open_uploads(store)) == {failing}
    assert store.names("") == [f"{ids[2]}.manifest.json", f"{ids[2]}.tbk"]
    with get_engine(warehouse_url).connect() as connection:
        last = connection.execute(
            select(AuditEvent.action, AuditEvent.details).order_by(AuditEvent.id.desc()).limit(1)
        ).one()
    assert last.action == "backup.prune" and last.details["uploads_aborted"] == [other]
    assert [f["upload"] for f in last.details["uploads_failed"]] == [failing]
    assert last.details["failed"] == []

    again = _prune(store, now, database_url=warehouse_url)
    assert again["uploads_aborted"] == [failing] and again["failed"] == []
    assert _open_uploads(store) == {}


class _ListingFails(S3Store):
    """The same bucket, whose credentials may not ListBucketMultipartUploads."""

    def __init__(self, store: S3Store) -> None:
        super().__init__(f"s3://{store.bucket}/{store.prefix}", client=store.client)

    def incomplete_uploads(self) -> list[IncompleteUpload]:
        raise BackupError(f"S3 list_multipart_uploads of {self.where('')} failed: AccessDenied")


def test_a_listing_of_the_uploads_that_fails_is_a_warning_and_stops_nothing(
    store: S3Store,
) -> None:
    """Credentials without s3:ListBucketMultipartUploads (asked for only since prunes abort
    uploads) must not fail a nightly prune that did everything else: the result says where
    and why, and `prune_warnings` is the warning the CLI and the job print."""
    now = dt.datetime.now(dt.UTC)
    killed = new_backup_id("postgresql", now - AGE - dt.timedelta(hours=1))
    store.put(f"{killed}.tbk", [b"ciphertext"])
    result = _prune(_ListingFails(store), now)
    assert result["orphans_deleted"] == [killed] and store.names("") == []
    assert result["failed"] == [] and result["uploads"] == []
    assert result["uploads_unlisted"] == (
        f"s3://{store.bucket}/{store.prefix}/: BackupError: S3 list_multipart_uploads of "
        f"s3://{store.bucket}/{store.prefix}/ failed: AccessDenied"
    )
    [warning] = prune_warnings(result)
    assert warning.startswith(
        f"warning: could not list the incomplete uploads in s3://{store.bucket}/"
    )
    assert "s3:ListBucketMultipartUploads" in warning
    dry = _prune(_ListingFails(store), now, dry_run=True)
    assert dry["uploads_unlisted"] == result["uploads_unlisted"] and dry["failed"] == []
    # A store that lists them has no warning.
    assert prune_warnings(_prune(store, now)) == []


@pytest.mark.usefixtures("aws_test_credentials")
def test_the_cli_reports_the_uploads_it_aborts(s3: S3Endpoint, tmp_path: Path) -> None:
    """`timbel backup prune` on TIMBEL_BACKUP_URL with the real clock: a killed upload is
    `would abort` in the dry run, `aborted` in --json, as old as its `Initiated` says."""
    bucket = s3.new_bucket()
    store = S3Store(f"s3://{bucket}/timbel", endpoint_url=s3.url)
    name = f"{new_backup_id('sqlite', dt.datetime.now(dt.UTC))}.tbk"
    upload = _killed_upload(store, f"timbel/{name}")
    age = dt.datetime.now(dt.UTC) - _open_uploads(store)[upload]["Initiated"]
    old = age >= AGE  # moto 5: initiated in 2010; a moto that tells the truth: a moment ago
    env = {
        "TIMBEL_BACKUP_KEY": base64.b64encode(bytes(range(32))).decode(),
        "TIMBEL_BACKUP_URL": f"s3://{bucket}/timbel",
        "TIMBEL_BACKUP_S3_ENDPOINT_URL": s3.url,
        "TIMBEL_BACKUP_S3_REGION": "us-east-1",
    }
    assert invoke(["db", "upgrade"], tmp_path).returncode == 0
    dry = invoke(["backup", "prune", "--dry-run"], tmp_path, **env)
    assert dry.returncode == 0, dry.stderr
    said = "would abort" if old else "left"
    assert f"{said} incomplete upload {upload} of {name} (started " in dry.stdout
    assert upload in _open_uploads(store)
    done = invoke(["backup", "prune", "--json"], tmp_path, **env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["uploads_aborted"] == ([upload] if old else [])
    assert (upload in _open_uploads(store)) is not old


def _partial_name(store: DirectoryStore, name: str) -> str:
    """The name of the hidden file `put` writes `name` into until it is complete, as a write
    killed half way leaves it (the put itself then completes and is deleted)."""
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        seen.extend(p.name for p in store.directory.iterdir() if p.name.endswith(".partial"))
        yield b"ciphertext"

    store.put(name, chunks())
    store.delete(name)
    [partial] = seen
    return partial


def test_a_directory_store_sweeps_the_partial_files_of_killed_writes(tmp_path: Path) -> None:
    """A killed write's `.ID.tbk.XXXXXXXX.partial` goes once its backup started 48 h ago; one
    of a backup that started an hour ago is left, and so is everything else hidden there: a
    base backup being written (`.ID.partial`, a directory) and its metadata's partial file,
    when TIMBEL_BASE_BACKUP_DIR is the same directory, and any other file."""
    store = DirectoryStore(tmp_path / "backups")
    now = dt.datetime.now(dt.UTC)
    killed = new_backup_id("sqlite", now - AGE - dt.timedelta(minutes=1))
    writing = new_backup_id("sqlite", now - dt.timedelta(hours=1))
    killed_partials = [_partial_name(store, f"{killed}.tbk"),
                       _partial_name(store, f"{killed}.manifest.json")]  # fmt: skip
    writing_partial = _partial_name(store, f"{writing}.tbk")
    for partial in [*killed_partials, writing_partial]:
        (store.directory / partial).write_bytes(b"half")
    base = new_backup_id("base", now - 10 * AGE)
    (store.directory / f".{base}.partial").mkdir()
    others = [f".{base}.json.abcd1234.partial", ".notes.partial", f"{killed}.tbk.partial"]
    for name in others:
        (store.directory / name).write_bytes(b"not ours")

    dry = _prune(store, now, dry_run=True)
    assert sorted((u["upload_id"], u["abort"]) for u in dry["uploads"]) == sorted(
        [(p, True) for p in killed_partials] + [(writing_partial, False)]
    )
    assert dry["uploads_aborted"] == [] and all(
        (store.directory / p).exists() for p in killed_partials
    )

    done = _prune(store, now)
    assert sorted(done["uploads_aborted"]) == sorted(killed_partials)
    assert sorted(p.name for p in store.directory.iterdir()) == sorted(
        [writing_partial, f".{base}.partial", *others]
    )
