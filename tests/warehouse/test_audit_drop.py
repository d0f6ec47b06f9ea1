"""A schema downgrade never drops audit events no archive holds (issue #13, finding 7).

`timbel db downgrade base --yes` used to drop `audit_events` with everything in it and leave
no trace. Guarded (`archive_dir`, what the command passes) it refuses while events are not
archived, and after `timbel audit archive` it seals what archiving leaves behind, with the
downgrade's own event, into a final archive file.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from tests.test_cli import invoke
from timbel_dagster.warehouse import migrate
from timbel_dagster.warehouse.audit.archive import (
    AuditLogInUseError,
    archive_before,
    verify_archive,
)
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

REFUSAL = (
    "refusing to downgrade to base: the audit log holds 3 event(s) not archived; archive "
    "them first with `timbel audit archive --older-than 0`"
)


def _events(url: str, count: int) -> None:
    with get_engine(url).begin() as connection:
        for number in range(count):
            append_event(connection, actor="ann", action="notify.unsubscribe", target=f"u{number}")


def _count(url: str) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(AuditEvent)).scalar_one()


def test_a_guarded_downgrade_refuses_then_seals_after_archiving(
    warehouse_url: str, tmp_path: Path
) -> None:
    tmp_path = tmp_path / "final"
    _events(warehouse_url, 4)
    with pytest.raises(AuditLogInUseError) as refused:
        migrate.downgrade(warehouse_url, "base", actor="minji.kim", archive_dir=tmp_path)
    assert str(refused.value) == REFUSAL
    # Nothing changed: the schema, the events, no file.
    assert migrate.current_revision(warehouse_url) == migrate.head_revision()
    assert _count(warehouse_url) == 4 and not tmp_path.exists()

    archived = archive_before(
        get_engine(warehouse_url), dt.datetime.now(dt.UTC), tmp_path / "archive", "minji.kim"
    )
    assert archived.events == 3 and archived.remaining == 2  # the head and audit.archive
    assert migrate.downgrade(warehouse_url, "base", "minji.kim", archive_dir=tmp_path) == (
        migrate.head_revision(),
        None,
    )
    with get_engine(warehouse_url).connect() as connection:
        assert not inspect(connection).has_table("audit_events")
    # The trace: the events left after the archive and the downgrade itself, chained on.
    [sealed] = tmp_path.glob("audit-*-dropped-*.jsonl.gz")
    report = verify_archive(sealed, None, archived.last_hash)
    assert report.intact and report.events == 3
    with gzip.open(sealed, "rt") as lines:
        records = [json.loads(line) for line in lines]
    assert [(r["actor"], r["action"]) for r in records] == [
        ("ann", "notify.unsubscribe"),
        ("minji.kim", "audit.archive"),
        ("minji.kim", "db.downgrade"),
    ]
    assert records[-1]["details"] == {
        "from": migrate.head_revision(),
        "to": None,
        "audit_log": "dropped",
    }


def test_unguarded_downgrade_still_resets_scratch_databases(warehouse_url: str) -> None:
    _events(warehouse_url, 2)
    assert migrate.downgrade(warehouse_url, "base")[1] is None  # what tests' _reset does


def test_dropping_the_checkpoints_is_refused_while_archives_exist(
    warehouse_url: str, tmp_path: Path
) -> None:
    _events(warehouse_url, 3)
    archive_before(get_engine(warehouse_url), dt.datetime.now(dt.UTC), tmp_path, "minji.kim")
    with pytest.raises(AuditLogInUseError) as refused:
        migrate.downgrade(warehouse_url, "0005", archive_dir=tmp_path)
    assert str(refused.value) == (
        "refusing to downgrade to 0005: it drops audit_checkpoints, which records the 1 "
        "audit archive(s) the audit chain is verified from"
    )
    assert migrate.current_revision(warehouse_url) == migrate.head_revision()


def test_the_command_refuses_to_drop_unarchived_events(tmp_path: Path) -> None:
    assert invoke(["db", "upgrade"], tmp_path).returncode == 0  # audited: db.upgrade
    url = f"sqlite:///{tmp_path / '.timbel' / 'warehouse.db'}"
    _events(url, 3)
    down = invoke(["db", "downgrade", "base", "--yes"], tmp_path)
    assert down.returncode == 2
    assert down.stderr.strip() == f"timbel: error: {REFUSAL}"
    assert _count(url) == 4
    archived = invoke(["audit", "archive", "--older-than", "0", "--yes"], tmp_path)
    assert archived.returncode == 0, archived.stderr
    down = invoke(["db", "downgrade", "base", "--yes"], tmp_path)
    assert down.returncode == 0, down.stderr
    assert len(list((tmp_path / ".timbel" / "audit-archive").glob("*-dropped-*"))) == 1
