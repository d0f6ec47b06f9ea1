"""Tampering with the audit log, archiving it and searching it, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from timbel_dagster.warehouse.audit import archive as audit_archive
from timbel_dagster.warehouse.audit.archive import (
    AuditArchiveError,
    archive_before,
    plan_archive,
    verify_archive,
    verify_archives,
)
from timbel_dagster.warehouse.audit.chain import (
    GENESIS_HASH,
    append_event,
    event_hash,
    search_events,
    verify_chain,
)
from timbel_dagster.warehouse.engine import get_engine
from timbel_dagster.warehouse.schema.deploy import AuditCheckpoint
from timbel_dagster.warehouse.schema.models import AuditEvent

EVENTS = AuditEvent.__table__
CHECKPOINTS = AuditCheckpoint.__table__


def _append(engine: Any, n: int, actor: str = "minji", action: str = "deploy.approve") -> None:
    for i in range(n):
        with engine.begin() as connection:
            append_event(
                connection, actor=actor, action=action, target=f"req-{i}", details={"n": i}
            )


def _rows(engine: Any) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(EVENTS).order_by(EVENTS.c.id)).mappings().all()


def _verify(engine: Any, **kwargs: Any) -> Any:
    with engine.connect() as connection:
        return verify_chain(connection, **kwargs)


# --- tampering ---------------------------------------------------------------------------
def _edit_details(c: Any, rows: list) -> None:
    c.execute(update(EVENTS).where(EVENTS.c.id == rows[2].id).values(details={"n": 99}))


def _edit_time(c: Any, rows: list) -> None:
    moved = rows[2].at - dt.timedelta(seconds=1)
    c.execute(update(EVENTS).where(EVENTS.c.id == rows[2].id).values(at=moved))


def _edit_prev_hash(c: Any, rows: list) -> None:
    c.execute(update(EVENTS).where(EVENTS.c.id == rows[2].id).values(prev_hash=rows[0].hash))


def _delete_middle(c: Any, rows: list) -> None:
    c.execute(delete(EVENTS).where(EVENTS.c.id == rows[2].id))


def _swap(c: Any, rows: list) -> None:
    a, b = rows[1].id, rows[2].id
    c.execute(update(EVENTS).where(EVENTS.c.id == a).values(id=-1))
    c.execute(update(EVENTS).where(EVENTS.c.id == b).values(id=a))
    c.execute(update(EVENTS).where(EVENTS.c.id == -1).values(id=b))


def _rewrite_middle_consistently(c: Any, rows: list) -> None:
    """Edit an event and recompute its own hash: the next event no longer chains onto it."""
    r = rows[2]
    forged = event_hash(r.prev_hash, r.at, "mallory", r.action, r.target, r.details)
    c.execute(update(EVENTS).where(EVENTS.c.id == r.id).values(actor="mallory", hash=forged))


def _forge_after_head_claiming_old_parent(c: Any, rows: list) -> None:
    at = rows[-1].at + dt.timedelta(seconds=1)
    digest = event_hash(rows[1].hash, at, "mallory", "deploy.approve", "req-x", {})
    c.execute(
        insert(EVENTS).values(
            id=rows[-1].id + 1,
            at=at,
            actor="mallory",
            action="deploy.approve",
            target="req-x",
            details={},
            prev_hash=rows[1].hash,
            hash=digest,
        )
    )


def _forge_before_first(c: Any, rows: list) -> None:
    at = rows[0].at - dt.timedelta(days=1)
    digest = event_hash(GENESIS_HASH, at, "mallory", "db.upgrade", None, {})
    c.execute(
        insert(EVENTS).values(
            id=rows[0].id - 1,
            at=at,
            actor="mallory",
            action="db.upgrade",
            target=None,
            details={},
            prev_hash=GENESIS_HASH,
            hash=digest,
        )
    )


def _forge_with_bogus_hash(c: Any, rows: list) -> None:
    c.execute(
        insert(EVENTS).values(
            id=rows[-1].id + 1,
            at=rows[-1].at,
            actor="mallory",
            action="x",
            target=None,
            details={},
            prev_hash=rows[-1].hash,
            hash="f" * 64,
        )
    )


# (tamper, index of the first bad event among the original rows or "new", reason fragment)
TAMPERING: list[tuple[Callable, int | str, str]] = [
    (_edit_details, 2, "content does not match its hash"),
    (_edit_time, 2, "content does not match its hash"),
    (_edit_prev_hash, 2, "previous hash is that of event"),
    (_delete_middle, 3, "nor any event left"),
    (_swap, 1, "later event"),
    (_rewrite_middle_consistently, 3, "nor any event left"),
    (_forge_after_head_claiming_old_parent, "new", "inserted or reordered"),
    (_forge_before_first, 0, "starts a new chain"),
    (_forge_with_bogus_hash, "new", "content does not match its hash"),
]


@pytest.mark.parametrize(
    ("tamper", "position", "reason"), TAMPERING, ids=[t[0].__name__[1:] for t in TAMPERING]
)
def test_tampering_names_the_first_bad_event(
    warehouse_url: str, tamper: Callable, position: int | str, reason: str
) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 5)
    rows = _rows(engine)
    assert _verify(engine).intact
    with engine.begin() as connection:
        tamper(connection, rows)
    report = _verify(engine)
    assert not report.intact
    expected = rows[-1].id + 1 if position == "new" else rows[position].id
    assert report.first_broken_id == expected
    assert reason in report.reason


def test_id_gaps_are_fine_when_the_hashes_chain(warehouse_url: str) -> None:
    """PostgreSQL spends ids on rolled-back appends; continuity is in the hashes."""
    engine = get_engine(warehouse_url)
    _append(engine, 2)
    with pytest.raises(RuntimeError), engine.begin() as connection:
        append_event(connection, actor="a", action="x")
        raise RuntimeError("the change failed")
    _append(engine, 2)
    head = _rows(engine)[-1].id
    with engine.begin() as connection:  # the id is not part of the hash
        connection.execute(update(EVENTS).where(EVENTS.c.id == head).values(id=head + 50))
    report = _verify(engine)
    assert report.intact and report.events == 4 and report.head_id == head + 50


def test_a_deleted_head_shows_only_against_an_anchor(warehouse_url: str) -> None:
    """Limitation: removing the newest events leaves a valid, shorter chain. An anchor
    recorded elsewhere (the weekly audit report's `head_anchor`) shows it."""
    engine = get_engine(warehouse_url)
    _append(engine, 5)
    before = _verify(engine)
    anchor = (before.head_id, before.head_hash)
    assert before.anchor == f"{before.head_id}:{before.head_hash}"
    assert _verify(engine, anchor=anchor).intact
    with engine.begin() as connection:
        connection.execute(delete(EVENTS).where(EVENTS.c.id == before.head_id))
    assert _verify(engine).intact  # the chain alone cannot tell
    report = _verify(engine, anchor=anchor)
    assert not report.intact and report.first_broken_id == before.head_id
    assert "is gone" in report.reason


def test_a_rewritten_head_shows_against_an_anchor(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 3)
    head = _rows(engine)[-1]
    with engine.begin() as connection:
        forged = event_hash(head.prev_hash, head.at, "mallory", head.action, None, {})
        connection.execute(
            update(EVENTS)
            .where(EVENTS.c.id == head.id)
            .values(actor="mallory", target=None, details={}, hash=forged)
        )
    assert _verify(engine).intact
    report = _verify(engine, anchor=(head.id, head.hash))
    assert not report.intact and "another hash" in report.reason


# --- archiving ---------------------------------------------------------------------------
def _archive_first_two(engine: Any, directory: Path) -> audit_archive.ArchiveResult:
    rows = _rows(engine)
    # Events strictly before the third event's time: the first two.
    return archive_before(engine, rows[2].at, directory, "minji")


def test_archive_keeps_the_chain_verifiable(warehouse_url: str, tmp_path: Path) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 5)
    rows = _rows(engine)
    result = _archive_first_two(engine, tmp_path / "archive")
    assert (result.events, result.first_id, result.last_id) == (2, rows[0].id, rows[1].id)
    assert result.last_hash == rows[1].hash and result.remaining == 4
    assert result.path.exists() and not list(result.path.parent.glob("*.partial"))

    report = _verify(engine)
    assert report.intact and report.events == 4 and report.checkpoint_id == rows[1].id
    remaining = _rows(engine)
    assert [r.id for r in remaining[:3]] == [r.id for r in rows[2:]]
    assert remaining[-1].action == "audit.archive"
    assert remaining[-1].details["sha256"] == result.sha256
    with engine.connect() as connection:
        checkpoint = connection.execute(select(CHECKPOINTS)).mappings().one()
    assert (checkpoint["last_id"], checkpoint["last_hash"]) == (rows[1].id, rows[1].hash)
    assert checkpoint["events"] == 2 and checkpoint["archive_sha256"] == result.sha256

    archived = verify_archive(result.path, result.sha256, GENESIS_HASH)
    assert archived.intact and archived.events == 2 and archived.last_hash == rows[1].hash
    with gzip.open(result.path, "rt") as lines:
        first = json.loads(lines.readline())
    assert set(first) == {"id", "at", "actor", "action", "target", "details", "prev_hash", "hash"}


