"""Alert rules kept in the warehouse (`alert_rules`), beside those of the YAML file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.facts import FACTS
from timbel_dagster.notify.rules import Rule, RuleError, build_rule, load_rules_file, parse_rules
from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.warehouse.audit.chain import append_event
from timbel_dagster.warehouse.schema.ids import stable_id
from timbel_dagster.warehouse.schema.notify import AlertRule
from timbel_dagster.warehouse.store.upsert import bulk_upsert

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ORIGIN = "warehouse"


class RuleExistsError(ValueError):
    """A rule to add (not to replace) has the name of a rule the warehouse holds."""


# The sample organisation's rules: what the demo evaluates, and so what sample mode lists.
SAMPLE_RULES_FILE = Path(__file__).with_name("sample_rules.yaml")
# Rules every installation evaluates (ingestion-stale), unless a rule of the file or the
# warehouse takes the name.
BUILTIN_RULES_FILE = Path(__file__).with_name("builtin_rules.yaml")
BUILTIN = "built-in"


def rules_file(settings: Any) -> Path | None:
    """The rules file the alert rules come from beside the warehouse's: TIMBEL_ALERT_RULES_FILE,
    else in sample mode (TIMBEL_SAMPLE_DATA) the sample's rules, which `timbel demo`
    evaluates; None when neither. The sensor, `timbel alerts evaluate` and `timbel alerts
    rules list` all ask here, so they count the same rules."""
    if settings.timbel_alert_rules_file:
        return Path(settings.timbel_alert_rules_file)
    return SAMPLE_RULES_FILE if settings.timbel_sample_data else None


def source(rule: Rule) -> str:
    """Where a rule comes from, as a word: `warehouse`, `built-in` or `file`."""
    if rule.origin.startswith(f"{ORIGIN}:"):
        return ORIGIN
    return BUILTIN if rule.origin.startswith(f"{BUILTIN}:") else "file"


def builtin_rules() -> list[Rule]:
    """The built-in rules (BUILTIN_RULES_FILE), their origin `built-in:LINE`."""
    return parse_rules(BUILTIN_RULES_FILE.read_text(), BUILTIN, set(FACTS))


def rule_summary(rule: Rule) -> dict[str, Any]:
    """A rule as `timbel alerts rules list --json` and the API show it."""
    return {
        "name": rule.name,
        "severity": rule.severity,
        "kind": rule.kind,
        "for": str(rule.for_),
        "renotify": str(rule.renotify),
        "origin": rule.origin,
        "query": rule.expr or f"{rule.fact} {rule.threshold}",
    }


def stored_rules(engine: Engine, facts: set[str] | None = None) -> tuple[list[Rule], list[str]]:
    """The enabled warehouse rules, and one error per rule that no longer validates (a rule
    stored by an older version, say): a bad rule is reported, not fatal to the others."""
    from sqlalchemy import select

    rules, errors = [], []
    with engine.connect() as connection:
        for name, definition in connection.execute(
            select(AlertRule.name, AlertRule.definition).where(AlertRule.enabled)
        ):
            try:
                rules.append(build_rule(definition, f"{ORIGIN}:{name}", facts))
            except RuleError as error:
                errors.append(str(error))
    return rules, errors


def save_rules(
    engine: Engine, text: str, source: str, actor: str, *, replace: bool = True
) -> list[str]:
    """Validate every rule of a YAML text and store them all (insert or replace by name) in
    one transaction with its audit event; nothing is stored if any rule is invalid.

    Args:
        replace: False to refuse (RuleExistsError, nothing stored) a rule whose name the
            warehouse holds already, so that two people adding a rule do not overwrite each
            other (`POST /alerts/rules`); the unique name decides a race.
    """
    from sqlalchemy import insert, select
    from sqlalchemy.exc import IntegrityError

    rules = parse_rules(text, source, set(FACTS))
    if not rules:
        raise RuleError(f"{source}: no rules to store")
    # Stored as JSON: YAML scalars JSON lacks (dates, say) are kept as their text.
    raw: list[dict[str, Any]] = json.loads(json.dumps(load_yaml(text)["rules"], default=str))
    rows = [
        {
            "id": stable_id("alert_rules", rule.name),
            "name": rule.name,
            "definition": definition,
            "severity": rule.severity,
            "enabled": rule.enabled,
            "created_by": actor,
        }
        for rule, definition in zip(rules, raw, strict=True)
    ]
    names = [r.name for r in rules]
    with engine.begin() as connection:
        if replace:
            bulk_upsert(connection, AlertRule.__table__, rows, ("name",))
        else:
            held = connection.execute(
                select(AlertRule.name).where(AlertRule.name.in_(names))
            ).scalars()
            _refuse_existing(list(held))
            try:
                with connection.begin_nested():
                    connection.execute(insert(AlertRule.__table__), rows)
            except IntegrityError:  # added by someone else since the check
                _refuse_existing(names)
        append_event(
            connection,
            actor=actor,
            action="alert_rules.save",
            target=",".join(r.name for r in rules),
            details={"source": source, "rules": len(rules)},
        )
    return [r.name for r in rules]


def _refuse_existing(names: list[str]) -> None:
    if names:
        raise RuleExistsError(
            f"the warehouse has an alert rule named {names[0]!r} already: replace it "
            "(PUT /api/v1/alerts/rules/NAME or `timbel alerts rules add`) or choose another name"
        )


def save_rule(
    engine: Engine, definition: dict[str, Any], source: str, actor: str, *, replace: bool = True
) -> str:
    """Validate and store one rule given as the mapping a YAML rule is written as (an API
    body); as `save_rules`, whose checks and audit event it shares."""
    text = json.dumps({"rules": [definition]})
    [name] = save_rules(engine, text, source, actor, replace=replace)
    return name


def delete_rule(engine: Engine, name: str, actor: str) -> None:
    from sqlalchemy import delete

    with engine.begin() as connection:
        if not connection.execute(delete(AlertRule).where(AlertRule.name == name)).rowcount:
            raise LookupError(f"no alert rule named {name!r} in the warehouse")
        append_event(connection, actor=actor, action="alert_rules.delete", target=name, details={})


def _stored_names(engine: Engine) -> set[str]:
    """Every warehouse rule's name, disabled ones too (a disabled one still takes its name
    from a built-in rule)."""
    from sqlalchemy import select

    with engine.connect() as connection:
        return set(connection.execute(select(AlertRule.name)).scalars())


def all_rules(engine: Engine, rules_file: Any = None) -> tuple[list[Rule], list[str]]:
    """The YAML file's rules, the warehouse's and the built-in ones; a warehouse rule with a
    name the file already uses is skipped and reported (the file, under review in git, wins);
    a built-in rule whose name either uses is replaced by theirs, silently (that is how one
    is changed or turned off)."""

    from_file = (
        load_rules_file(Path(rules_file), set(FACTS), setting="TIMBEL_ALERT_RULES_FILE")
        if rules_file
        else []
    )
    stored, errors = stored_rules(engine, set(FACTS))
    names = {r.name: r.origin for r in from_file}
    for rule in stored:
        if rule.name in names:
            errors.append(
                f"{rule.origin}: rule {rule.name!r} is skipped: {names[rule.name]} defines it too"
            )
    found = from_file + [r for r in stored if r.name not in names]
    taken = set(names) | _stored_names(engine)
    return found + [r for r in builtin_rules() if r.name not in taken], errors
