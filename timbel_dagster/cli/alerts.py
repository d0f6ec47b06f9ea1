"""`timbel alerts`: alert rules, current alerts and silences."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from timbel_dagster.cli.common import fail, friendly_errors, print_json, writable_engine
from timbel_dagster.cli.tables import (
    Column,
    duration,
    labels,
    number,
    plural,
    print_table,
    say,
    when,
)
from timbel_dagster.notify.alert_store import create_silence
from timbel_dagster.notify.alert_store import list_alerts as list_current_alerts
from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rule_store import (
    BUILTIN,
    ORIGIN,
    SAMPLE_RULES_FILE,
    all_rules,
    delete_rule,
    rule_summary,
    rules_file,
    save_rules,
    source,
)
from timbel_dagster.notify.rules import RuleError, load_rules_file, parse_duration
from timbel_dagster.runs import existing_instance

NO_RULES = (
    "no alert rules: set TIMBEL_ALERT_RULES_FILE to a rules file (deploy/alert-rules.example.yaml "
    "is one), store one with `timbel alerts rules add FILE`, or set TIMBEL_SAMPLE_DATA=true "
    "for the sample's rules"
)


def _sources(found: list, rules_file: Path | None) -> str:
    """`4 rules: 3 from FILE, 0 from the warehouse, 1 built in`."""

    stored = sum(source(r) == ORIGIN for r in found)
    builtin = sum(source(r) == BUILTIN for r in found)
    where = ""
    if rules_file:
        name = "the sample's rules file" if Path(rules_file) == SAMPLE_RULES_FILE else rules_file
        where = f"{len(found) - stored - builtin} from {name}, "
    off = sum(not r.enabled for r in found)
    disabled = f" ({off} disabled: not evaluated)" if off else ""
    return (
        f"{plural(len(found), 'rule')}: {where}{stored} from the warehouse, {builtin} built in"
        f"{disabled}"
    )


@click.group()
def alerts() -> None:
    """Alert rules, current alerts and silences."""


@alerts.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True)
def validate(file: Path, as_json: bool) -> None:
    """Check a rules file (YAML and PromQL); exit 2 naming the line and rule if it is wrong."""

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
    """Every rule the sensor evaluates: TIMBEL_ALERT_RULES_FILE's (in sample mode, unless it is
    set, the sample's) and the warehouse's, with where each comes from."""

    settings, engine = writable_engine()
    path = rules_file(settings)
    found, errors = all_rules(engine, path)
    rows = [rule_summary(r) for r in found]
    if as_json:
        print_json({"rules": rows, "errors": errors})
        return
    for row, rule in zip(rows, found, strict=True):
        # KIND: a warehouse fact or a PromQL query (not to be read as SOURCE).
        kind = "fact" if rule.kind == "warehouse" else rule.kind
        row |= {"source": source(rule), "kind": kind, "for": rule.for_.total_seconds()}
        row["on"] = "yes" if rule.enabled else "no"
    print_table(
        rows,
        [
            Column("NAME", "name"),
            Column("SEVERITY", "severity"),
            Column("KIND", "kind"),
            Column("FOR", "for", duration),
            Column("SOURCE", "source"),
            Column("ON", "on"),
            Column("QUERY", "query"),
        ],
        empty=NO_RULES,
        footer=_sources(found, path),
    )
    for error in errors:
        click.echo(f"warning: {error}", err=True)


@rules.command("delete")
@click.argument("name")
@friendly_errors
def rules_delete(name: str) -> None:
    settings, engine = writable_engine()
    delete_rule(engine, name, settings.timbel_user)
    click.echo(f"deleted rule {name}")


@alerts.command()
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def evaluate(as_json: bool) -> None:
    """Evaluate every rule once now, store what changed and send what is due."""
    # lazy: bindings.notifier loads Dagster; `timbel --help` loads without it
    from timbel_dagster.bindings.notifier import NotifierResource

    settings, _ = writable_engine()
    notifier = NotifierResource()
    found, errors = notifier.rules()
    # The Dagster instance the UI shows (DAGSTER_HOME, else TIMBEL_HOME/dagster), for the
    # ingestion-stale rule; without one that rule is reported as not evaluated.
    instance = existing_instance(settings.dagster_home)
    try:
        report = notifier.evaluator(instance=instance).tick(found)
    finally:
        if instance is not None:
            instance.dispose()
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
    if result["transitions"]:
        print_table(
            result["transitions"],
            [
                Column("CHANGE", "kind"),
                Column("RULE", "rule"),
                Column("LABELS", "labels", labels, wrap=True),
                # Due: not silenced nor held back by the rule's renotify interval.
                Column("NOTICE DUE", lambda t: "yes" if t["notified"] else "no"),
            ],
            empty="",
        )
    for error in result["errors"]:
        click.echo(f"warning: {error}", err=True)
    off = len(found) - report.rules  # disabled rules: listed, not evaluated
    click.echo(
        f"{plural(len(found), 'rule')}{f' ({off} disabled)' if off else ''}, "
        f"{report.series} active series, "
        f"{plural(len(report.transitions), 'transition')}, {report.notifications} notices sent "
        f"in {report.seconds:.1f}s"
    )
    if not found:
        say(NO_RULES)


@alerts.command("list")
@click.option(
    "--state", type=click.Choice(["pending", "firing", "resolved", "all"]), default="firing"
)
@click.option("--json", "as_json", is_flag=True)
@friendly_errors
def list_alerts(state: str, as_json: bool) -> None:
    """Current alerts (firing by default)."""
    settings, engine = writable_engine()
    rows = list_current_alerts(engine, None if state == "all" else state)
    if as_json:
        print_json(rows)
        return
    found, _ = all_rules(engine, rules_file(settings))
    which = "" if state == "all" else f"{state} "
    print_table(
        rows,
        [
            Column("STATE", "state"),
            Column("SEVERITY", "severity"),
            Column("RULE", "rule"),
            Column("LABELS", "labels", labels, wrap=True),
            Column("VALUE", "value", number, justify="right"),
            Column("SINCE", lambda r: r["firing_since"] or r["active_since"], when),
        ],
        empty=f"no {which}alerts" + ("" if state == "all" else ": `--state all` shows every state"),
        footer=plural(len(rows), f"{which}alert"),
    )
    unknown = sorted({r["rule"] for r in rows} - {r.name for r in found})
    if unknown:
        say(
            f"note: no rule named {', '.join(unknown)} is configured now "
            f"({_sources(found, rules_file(settings))}): it fired under another rules file. "
            "`timbel demo` evaluates the sample's rules, which TIMBEL_SAMPLE_DATA=true shows; "
            "TIMBEL_ALERT_RULES_FILE names a file of your own"
        )
    elif not found:
        say(NO_RULES)


@alerts.command()
@click.option(
    "--match", "matchers", multiple=True, required=True, help="label=value; alertname=RULE."
)
@click.option("--for", "duration", default="2h", show_default=True, help="30m, 2h, 1d ...")
@click.option("--comment", required=True, help="Why (kept with the silence and audited).")
@friendly_errors
def silence(matchers: tuple[str, ...], duration: str, comment: str) -> None:
    """Mute notices of alerts whose labels match every --match, for a while (as TIMBEL_USER,
    who must be a known, enabled user: the silence and its audit event name them)."""
    pairs = {}
    for matcher in matchers:
        key, sep, value = matcher.partition("=")
        if not sep or not key:
            raise ValueError(f"--match {matcher!r} is not label=value")
        pairs[key] = value
    if not comment.strip():
        raise ValueError("--comment must say why")
    length = parse_duration(duration)
    if length <= dt.timedelta(0):
        raise ValueError(f"--for must be longer than 0s, not {duration!r}")
    settings, engine = writable_engine()
    made = create_silence(engine, settings.timbel_user, pairs, length, comment)
    click.echo(f"silence {made['id']} until {made['ends_at']:%Y-%m-%d %H:%M} UTC")