def _edit_first_remaining(c: Any, checkpoint: Any) -> None:
    c.execute(update(EVENTS).where(EVENTS.c.id == checkpoint.last_id + 1).values(actor="x"))


def _delete_first_remaining(c: Any, checkpoint: Any) -> None:
    c.execute(delete(EVENTS).where(EVENTS.c.id == checkpoint.last_id + 1))


def _delete_checkpoint(c: Any, checkpoint: Any) -> None:
    c.execute(delete(CHECKPOINTS))


def _edit_checkpoint(c: Any, checkpoint: Any) -> None:
    c.execute(update(CHECKPOINTS).values(last_hash="e" * 64))


def _reinsert_an_archived_id(c: Any, checkpoint: Any) -> None:
    c.execute(
        insert(EVENTS).values(
            id=checkpoint.last_id,
            at=dt.datetime.now(dt.UTC),
            actor="mallory",
            action="x",
            target=None,
            details={},
            prev_hash=GENESIS_HASH,
            hash="d" * 64,
        )
    )


def _delete_every_remaining(c: Any, checkpoint: Any) -> None:
    c.execute(delete(EVENTS))


AFTER_ARCHIVE = [
    (_edit_first_remaining, "content does not match its hash"),
    (_delete_first_remaining, "does not match the archive checkpoint"),
    (_delete_checkpoint, "start of the log"),
    (_edit_checkpoint, "does not match the archive checkpoint"),
    (_reinsert_an_archived_id, "inserted after archiving"),
    (_delete_every_remaining, "no event is left after the archive checkpoint"),
]


