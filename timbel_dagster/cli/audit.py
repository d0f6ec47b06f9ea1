"""`timbel audit`: verify, search and archive the hash-chained audit log."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from timbel_dagster.cli.common import (
    connect,
    fail,
    friendly_errors,
    parse_since,
    print_json,
    settings_or_exit,
    writable_engine,
)
from timbel_dagster.cli.tables import Column, print_table
from timbel_dagster.runs import report_anchor
from timbel_dagster.warehouse.audit.anchors import (
    AnchorFile,
    RecordedAnchor,
    newest,
    parse_anchor,
)
from timbel_dagster.warehouse.audit.archive import archive_before, plan_archive, verify_archives
from timbel_dagster.warehouse.audit.chain import search_events, verify_chain


def _moment(option: str, value: str | None) -> dt.datetime | None:
    try:
        return parse_since(value)
    except click.BadParameter as error:
        fail(f"{option}: {error.message}")
        raise  # unreachable: fail exits


def _count(n: int) -> str:
    return f"{n} event" if n == 1 else f"{n} events"


def _checked_anchor(given: str | None, use_recorded: bool) -> RecordedAnchor | None:
    """The anchor to check: `--anchor`, else the newest recorded one (the anchor file and the
    newest audit report in Dagster's event log), unless --no-recorded-anchor."""
    if given:
        event_id, event_hash = parse_anchor(given, "--anchor")
        return RecordedAnchor(event_id, event_hash, None, "--anchor")
    if not use_recorded:
        return None
    settings = settings_or_exit()
    return newest([AnchorFile(settings.audit_anchor_file).newest(),
                   report_anchor(settings.dagster_home)])  # fmt: skip


@click.group()
def audit() -> None:
    """The audit log: every action, hash-chained."""


@audit.command()
@click.option(
    "--anchor",
    help="ID:HASH of an event recorded earlier; default: the newest recorded anchor (the "
    "anchor file, the newest audit report).",
)
@click.option(
    "--recorded-anchor/--no-recorded-anchor",
    "use_recorded",
    default=True,
    help="Check the newest recorded anchor when --anchor is not given (default: yes).",
)
@click.option(
    "--record",
    is_flag=True,
    help="If the log is intact, append its head anchor to the anchor file "
    "(TIMBEL_AUDIT_ANCHOR_FILE), e.g. from a daily cron.",
)
@click.option("--archives", is_flag=True, help="Also check every archive file.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def verify(
    anchor: str | None, use_recorded: bool, record: bool, archives: bool, as_json: bool
) -> None:
    """Check the chain, and that the newest recorded head anchor is still there; exit 1
    naming the first edited, deleted or reordered event."""

    checked = _checked_anchor(anchor, use_recorded)
    with connect() as connection:
        report = verify_chain(connection, anchor=checked.pinned if checked else None)
        files = []
        if archives:
            files = [
                {
                    "archive": checkpoint["archive"],
                    "last_id": checkpoint["last_id"],
                    "events": found.events,
                    "intact": found.intact,
                    "first_broken_id": found.first_broken_id,
                    "reason": found.reason,
                }
                for checkpoint, found in verify_archives(connection)
            ]
    intact = report.intact and all(f["intact"] for f in files)
    recorded = None
    if record and intact and report.head_id is not None and report.head_hash is not None:
        anchor_file = AnchorFile(settings_or_exit().audit_anchor_file)
        anchor_file.append((report.head_id, report.head_hash), by="timbel audit verify")
        recorded = str(anchor_file.path)
    checked_json = None
    if checked is not None:
        checked_json = {
            "anchor": checked.text,
            "source": checked.source,
            "recorded_at": checked.recorded_at.isoformat() if checked.recorded_at else None,
        }
    if as_json:
        print_json(
            {
                "intact": intact,
                "events": report.events,
                "first_broken_id": report.first_broken_id,
                "reason": report.reason,
                "head_id": report.head_id,
                "head_hash": report.head_hash,
                "anchor": report.anchor,
                "checkpoint_id": report.checkpoint_id,
                "checked_anchor": checked_json,
                "recorded_to": recorded,
                "archives": files,
            }
        )
    else:
        for f in files:
            state = "intact" if f["intact"] else f"BROKEN: {f['reason']}"
            where = f" at event {f['first_broken_id']}" if f["first_broken_id"] else ""
            click.echo(f"archive {f['archive']} ({_count(f['events'])}): {state}{where}")
        after = f" after archive checkpoint #{report.checkpoint_id}" if report.checkpoint_id else ""
        if report.intact:
            head = f"; head anchor {report.anchor}" if report.head_id else ""
            click.echo(f"audit log intact: {_count(report.events)}{after}{head}")
            if checked is not None:
                click.echo(f"anchor {checked.event_id} ({checked.source}) is still there")
            elif use_recorded:
                click.echo(
                    "no anchor recorded yet: deleting the newest events cannot be detected "
                    "until one is (`timbel audit verify --record`, or the weekly audit report)"
                )
            if recorded:
                click.echo(f"head anchor recorded in {recorded}")
        else:
            where = f"event {report.first_broken_id}" if report.first_broken_id else "the head"
            source = ""
            if checked is not None and report.first_broken_id == checked.event_id:
                source = f" (anchor from {checked.source})"
            click.echo(f"audit log BROKEN at {where}: {report.reason}{source}")
    if not intact:
        sys.exit(1)


@audit.command()
@click.option("--actor", help="Exactly this actor.")
@click.option("--action", help="An action, or a prefix ending in `.` (alerts.).")
@click.option("--target", help="A substring of the target (case-insensitive).")
@click.option("--since", help="7d, 12h, 30m or an ISO date/time.")
@click.option("--until", help="7d, 12h, 30m or an ISO date/time (exclusive).")
@click.option("--limit", type=int, default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def search(
    actor: str | None,
    action: str | None,
    target: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Events still in the warehouse that match every filter, newest first."""

    if limit < 1:
        raise ValueError(f"--limit must be 1 or more, not {limit}")
    start, end = _moment("--since", since), _moment("--until", until)
    with connect() as connection:
        events = search_events(connection, actor, action, target, start, end, limit)
    if as_json:
        print_json(events)
        return
    filtered = any(v is not None for v in (actor, action, target, since, until))
    print_table(
        events,
        [
            Column("ID", "id", justify="right"),
            Column("AT", "at", lambda at: f"{dt.datetime.fromisoformat(at):%Y-%m-%d %H:%M:%S}"),
            Column("ACTOR", "actor"),
            Column("ACTION", "action"),
            Column("TARGET", "target"),
        ],
        empty="no audit events match these filters"
        if filtered
        else "no audit events in the warehouse (archived ones: `timbel audit verify --archives`)",
        footer=f"{len(events)} event(s)",
    )


@audit.command()
@click.option(
    "--older-than",
    "days",
    type=int,
    default=None,
    help="Days. Default: TIMBEL_AUDIT_RETENTION_DAYS.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Default: TIMBEL_AUDIT_ARCHIVE_DIR (TIMBEL_HOME/audit-archive).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def archive(days: int | None, directory: Path | None, yes: bool, as_json: bool) -> None:
    """Move events older than the retention to a gzip JSON Lines file, then delete them.

    The chain stays verifiable: a checkpoint records where the archive ended.
    """

    if days is not None and days < 0:
        raise ValueError(f"--older-than must be 0 days or more, not {days}")
    settings, engine = writable_engine()
    days = settings.timbel_audit_retention_days if days is None else days
    default = settings.timbel_audit_archive_dir or settings.timbel_home / "audit-archive"
    directory = directory or default
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    if not yes:
        with engine.connect() as connection:
            plan = plan_archive(connection, cutoff)
        if not plan.events:
            click.echo(f"nothing to archive: no event before {cutoff:%Y-%m-%d %H:%M} UTC")
            return
        click.confirm(
            f"Archive {_count(plan.events)} (#{plan.first_id}..#{plan.last_id}) older than "
            f"{cutoff:%Y-%m-%d %H:%M} UTC to {directory} and delete them from the warehouse?",
            abort=True,
        )
    result = archive_before(engine, cutoff, directory, settings.timbel_user)
    if as_json:
        print_json(
            {
                "cutoff": cutoff.isoformat(),
                "archived": result.events,
                "first_id": result.first_id,
                "last_id": result.last_id,
                "last_hash": result.last_hash,
                "archive": str(result.path) if result.path else None,
                "sha256": result.sha256,
                "remaining": result.remaining,
            }
        )
    elif not result.events:
        click.echo(f"nothing to archive: no event before {cutoff:%Y-%m-%d %H:%M} UTC")
    else:
        click.echo(
            f"archived {_count(result.events)} (#{result.first_id}..#{result.last_id}) to "
            f"{result.path.resolve()}"
        )
        click.echo(f"  sha256 {result.sha256}; {_count(result.remaining)} left in the warehouse")


if __name__ == "__main__":  # until `timbel audit` is registered: python -m timbel_dagster.cli.audit
    audit(prog_name="timbel audit")
