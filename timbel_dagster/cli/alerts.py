"""`timbel alerts`: alert rules, current alerts and silences."""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import click

from timbel_dagster.cli.common import fail, friendly_errors, print_json, writable_engine


@click.group()
def alerts() -> None:
    """Alert rules, current alerts and silences."""


@alerts.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def validate(file: Path, as_json: bool) -> None:
    """Check a rules file (YAML and PromQL); exit 2 naming the line and rule if it is wrong."""
    from timbel_dagster.notify.facts import FACTS
    from timbel_dagster.notify.rules import RuleError, load_rules_file

    try:
        rules = load_rules_file(file, set(FACTS))
        result = {"valid": True, "rules": [r.name for r in rules], "errors": []}
    except RuleError as error:
        result = {"valid": False, "rules": [], "errors": [str(error)]}
    if as_json:
        print_json(result)
    elif result["valid"]:
        click.echo(f"{file}: {len(result['rules'])} rules, all valid")
    else:
        click.echo(f"timbel: error: {result['errors'][0]}", err=True)
    if not result["valid"]:
        sys.exit(2)


@alerts.group()
def rules() -> None:
    """Rules kept in the warehouse (beside TIMBEL_ALERT_RULES_FILE)."""


@rules.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@friendly_errors
def rules_add(file: Path) -> None:
    """Store (or replace) every rule of a YAML file; nothing is stored if one is invalid."""
    from timbel_dagster.notify.rule_store import save_rules

    settings, engine = writable_engine()
    try:
        text = file.read_text()
    except OSError as error:
        fail(f"cannot read {file}: {error.strerror}")
    names = save_rules(engine, text, str(file), settings.timbel_user)
    click.echo(f"stored {len(names)} rule(s): {', '.join(names)}")


@rules.command("list")
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def rules_list(as_json: bool) -> None:
    """Every rule the sensor evaluates, from the file and the warehouse."""
    from timbel_dagster.notify.rule_store import all_rules

    settings, engine = writable_engine()
    found, errors = all_rules(engine, settings.timbel_alert_rules_file)
    rows = [
        {
            "name": r.name,
            "severity": r.severity,
            "kind": r.kind,
            "for": str(r.for_),
            "renotify": str(r.renotify),
            "origin": r.origin,
            "query": r.expr or f"{r.fact} {r.threshold}",
        }
        for r in found
    ]
    if as_json:
        print_json({"rules": rows, "errors": errors})
        return
    for row in rows:
        click.echo(f"{row['name']:<32} {row['severity']:<9} {row['kind']:<9} {row['origin']}")
    for error in errors:
        click.echo(f"warning: {error}", err=True)


@rules.command("delete")
@click.argument("name")
@friendly_errors
def rules_delete(name: str) -> None:
    from timbel_dagster.notify.rule_store import delete_rule

    settings, engine = writable_engine()
    delete_rule(engine, name, settings.timbel_user)
    click.echo(f"deleted rule {name}")


@alerts.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def evaluate(as_json: bool) -> None:
    """Evaluate every rule once now, store what changed and send what is due."""
    from timbel_dagster.resources.notifier import NotifierResource

    writable_engine()
    notifier = NotifierResource()
    found, errors = notifier.rules()
    report = notifier.evaluator().tick(found)
    result = {
        "at": report.at.isoformat(),
        "rules": report.rules,
        "series": report.series,
        "transitions": [
            {"rule": t.state.rule, "kind": t.kind, "labels": t.state.labels, "notified": t.notify}
            for t in report.transitions
        ],
        "notifications_sent": report.notifications,
        "errors": errors + [f"{k}: {v}" for k, v in sorted(report.errors.items())],
        "seconds": report.seconds,
    }
    if as_json:
        print_json(result)
        return
    for t in result["transitions"]:
        click.echo(f"{t['kind']:<10} {t['rule']:<32} {t['labels']}")
    for error in result["errors"]:
        click.echo(f"warning: {error}", err=True)
    click.echo(
        f"{report.rules} rules, {report.series} active series, {len(report.transitions)} "
        f"transitions, {report.notifications} notices sent in {report.seconds}s"
    )


@alerts.command("list")
@click.option(
    "--state", type=click.Choice(["pending", "firing", "resolved", "all"]), default="firing"
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_alerts(state: str, as_json: bool) -> None:
    """Current alerts (firing by default)."""
    from sqlalchemy import select

    from timbel_dagster.warehouse.models_notify import Alert

    _, engine = writable_engine()
    query = select(Alert.__table__).order_by(Alert.rule, Alert.active_since)
    if state != "all":
        query = query.where(Alert.state == state)
    with engine.connect() as connection:
        rows = [dict(r) for r in connection.execute(query).mappings()]
    if as_json:
        print_json(rows)
        return
    for r in rows:
        click.echo(f"{r['state']:<9} {r['severity']:<9} {r['rule']:<32} {r['labels']} {r['value']}")
    click.echo(f"{len(rows)} alert(s)")


@alerts.command()
@click.option(
    "--match", "matchers", multiple=True, required=True, help="label=value; alertname=RULE."
)
@click.option("--for", "duration", default="2h", show_default=True, help="30m, 2h, 1d ...")
@click.option("--comment", required=True, help="Why (kept with the silence and audited).")
@friendly_errors
def silence(matchers: tuple[str, ...], duration: str, comment: str) -> None:
    """Mute notices of alerts whose labels match every --match, for a while."""
    from sqlalchemy import insert

    from timbel_dagster.notify.rules import parse_duration
    from timbel_dagster.warehouse.audit import append_event
    from timbel_dagster.warehouse.models_notify import Silence

    pairs = {}
    for matcher in matchers:
        key, sep, value = matcher.partition("=")
        if not sep or not key:
            raise ValueError(f"--match {matcher!r} is not label=value")
        pairs[key] = value
    if not comment.strip():
        raise ValueError("--comment must say why")
    settings, engine = writable_engine()
    now = dt.datetime.now(dt.UTC)
    length = parse_duration(duration)
    if length <= dt.timedelta(0):
        raise ValueError(f"--for must be longer than 0s, not {duration!r}")
    ends = now + length
    silence_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(Silence).values(
                id=silence_id,
                matchers=pairs,
                starts_at=now,
                ends_at=ends,
                created_by=settings.timbel_user,
                comment=comment,
            )
        )
        append_event(
            connection,
            actor=settings.timbel_user,
            action="alerts.silence",
            target=str(silence_id),
            details={"matchers": pairs, "ends_at": ends.isoformat(), "comment": comment},
        )
    click.echo(f"silence {silence_id} until {ends:%Y-%m-%d %H:%M} UTC")
