"""Alert rules: parsed from YAML (TIMBEL_ALERT_RULES_FILE) or the warehouse, and checked.

```yaml
rules:
  - name: namespace-cpu-near-quota
    severity: critical             # critical | high | warning | info
    expr: |                        # PromQL: every series it returns is an active alert
      sum by (cluster, namespace) (rate(container_cpu_usage_seconds_total{container!=""}[5m]))
        / sum by (cluster, namespace) (kube_resourcequota{type="hard", resource="requests.cpu"})
        > 0.9
    for: 10m                       # active this long before it fires (default 0s)
    renotify: 1h                   # at most one notice per alert per interval (default 4h)
    keep_firing_for: 5m            # clear this long before it resolves (default 0s)
    labels: {team: platform}
    summary: "{{ labels.namespace }} uses {{ (value * 100) | round | int }} % of its CPU quota"
  - name: pipeline-failure-rate
    severity: high
    fact: pipeline_failure_rate    # a warehouse fact instead of PromQL
    params: {window: 1h, min_executions: 5}
    threshold: "> 0.2"
```
Every error names the file, the line and the rule.
"""

from __future__ import annotations

import datetime as dt
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timbel_dagster.safe_yaml import load_yaml
from timbel_dagster.warehouse.schema.notify import SEVERITIES

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_THRESHOLD = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
KEYS = {
    "name",
    "severity",
    "expr",
    "fact",
    "params",
    "threshold",
    "for",
    "renotify",
    "keep_firing_for",
    "labels",
    "summary",
    "enabled",
}


class RuleError(ValueError):
    """A rule is wrong; the message names where (file:line) and which rule."""


def parse_duration(text: Any) -> dt.timedelta:
    """`90s`, `10m`, `1h30m`, `2d` (Prometheus' units) into a timedelta."""
    match = _DURATION.match(str(text).strip()) if text not in (None, "") else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 30s, 10m, 1h or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@dataclass(frozen=True)
class Threshold:
    op: str
    value: float

    def holds(self, observed: float) -> bool:
        return _OPERATORS[self.op](observed, self.value)

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    expr: str | None = None
    fact: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    threshold: Threshold | None = None
    for_: dt.timedelta = dt.timedelta(0)
    renotify: dt.timedelta = dt.timedelta(hours=4)
    keep_firing_for: dt.timedelta = dt.timedelta(0)
    labels: dict[str, str] = field(default_factory=dict)
    summary: str | None = None
    enabled: bool = True
    origin: str = ""  # file:line, or warehouse

    @property
    def kind(self) -> str:
        return "promql" if self.expr else "warehouse"


def _check_promql(expr: str) -> None:
    import promql_parser

    try:
        promql_parser.parse(expr)
    except ValueError as error:
        raise ValueError(f"invalid PromQL: {error}") from None


def build_rule(raw: Any, origin: str, facts: set[str] | None = None) -> Rule:
    """One rule from its mapping; `facts` are the warehouse facts that exist."""
    if not isinstance(raw, dict):
        raise RuleError(f"{origin}: a rule must be a mapping, not {type(raw).__name__}")
    name = raw.get("name")
    where = f"{origin}: rule {name!r}" if name else f"{origin}: rule"
    if not isinstance(name, str) or not _NAME.match(name):
        raise RuleError(f"{where}: 'name' must be letters, digits, '-', '_', '.' or ':'")
    unknown = set(raw) - KEYS
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    try:
        severity = raw.get("severity", "warning")
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
        expr, fact = raw.get("expr"), raw.get("fact")
        if bool(expr) == bool(fact):
            raise ValueError("give exactly one of 'expr' (PromQL) or 'fact' (warehouse)")
        threshold = None
        if expr:
            if not isinstance(expr, str):
                raise ValueError("'expr' must be a string")
            _check_promql(expr)
            if "threshold" in raw:
                raise ValueError("'threshold' is for facts; put the comparison in the PromQL")
        else:
            if facts is not None and fact not in facts:
                raise ValueError(f"unknown fact {fact!r}; facts are {', '.join(sorted(facts))}")
            match = _THRESHOLD.match(str(raw.get("threshold", "> 0")))
            if not match:
                raise ValueError(f"threshold {raw['threshold']!r} is not like '> 0.2'")
            threshold = Threshold(match.group(1), float(match.group(2)))
        params = raw.get("params") or {}
        labels = raw.get("labels") or {}
        if not isinstance(params, dict) or not isinstance(labels, dict):
            raise ValueError("'params' and 'labels' must be mappings")
        return Rule(
            name=name,
            severity=severity,
            expr=expr.strip() if expr else None,
            fact=fact,
            params=params,
            threshold=threshold,
            for_=parse_duration(raw.get("for", "0s")),
            renotify=parse_duration(raw.get("renotify", "4h")),
            keep_firing_for=parse_duration(raw.get("keep_firing_for", "0s")),
            labels={str(k): str(v) for k, v in labels.items()},
            summary=raw.get("summary"),
            enabled=bool(raw.get("enabled", True)),
            origin=origin,
        )
    except ValueError as error:
        raise RuleError(f"{where}: {error}") from None


def parse_rules(text: str, source: str, facts: set[str] | None = None) -> list[Rule]:
    """Rules from YAML text; `source` names it in errors (a path)."""
    import yaml

    try:
        document = yaml.compose(text, Loader=yaml.SafeLoader)
        data = load_yaml(text)  # aliases bounded: a rules file may come from anyone
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise RuleError(
            f"{source}{line}: not valid YAML: {getattr(error, 'problem', error)}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{source}:1: expected a top-level 'rules:' list")
    lines = _rule_lines(document)
    rules = [
        build_rule(raw, f"{source}:{lines[i] if i < len(lines) else '?'}", facts)
        for i, raw in enumerate(data["rules"])
    ]
    seen: dict[str, str] = {}
    for rule in rules:
        if rule.name in seen:
            raise RuleError(
                f"{rule.origin}: rule {rule.name!r} is also defined at {seen[rule.name]}"
            )
        seen[rule.name] = rule.origin
    return rules


def _rule_lines(document: Any) -> list[int]:
    """The 1-based line where each item of the top-level `rules` list starts."""
    for key, value in getattr(document, "value", []) or []:
        if getattr(key, "value", None) == "rules" and isinstance(value.value, list):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def load_rules_file(
    path: Path, facts: set[str] | None = None, setting: str | None = None
) -> list[Rule]:
    """Rules of a YAML file; `setting` names where the path came from, for a file that
    cannot be read."""
    try:
        text = path.read_text()
    except OSError as error:
        where = f"{setting}: " if setting else ""
        raise RuleError(f"{where}cannot read {path}: {error.strerror}") from None
    return parse_rules(text, str(path), facts)
