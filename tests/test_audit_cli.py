"""`timbel audit` end to end, in process (`tests.test_cli.invoke`), each test in its own
directory (TIMBEL_HOME is `.timbel` there, with a SQLite warehouse). Events come from real
commands: `timbel sample` (db.upgrade, sample.load) and `timbel alerts silence`."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import delete, select, update

from tests.test_cli import invoke
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.models import AuditEvent

# One worker builds the module fixture, not each (tests/conftest.py):
# the audited sample directory, built through the CLI once.
pytestmark = pytest.mark.xdist_group("audit_cli")


def audit(args: list[str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess:
    """`timbel audit ARGS`, in process (`tests.test_cli.invoke`)."""
    return invoke(["audit", *args], cwd, stdin=stdin)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("audited")
    loaded = invoke(["sample"], directory)
    assert loaded.returncode == 0, loaded.stderr
    silenced = invoke(
        ["alerts", "silence", "--match", "alertname=DiskFull", "--comment", "disk swap"],
        directory,
    )
    assert silenced.returncode == 0, silenced.stderr
    return directory


@pytest.fixture
def home(prepared: Path, tmp_path: Path) -> Path:
    target = tmp_path / "org"
    shutil.copytree(prepared, target)
    return target


def _json(args: list[str], cwd: Path) -> Any:
    completed = audit(args, cwd)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def _engine(cwd: Path) -> Any:
    return get_engine(f"sqlite:///{(cwd / '.timbel' / 'warehouse.db').resolve()}")


def test_verify_intact_then_tampered(home: Path) -> None:
    text = audit(["verify"], home)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("audit log intact: 3 events; head anchor 3:")
    report = _json(["verify", "--json"], home)
    assert report["intact"] and report["events"] == 3 and report["first_broken_id"] is None
    anchor = report["anchor"]
    assert _json(["verify", "--anchor", anchor, "--json"], home)["intact"]

    with _engine(home).begin() as connection:
        connection.execute(
            update(AuditEvent).where(AuditEvent.action == "sample.load").values(actor="eve")
        )
    broken = audit(["verify"], home)
    assert broken.returncode == 1
    assert broken.stdout.strip() == "audit log BROKEN at event 2: content does not match its hash"
    as_json = audit(["verify", "--json"], home)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["first_broken_id"] == 2


def test_search(home: Path) -> None:
    every = _json(["search", "--json"], home)
    assert [e["action"] for e in every] == ["alerts.silence", "sample.load", "db.upgrade"]
    assert {e["actor"] for e in every} == {"minji.kim"}
    assert set(every[0]) == {"id", "at", "actor", "action", "target", "details", "prev_hash",
                             "hash"}  # fmt: skip
    assert [e["action"] for e in _json(["search", "--action", "alerts.", "--json"], home)] == [
        "alerts.silence"
    ]
    assert _json(["search", "--actor", "someone.else", "--json"], home) == []
    assert len(_json(["search", "--since", "1h", "--limit", "2", "--json"], home)) == 2
    assert _json(["search", "--until", "2020-01-01", "--json"], home) == []
    silence = every[0]["target"]
    assert [e["id"] for e in _json(["search", "--target", silence[:8], "--json"], home)] == [3]
    text = audit(["search", "--action", "sample"], home)
    assert "sample.load" in text.stdout and text.stdout.endswith("1 event(s)\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "--since", "last tuesday"], "--since: 'last tuesday' is not a duration"),
        (["search", "--until", "soon"], "--until: 'soon' is not a duration"),
        (["search", "--limit", "0"], "--limit must be 1 or more"),
        (["search", "--since", "1h", "--until", "2h"], "must be before until"),
        (["verify", "--anchor", "12:abc"], "is not ID:HASH"),
        (["archive", "--older-than", "-1", "--yes"], "--older-than must be 0 days or more"),
    ],
)
def test_bad_input_is_one_line(home: Path, args: list[str], message: str) -> None:
    completed = audit(args, home)
    assert completed.returncode == 2
    assert completed.stderr.startswith("timbel: error: ") and message in completed.stderr
    assert completed.stderr.count("\n") == 1


def test_archive_then_verify_and_search(home: Path) -> None:
    archive_dir = home / "kept"
    nothing = audit(["archive", "--yes"], home)  # default retention: 365 days
    assert nothing.returncode == 0 and nothing.stdout.startswith("nothing to archive")
    refused = audit(["archive", "--older-than", "0", "--dir", str(archive_dir)], home, stdin="n\n")
    assert refused.returncode == 1 and "Archive 2 events (#1..#2)" in refused.stdout
    assert not archive_dir.exists()

    done = _json(
        ["archive", "--older-than", "0", "--dir", str(archive_dir), "--yes", "--json"], home
    )
    assert (done["archived"], done["first_id"], done["last_id"], done["remaining"]) == (2, 1, 2, 2)
    path = Path(done["archive"])
    assert path.parent == archive_dir.resolve() and path.exists()

    report = _json(["verify", "--archives", "--json"], home)
    assert report["intact"] and report["checkpoint_id"] == 2 and report["events"] == 2
    assert [(a["events"], a["intact"]) for a in report["archives"]] == [(2, True)]
    text = audit(["verify"], home)
    assert "audit log intact: 2 events after archive checkpoint #2" in text.stdout
    [event] = _json(["search", "--action", "audit.archive", "--json"], home)
    assert event["details"]["sha256"] == done["sha256"] and event["target"] == path.name

    again = audit(["archive", "--older-than", "0", "--yes"], home)  # default directory
    assert again.returncode == 0, again.stderr
    assert "archived 1 event (#3..#3)" in again.stdout  # #4 (the archive's event) stays
    assert len(list((home / ".timbel" / "audit-archive").glob("*.jsonl.gz"))) == 1
    assert [a["intact"] for a in _json(["verify", "--archives", "--json"], home)["archives"]] == [
        True,
        True,
    ]

    with gzip.open(path, "rt") as lines:
        records = [json.loads(line) for line in lines]
    records[0]["details"] = {"forged": True}
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(r) + "\n" for r in records)
    tampered = audit(["verify", "--archives"], home)
    assert tampered.returncode == 1
    assert "BROKEN: content does not match its hash at event 1" in tampered.stdout
    assert "audit log intact" in tampered.stdout  # the table itself is still fine


def _delete_newest(cwd: Path, count: int) -> None:
    """Delete the newest `count` events together: what is left still chains."""
    with _engine(cwd).begin() as connection:
        ids = connection.execute(
            select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(count)
        ).scalars()
        connection.execute(delete(AuditEvent).where(AuditEvent.id.in_(list(ids))))


def test_deleting_the_newest_events_is_found_by_the_recorded_anchor(home: Path) -> None:
    unanchored = audit(["verify"], home)
    assert unanchored.returncode == 0
    assert "no anchor recorded yet" in unanchored.stdout
    recorded = audit(["verify", "--record"], home)
    assert recorded.returncode == 0, recorded.stderr
    assert "head anchor recorded in" in recorded.stdout
    [line] = (home / ".timbel" / "audit-anchors.jsonl").read_text().splitlines()
    assert json.loads(line)["id"] == 3 and json.loads(line)["by"] == "timbel audit verify"
    assert "anchor 3 (anchor file line 1) is still there" in audit(["verify"], home).stdout

    _delete_newest(home, 2)
    # The two events left chain, so only the anchor shows the deletion, with no --anchor.
    assert _json(["verify", "--no-recorded-anchor", "--json"], home)["intact"]
    broken = audit(["verify", "--json"], home)
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert report["reason"] == "anchored event 3 is gone: the events up to it were deleted"
    assert report["checked_anchor"]["source"] == "anchor file line 1"


def test_the_newest_audit_reports_anchor_is_checked(home: Path) -> None:
    """The weekly report records the head in Dagster's event log (outside the warehouse);
    verify finds the newest report there by itself."""
    from timbel_dagster.assets.audit.report import AUDIT_WEEKLY, audit_report
    from timbel_dagster.bindings.warehouse import WarehouseResource
    from timbel_dagster.runs import open_instance

    week = AUDIT_WEEKLY.get_last_partition_key()
    warehouse = WarehouseResource(
        database_url=f"sqlite:///{(home / '.timbel' / 'warehouse.db').resolve()}"
    )
    with open_instance(home / ".timbel" / "dagster") as instance:
        result = dg.materialize(
            [audit_report], instance=instance, partition_key=week,
            resources={"warehouse": warehouse},
        )  # fmt: skip
        assert result.success
    checked = _json(["verify", "--json"], home)["checked_anchor"]
    assert (
        checked["anchor"].startswith("3:") and checked["source"] == f"audit report of week {week}"
    )

    _delete_newest(home, 1)
    broken = audit(["verify"], home)
    assert broken.returncode == 1
    assert "anchored event 3 is gone" in broken.stdout
    assert f"(anchor from audit report of week {week})" in broken.stdout


def test_a_damaged_anchor_file_is_named(home: Path) -> None:
    (home / ".timbel" / "audit-anchors.jsonl").write_text('{"id": 3, "hash": "abc"}\n')
    damaged = audit(["verify"], home)
    assert damaged.returncode == 2
    assert "audit-anchors.jsonl line 1" in damaged.stderr and "ID:HASH" in damaged.stderr