@pytest.mark.parametrize(
    ("tamper", "reason"), AFTER_ARCHIVE, ids=[t[0].__name__[1:] for t in AFTER_ARCHIVE]
)
def test_tampering_after_an_archive_is_found(
    warehouse_url: str, tmp_path: Path, tamper: Callable, reason: str
) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 5)
    _archive_first_two(engine, tmp_path)
    with engine.connect() as connection:
        checkpoint = connection.execute(select(CHECKPOINTS)).one()
    with engine.begin() as connection:
        tamper(connection, checkpoint)
    report = _verify(engine)
    assert not report.intact and reason in report.reason


def _rewrite_archive(path: Path, change: Callable[[list[dict]], list[dict]]) -> None:
    with gzip.open(path, "rt") as lines:
        records = [json.loads(line) for line in lines]
    with gzip.open(path, "wt") as out:
        out.writelines(json.dumps(r) + "\n" for r in change(records))


@pytest.mark.parametrize(
    ("change", "bad_index", "reason"),
    [
        (lambda rs: [rs[0], {**rs[1], "actor": "mallory"}, *rs[2:]], 1, "content does not match"),
        (lambda rs: [rs[0], *rs[2:]], 2, "previous hash does not match event"),
        (lambda rs: [rs[1], rs[0], *rs[2:]], 1, "previous hash does not match the start hash"),
        (lambda rs: rs, None, "sha256 differs"),  # same events, different bytes
    ],
    ids=["edited", "deleted", "reordered", "recompressed"],
)
def test_a_tampered_archive_file_is_found(
    warehouse_url: str, tmp_path: Path, change: Callable, bad_index: int | None, reason: str
) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 6)
    rows = _rows(engine)
    result = archive_before(engine, rows[4].at, tmp_path, "minji")
    assert result.events == 4
    _rewrite_archive(result.path, change)
    report = verify_archive(result.path, result.sha256, GENESIS_HASH)
    assert not report.intact and reason in report.reason
    assert report.first_broken_id == (rows[bad_index].id if bad_index is not None else None)
    with engine.connect() as connection:
        [(_, found)] = verify_archives(connection)
    assert not found.intact


def test_a_checkpoint_that_disagrees_with_its_file_is_found(
    warehouse_url: str, tmp_path: Path
) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 4)
    result = _archive_first_two(engine, tmp_path / "archive")
    with engine.begin() as connection:
        connection.execute(update(CHECKPOINTS).values(events=1))
    with engine.connect() as connection:
        [(_, found)] = verify_archives(connection)
    assert not found.intact and "the checkpoint recorded 1" in found.reason
    result.path.unlink()
    with engine.connect() as connection:
        [(_, found)] = verify_archives(connection)
    assert not found.intact and "is missing" in found.reason


def test_an_unreadable_or_missing_archive_is_reported(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.jsonl.gz"
    garbage.write_bytes(b"not gzip at all")
    assert "unreadable" in verify_archive(garbage, None).reason
    assert "missing" in verify_archive(tmp_path / "gone.jsonl.gz", None).reason


def test_archive_twice_chains_the_archives(warehouse_url: str, tmp_path: Path) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 4)
    first = _archive_first_two(engine, tmp_path)
    _append(engine, 3)
    rows = _rows(engine)
    second = archive_before(engine, rows[-1].at, tmp_path, "minji")
    assert second.first_id == first.last_id + 1 and second.events == len(rows) - 1
    assert first.path != second.path
    report = _verify(engine)
    assert report.intact and report.events == 2 and report.checkpoint_id == second.last_id
    with engine.connect() as connection:
        checked = verify_archives(connection)
    assert [found.intact for _, found in checked] == [True, True]
    assert [found.events for _, found in checked] == [2, second.events]
    # The second archive starts where the first ended, not from GENESIS.
    assert not verify_archive(second.path, second.sha256, GENESIS_HASH).intact


