"""`timbel backup` end to end, in process (`tests.test_cli.invoke`), on a SQLite warehouse in
each test's own directory (the PostgreSQL path is tested in tests/warehouse/test_backup.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from tests.test_cli import invoke
from timbel_dagster.warehouse.backup.operations import new_backup_id
from timbel_dagster.warehouse.backup.store import DirectoryStore, IncompleteUpload

KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(32)).decode()


def backup(
    args: list[str], cwd: Path, key: str | None = KEY, **env: str
) -> subprocess.CompletedProcess:
    return invoke(["backup", *args], cwd, **({"TIMBEL_BACKUP_KEY": key} if key else {}), **env)


def _one_line_error(result: subprocess.CompletedProcess, *parts: str) -> None:
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("timbel: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for part in parts:
        assert part in errors[0], errors[0]


@pytest.fixture
def created(tmp_path: Path) -> tuple[Path, dict]:
    assert invoke(["db", "upgrade"], tmp_path).returncode == 0
    made = backup(["create", "--json"], tmp_path)
    assert made.returncode == 0, made.stderr
    return tmp_path, json.loads(made.stdout)


def test_create_list_verify_restore(created: tuple[Path, dict]) -> None:
    directory, manifest = created
    assert manifest["source"] == "sqlite" and Path(manifest["path"]).is_file()
    assert "copying" in backup(["create"], directory).stderr  # progress goes to stderr

    listed = json.loads(backup(["list", "--json"], directory).stdout)
    assert manifest["id"] in [b["id"] for b in listed]
    table = backup(["list"], directory).stdout
    assert manifest["id"] in table and "sqlite" in table

    verified = backup(["verify", manifest["id"], "--json"], directory)
    assert verified.returncode == 0 and json.loads(verified.stdout)["ok"] is True
    assert "is intact" in backup(["verify", manifest["id"]], directory).stdout

    target = f"sqlite:///{directory / 'restored.db'}"
    restored = backup(["restore", manifest["id"], "--target", target, "--json"], directory)
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["tables"] == manifest["tables"]

    again = backup(["restore", manifest["id"], "--target", target], directory)
    _one_line_error(again, "is not empty", "--force")
    forced = backup(["restore", manifest["id"], "--target", target, "--force"], directory)
    assert forced.returncode == 0 and "counts and checksums match" in forced.stdout


def test_every_command_refuses_to_run_without_a_key(tmp_path: Path) -> None:
    for args in (["create"], ["list"], ["verify", "20261205T120000Z-sqlite-000000"]):
        _one_line_error(backup(args, tmp_path, key=None), "TIMBEL_BACKUP_KEY is not set",
                        "openssl rand -base64 32")  # fmt: skip
    _one_line_error(backup(["list"], tmp_path, key="c2hvcnQ="), "holds 5 bytes, not 32")


def test_bad_input_is_one_line(created: tuple[Path, dict]) -> None:
    directory, manifest = created
    _one_line_error(backup(["verify", "../x"], directory), "is not a backup id")
    _one_line_error(
        backup(["verify", "20991231T000000Z-sqlite-000000"], directory), "no backup", "list"
    )
    _one_line_error(
        backup(["verify", manifest["id"]], directory, key=OTHER_KEY), "made with another key"
    )
    _one_line_error(
        backup(["restore", manifest["id"], "--target", "mysql://x/y"], directory),
        "--target: unsupported database",
    )
    data = Path(manifest["path"])
    data.write_bytes(data.read_bytes()[:-50])
    _one_line_error(backup(["verify", manifest["id"]], directory), "truncated")
    target = directory / "restored.db"
    _one_line_error(
        backup(["restore", manifest["id"], "--target", f"sqlite:///{target}"], directory),
        "truncated",
    )
    assert not target.exists()


def test_prune_dry_run_then_prune(created: tuple[Path, dict]) -> None:
    directory, first = created
    second = json.loads(backup(["create", "--json"], directory).stdout)
    dry = backup(["prune", "--dry-run"], directory)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete {first['id']}" in dry.stdout
    assert f"keep {second['id']} (newest, daily" in dry.stdout
    assert Path(first["path"]).is_file()
    done = json.loads(backup(["prune", "--json"], directory).stdout)
    assert done["deleted"] == [first["id"]] and not Path(first["path"]).exists()
    assert [b["id"] for b in json.loads(backup(["list", "--json"], directory).stdout)] == [
        second["id"]
    ]


def test_a_bad_backup_url_is_one_line(tmp_path: Path) -> None:
    _one_line_error(backup(["list"], tmp_path, TIMBEL_BACKUP_URL="https://bucket/x"),
                    "TIMBEL_BACKUP_URL", "s3://bucket/prefix")  # fmt: skip


def test_prune_names_the_orphans_it_deletes_and_the_ones_it_leaves(
    created: tuple[Path, dict],
) -> None:
    """Data without a manifest: one of a backup killed three days ago goes (the dry run
    says it would), one of a backup that started a minute ago (perhaps still writing) stays."""
    directory, manifest = created
    store = Path(manifest["path"]).parent
    now = dt.datetime.now(dt.UTC)
    killed = new_backup_id("sqlite", now - dt.timedelta(days=3))
    writing = new_backup_id("sqlite", now - dt.timedelta(minutes=1))
    for name in (f"{killed}.tbk", f"{writing}.tbk"):
        (store / name).write_bytes(b"ciphertext")
    dry = backup(["prune", "--dry-run"], directory)
    assert dry.returncode == 0, dry.stderr
    said = {line.split(" (")[0]: line for line in dry.stdout.splitlines()}
    assert said[f"would delete orphan {killed}.tbk"].endswith(
        "(no manifest and no catalogue row, started 72 h ago: a backup killed before its manifest)"
    )
    assert said[f"left orphan {writing}.tbk"].endswith(
        "ago: a backup may still be writing it; deleted once 48 h old)"
    )
    assert (store / f"{killed}.tbk").exists()
    done = backup(["prune"], directory, TIMBEL_BACKUP_ORPHAN_HOURS="72")
    assert (
        f"deleted orphan {killed}.tbk" in done.stdout
        and f"left orphan {writing}.tbk" in done.stdout
    )
    assert not (store / f"{killed}.tbk").exists() and (store / f"{writing}.tbk").exists()
    assert json.loads(backup(["prune", "--json"], directory).stdout)["orphans"][0]["id"] == writing


def test_prune_aborts_the_uploads_of_killed_backups(
    created: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hidden partial file of a write killed three days ago (the directory's incomplete
    upload): the dry run says it would abort it; a prune whose abort fails warns naming it
    and succeeds (the sweep is housekeeping); the next one aborts it. One of a backup that
    started a minute ago is left."""
    directory, manifest = created
    store = Path(manifest["path"]).parent
    now = dt.datetime.now(dt.UTC)
    killed = new_backup_id("sqlite", now - dt.timedelta(days=3))
    writing = new_backup_id("sqlite", now - dt.timedelta(minutes=1))
    old, young = f".{killed}.tbk.k3x9q2ab.partial", f".{writing}.tbk.p0w8e7rt.partial"
    for name in (old, young):
        (store / name).write_bytes(b"half a backup")

    dry = backup(["prune", "--dry-run"], directory)
    assert dry.returncode == 0, dry.stderr
    said = {line.split(" (")[0]: line for line in dry.stdout.splitlines()}
    assert said[f"would abort incomplete upload {old} of {killed}.tbk"].endswith(
        "(started 72 h ago and never completed: a write killed half way)"
    )
    assert said[f"left incomplete upload {young} of {writing}.tbk"].endswith(
        "ago: a backup may still be writing it; aborted once 48 h old)"
    )
    assert (store / old).exists()

    def fails(self: DirectoryStore, upload: IncompleteUpload) -> None:
        raise PermissionError(f"cannot delete {upload.upload_id}")

    with monkeypatch.context() as patched:
        patched.setattr(DirectoryStore, "abort_upload", fails)
        warned = backup(["prune", "--json"], directory)
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr.startswith(
        f"warning: could not abort the incomplete upload {old} of {killed}.tbk "
        f"(PermissionError: cannot delete {old}); the next prune tries again"
    ), warned.stderr
    reported = json.loads(warned.stdout)
    assert reported["uploads_aborted"] == [] and reported["failed"] == []
    assert [f["upload"] for f in reported["uploads_failed"]] == [old]
    assert (store / old).exists()

    done = backup(["prune"], directory)
    assert done.returncode == 0, done.stderr
    assert f"aborted incomplete upload {old} of {killed}.tbk (started 72 h ago" in done.stdout
    assert f"left incomplete upload {young}" in done.stdout
    assert not (store / old).exists() and (store / young).exists()
    after = json.loads(backup(["prune", "--json"], directory).stdout)
    assert [(u["upload_id"], u["abort"]) for u in after["uploads"]] == [(young, False)]