def test_nothing_to_archive_changes_nothing(warehouse_url: str, tmp_path: Path) -> None:
    engine = get_engine(warehouse_url)
    archive = tmp_path / "archive"
    _append(engine, 1)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    result = archive_before(engine, future, archive, "minji")  # the head always stays
    assert result.events == 0 and result.path is None and not archive.exists()
    assert len(_rows(engine)) == 1
    with engine.connect() as connection:
        assert plan_archive(connection, future).events == 0
        with pytest.raises(ValueError, match="no time zone"):
            plan_archive(connection, dt.datetime(2026, 1, 1))


def test_a_broken_chain_is_not_archived(warehouse_url: str, tmp_path: Path) -> None:
    engine = get_engine(warehouse_url)
    archive = tmp_path / "archive"
    _append(engine, 4)
    rows = _rows(engine)
    with engine.begin() as connection:
        _edit_details(connection, rows)
    with pytest.raises(AuditArchiveError, match=f"broken at event {rows[2].id}"):
        archive_before(engine, rows[-1].at, archive, "minji")
    assert not archive.exists() and len(_rows(engine)) == 4


def test_a_failed_archive_leaves_no_file_and_no_change(
    warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = get_engine(warehouse_url)
    archive = tmp_path / "archive"
    _append(engine, 4)
    rows = _rows(engine)

    def refuse(*args: Any, **kwargs: Any) -> str:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(audit_archive, "append_event", refuse)
    with pytest.raises(RuntimeError, match="went away"):
        archive_before(engine, rows[-1].at, archive, "minji")
    assert not list(archive.iterdir())  # no archive, no .partial
    assert [r.id for r in _rows(engine)] == [r.id for r in rows]
    with engine.connect() as connection:
        assert connection.execute(select(CHECKPOINTS)).first() is None


def test_archive_races_appenders_without_forking_the_chain(
    warehouse_url: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    engine = get_engine(warehouse_url)
    _append(engine, 3)

    def work(worker: int) -> None:
        for n in range(10):
            if worker == 0:
                archive_before(engine, dt.datetime.now(dt.UTC), tmp_path, "archiver")
            else:
                with engine.begin() as connection:
                    append_event(connection, actor=f"w{worker}", action="x", details={"n": n})

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(work, range(3)))
    assert _verify(engine).intact
    with engine.connect() as connection:
        assert all(found.intact for _, found in verify_archives(connection))


# --- search ------------------------------------------------------------------------------
def test_search_filters(warehouse_url: str) -> None:
    engine = get_engine(warehouse_url)
    _append(engine, 2, actor="minji", action="alerts.silence")
    _append(engine, 1, actor="dagster", action="alerts_rules.save")
    _append(engine, 2, actor="jun", action="deploy.approve")
    with engine.begin() as connection:
        append_event(connection, actor="jun", action="deploy.request", target="Payments-API%")
    rows = _rows(engine)

    def ids(**filters: Any) -> list[int]:
        with engine.connect() as connection:
            return [e["id"] for e in search_events(connection, **filters)]

    assert ids() == [r.id for r in reversed(rows)]
    assert ids(actor="minji") == [rows[1].id, rows[0].id]
    assert ids(action="alerts.") == [rows[1].id, rows[0].id]
    assert ids(action="alerts") == [rows[1].id, rows[0].id]  # not alerts_rules
    assert ids(action="alerts*") == [rows[2].id, rows[1].id, rows[0].id]
    assert ids(action="deploy.approve") == [rows[4].id, rows[3].id]
    assert ids(action="deploy.app") == []
    assert ids(target="payments-api") == [rows[5].id]
    assert ids(target="%") == [rows[5].id]  # LIKE wildcards are literal
    assert ids(target="req-1") == [rows[4].id, rows[1].id]
    assert ids(since=rows[4].at) == [rows[5].id, rows[4].id]
    assert ids(until=rows[1].at) == [rows[0].id]
    assert ids(actor="jun", action="deploy.", limit=2) == [rows[5].id, rows[4].id]
    with engine.connect() as connection:
        found = search_events(connection, target="Payments")[0]
        assert found["at"] == rows[5].at.isoformat(timespec="microseconds")
        assert found["hash"] == rows[5].hash
        with pytest.raises(ValueError, match="limit"):
            search_events(connection, limit=0)
        with pytest.raises(ValueError, match="before until"):
            search_events(connection, since=rows[2].at, until=rows[1].at)
